// Package natstest runs NATS servers with JetStream inside a test process:
// a single server, or a cluster whose nodes can be stopped hard, restarted
// on their own storage, and cut off from the others (their routes go
// through proxies the test can break), so that storage built on JetStream
// can be tested for failover on a laptop.
package natstest

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Single starts one server with JetStream, shut down when the test ends,
// and returns its client URL.
func Single(t testing.TB) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("natstest: the server is not ready after 10s")
	}
	return s.ClientURL()
}

// Cluster is a JetStream cluster of servers in this process. Its methods
// are safe for concurrent use.
type Cluster struct {
	t       testing.TB
	mu      sync.Mutex
	opts    []*server.Options
	servers []*server.Server // nil while stopped
	// routes[i][j] carries the route that node i opens to node j.
	routes [][]*proxy
	// sink is the route address every node advertises: it refuses every
	// connection, so a node learns no address of another that bypasses
	// the proxies.
	sink *proxy
}

// NewCluster starts a cluster of n nodes (n ≥ 1), each with its own store
// directory, shut down when the test ends, and waits until JetStream
// answers on every node. The servers pick their ports (a port chosen
// beforehand may be taken meanwhile by another test process); a node keeps
// its ports across Stop and Start.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, opts: make([]*server.Options, n), servers: make([]*server.Server, n), routes: make([][]*proxy, n),
		sink: newProxy(t, "")} // no target: it refuses every connection
	for i := range n {
		c.routes[i] = make([]*proxy, n)
		for j := range n {
			if i != j {
				c.routes[i][j] = newProxy(t, "") // its target is set when node j has started
			}
		}
	}
	for i := range n {
		o := &server.Options{
			ServerName: "n" + strconv.Itoa(i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "flux-test", Host: "127.0.0.1", Port: -1,
				// Every route goes through this node's proxies, so that
				// Isolate can cut it. A node gossips the address of the others
				// it knows, and a node that hears of one before its own route
				// to it is up opens an "implicit" route to the gossiped
				// address: that address is the sink, so no route bypasses a
				// proxy.
				Advertise: c.sink.addr(), NoAdvertise: true},
		}
		for j := range n {
			if j != i {
				o.Routes = append(o.Routes, server.RoutesFromStr("nats-route://"+c.routes[i][j].addr())...)
			}
		}
		c.opts[i] = o
	}
	t.Cleanup(c.shutdown)
	for i := range n {
		c.Start(i)
	}
	c.WaitReady()
	return c
}

// N is the number of nodes.
func (c *Cluster) N() int { return len(c.opts) }

// URL is the client URL of node i.
func (c *Cluster) URL(i int) string {
	return "nats://127.0.0.1:" + strconv.Itoa(c.opts[i].Port)
}

// URLs are the client URLs of every node, comma-separated, node first
// first: a client given them fails over to the next when its node stops.
func (c *Cluster) URLs(first int) string {
	s := c.URL(first)
	for i := range c.opts {
		if i != first {
			s += "," + c.URL(i)
		}
	}
	return s
}

// Start starts node i (again, on the store it had), if it is stopped.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.servers[i] != nil {
		return
	}
	o := *c.opts[i]
	s, err := server.NewServer(&o)
	if err != nil {
		c.t.Fatalf("natstest: node %d: %v", i, err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		c.t.Fatalf("natstest: node %d is not ready after 10s", i)
	}
	c.servers[i] = s
	if c.opts[i].Port < 0 {
		// First start: keep the ports the server took, and route the
		// others' proxies to it.
		c.opts[i].Port = s.Addr().(*net.TCPAddr).Port
		c.opts[i].Cluster.Port = s.ClusterAddr().Port
		for j := range c.opts {
			if j != i {
				c.routes[j][i].setTarget(s.ClusterAddr().String())
			}
		}
	}
}

// Stop shuts node i down at once, its clients and routes dropped; its store
// stays for Start.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Isolate cuts node i's routes to and from every other node (its clients
// stay connected to it), as a network partition would, and waits until
// node i has no route left, failing the test after 10 seconds.
func (c *Cluster) Isolate(i int) {
	c.t.Helper()
	c.setCut(i, true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		s := c.servers[i]
		c.mu.Unlock()
		if s == nil || s.NumRoutes() == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("natstest: node %d still has %d routes 10s after its proxies were cut", i, s.NumRoutes())
		}
		time.Sleep(10 * time.Millisecond) // polling the server: nothing to synchronise with
	}
}

// Heal gives node i its routes back.
func (c *Cluster) Heal(i int) { c.setCut(i, false) }

func (c *Cluster) setCut(i int, cut bool) {
	for j := range c.opts {
		if j != i {
			c.routes[i][j].setCut(cut)
			c.routes[j][i].setCut(cut)
		}
	}
}

// StreamLeader returns the node that leads stream (of the default
// account), or -1 if none does now.
func (c *Cluster) StreamLeader(stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.servers {
		if s != nil && s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// WaitReady waits until JetStream answers on every running node (a meta
// leader is elected), failing the test after a minute.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	// A meta leader that knows every node: before that, a replicated
	// stream may be refused for want of peers.
	for !c.metaLeaderKnowsAll() {
		if time.Now().After(deadline) {
			c.t.Fatalf("natstest: no JetStream meta leader knowing all %d nodes after a minute", len(c.opts))
		}
		time.Sleep(10 * time.Millisecond) // polling the servers: nothing to synchronise with
	}
	for i := range c.opts {
		c.mu.Lock()
		running := c.servers[i] != nil
		c.mu.Unlock()
		if !running {
			continue
		}
		for {
			err := jetStreamAnswers(c.URL(i))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("natstest: JetStream does not answer on node %d after a minute: %v", i, err)
			}
			time.Sleep(50 * time.Millisecond) // polling a server: nothing to synchronise with
		}
	}
}

func (c *Cluster) metaLeaderKnowsAll() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.servers {
		if s != nil && s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == len(c.opts) {
			return true
		}
	}
	return false
}

func jetStreamAnswers(url string) error {
	nc, err := nats.Connect(url, nats.Timeout(time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

func (c *Cluster) shutdown() {
	for i := range c.opts {
		c.Stop(i)
	}
	c.sink.close()
	for _, row := range c.routes {
		for _, p := range row {
			if p != nil {
				p.close()
			}
		}
	}
}

// proxy forwards TCP connections to target until cut: then it closes the
// ones it carries and refuses new ones until healed. It refuses every
// connection while it has no target (the sink, or a node not started yet).
type proxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut, target := p.cut, p.target
		p.mu.Unlock()
		if cut || target == "" {
			in.Close()
			continue
		}
		out, err := net.DialTimeout("tcp", target, time.Second)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			in.Close()
			out.Close()
			continue
		}
		p.conns[in], p.conns[out] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

func (p *proxy) setTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for conn := range p.conns {
			conn.Close()
		}
	}
}

func (p *proxy) close() {
	p.l.Close()
	p.setCut(true)
	p.wg.Wait()
}

// String describes the cluster's nodes and which are running.
func (c *Cluster) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := ""
	for i := range c.opts {
		state := "stopped"
		if c.servers[i] != nil {
			state = "running"
		}
		s += fmt.Sprintf("n%d %s %s; ", i, c.URL(i), state)
	}
	return s
}

// Describe tells, for each running node, whether it leads the meta group
// and stream (of the default account), whether it is current on the
// stream, how many routes it has, and whether a message published to
// subject on it has a subscriber: what a stalled test needs to report.
func (c *Cluster) Describe(stream, subject string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := ""
	for i, srv := range c.servers {
		if srv == nil {
			s += fmt.Sprintf("n%d stopped; ", i)
			continue
		}
		s += fmt.Sprintf("n%d meta-leader=%v %s-leader=%v current=%v routes=%d interest(%s)=%v; ", i,
			srv.JetStreamIsLeader(), stream, srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream),
			srv.JetStreamIsStreamCurrent(server.DEFAULT_GLOBAL_ACCOUNT, stream), srv.NumRoutes(),
			subject, srv.GlobalAccount().SubscriptionInterest(subject))
	}
	return s
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/flux-go/flux/internal/viewer"
)

func init() {
	register("dev", "serve the web viewer of a trace file or a store", runDev)
}

// devConfig is what `flux dev` was asked to serve.
type devConfig struct {
	trace string
	store *storeOptions // nil to view the trace file
	host  string
	port  int
}

func parseDev(args []string, stderr io.Writer) (devConfig, error) {
	var c devConfig
	fs := flag.NewFlagSet("flux dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.trace, "trace", "./.flux/trace.ndjson", "NDJSON trace file to view, as written by tracefile.New")
	store := addStoreFlags(fs, "")
	fs.StringVar(&c.host, "host", "127.0.0.1", "interface to listen on; the viewer has no authentication, so keep it local")
	fs.IntVar(&c.port, "port", 4280, "port to listen on; 0 picks a free one")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: flux dev [--trace FILE | --db FILE | --postgres URL | --nats URL] [--port N] [--host ADDR]\n\n"+
			"Serves a web viewer of workflow runs: a runs list, and per run its graph,\n"+
			"timeline of attempts, errors, input, data and raw events, updated live.\n"+
			"It shows the trace file unless a storage flag is given.\n\n")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return c, err
	}
	if len(pos) > 0 {
		return c, fmt.Errorf("unexpected argument %q: pass the trace file with --trace", pos[0])
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["db"] || set["postgres"] || set["nats"] || set["storage"] {
		if set["trace"] {
			return c, errors.New("pass either --trace or a storage (--db, --postgres, --nats, --storage): the viewer shows one source at a time")
		}
		c.store = store
	}
	if c.port < 0 || c.port > 65535 {
		return c, fmt.Errorf("--port %d is not a TCP port (0-65535)", c.port)
	}
	return c, nil
}

func runDev(ctx context.Context, args []string) error {
	c, err := parseDev(args, os.Stderr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(c.host, strconv.Itoa(c.port)))
	if err != nil {
		return fmt.Errorf("listening on %s:%d: %w (is another flux dev running? pick another --port)", c.host, c.port, err)
	}
	return serveDev(ctx, c, ln, os.Stdout)
}

// openSource opens what c names. The returned func releases it.
func openSource(ctx context.Context, c devConfig) (viewer.Source, string, func(), error) {
	if c.store != nil {
		store, err := c.store.openExisting(ctx)
		if err != nil {
			return nil, "", nil, err
		}
		name := c.store.kind()
		switch name {
		case "sqlite":
			name += " " + c.store.db
		case "postgres":
			name += " " + redactURL(c.store.postgres)
		case "nats":
			name += " " + redactURL(c.store.nats)
		}
		return viewer.NewStorageSource(store, name, viewer.StorageOptions{}), name, func() { _ = store.Close() }, nil
	}
	src, err := viewer.OpenTrace(c.trace, viewer.TraceOptions{})
	if err != nil {
		return nil, "", nil, err
	}
	return src, c.trace, func() { src.Close() }, nil
}

// redactURL hides the password of a database URL shown on the page.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// serveDev serves the viewer of c on ln until ctx is done, and prints its
// address to out.
func serveDev(ctx context.Context, c devConfig, ln net.Listener, out io.Writer) error {
	src, what, release, err := openSource(ctx, c)
	if err != nil {
		ln.Close()
		return err
	}
	defer release()
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	ip := net.ParseIP(host)
	local := ip != nil && ip.IsLoopback()
	v := viewer.New(src, viewer.Options{AllowAnyHost: !local})
	srv := &http.Server{Handler: v, ReadHeaderTimeout: 10 * time.Second}
	addr := ln.Addr().(*net.TCPAddr)
	link := "http://" + net.JoinHostPort(host, strconv.Itoa(addr.Port)) + "/"
	if ip.Equal(net.IPv4(127, 0, 0, 1)) {
		link = "http://localhost:" + strconv.Itoa(addr.Port) + "/"
	}
	fmt.Fprintf(out, "flux dev: viewing %s at %s (Ctrl-C to stop)\n", what, link)
	if !local {
		fmt.Fprintln(out, "flux dev: warning: the viewer is reachable from other machines and has no authentication")
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		v.Close()
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	v.Close() // ends the event streams, so Shutdown need not wait for them
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

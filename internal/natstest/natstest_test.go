package natstest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor polls cond every 20ms for up to a minute: the test waits on
// servers electing leaders, which it cannot synchronise with otherwise.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after a minute: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A replicated stream survives its leader's stop (a new leader is elected
// and has every acknowledged message), and an isolated node cannot lead it.
func TestClusterFailoverAndPartition(t *testing.T) {
	c := NewCluster(t, 3)
	ctx := context.Background()
	nc, err := nats.Connect(c.URLs(0), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := js.Publish(ctx, "s.x", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var leader int
	waitFor(t, "no leader of stream S", func() bool { leader = c.StreamLeader("S"); return leader >= 0 })
	c.Stop(leader)
	waitFor(t, fmt.Sprintf("no new leader after the stop of n%d", leader), func() bool {
		l := c.StreamLeader("S")
		return l >= 0 && l != leader
	})
	waitFor(t, "stream S lost acknowledged messages", func() bool {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		s, err := js.Stream(sctx, "S")
		if err != nil {
			return false
		}
		return s.CachedInfo().State.Msgs == 10
	})
	c.Start(leader)
	c.WaitReady()

	// Cut the current leader off: the two others elect one of themselves.
	cut := c.StreamLeader("S")
	for cut < 0 {
		waitFor(t, "no leader of stream S after the restart", func() bool { cut = c.StreamLeader("S"); return cut >= 0 })
	}
	c.Isolate(cut)
	waitFor(t, "the isolated node still leads, or no other node does", func() bool {
		l := c.StreamLeader("S")
		return l >= 0 && l != cut
	})
	c.Heal(cut)
	waitFor(t, "the healed node did not catch up", func() bool { return jetStreamAnswers(c.URL(cut)) == nil })
}

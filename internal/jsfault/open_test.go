package jsfault

import (
	"context"
	"testing"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/jsstore"
	"github.com/nats-io/nats.go"
)

// open opens the JetStream store over nc, replicated on the three nodes,
// closed when the test ends.
func open(t *testing.T, nc *nats.Conn) flux.Storage {
	t.Helper()
	s, err := openStore(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openStore(nc *nats.Conn) (flux.Storage, error) {
	return jsstore.Open(context.Background(), nc, jsstore.Replicas(3))
}

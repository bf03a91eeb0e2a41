package jsstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux/internal/natstest"
	"github.com/flux-go/flux/jsstore"
	"github.com/flux-go/flux/storagetest"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// embedded starts a single nats-server with JetStream, stopped when t
// ends, and returns its client URL.
func embedded(t testing.TB) string { return natstest.Single(t) }

// connect connects to url, closed when t ends.
func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

var prefixes atomic.Int64

// harness returns the harness of a fresh store on the server at url, its
// buckets named by a prefix of its own.
func harness(url string, opts ...jsstore.Option) func(t *testing.T) storagetest.Harness {
	return func(t *testing.T) storagetest.Harness {
		nc := connect(t, url)
		prefix := fmt.Sprintf("t%d", prefixes.Add(1))
		s, err := jsstore.Open(t.Context(), nc, append([]jsstore.Option{jsstore.Prefix(prefix)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return storagetest.Harness{Store: s, Corrupt: func(t *testing.T, id string) {
			t.Helper()
			if err := jsstore.CorruptRun(t.Context(), s, id); err != nil {
				t.Fatal(err)
			}
		}}
	}
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, harness(embedded(t)))
}

func TestEngineConformance(t *testing.T) {
	storagetest.RunEngine(t, harness(embedded(t)))
}

func TestConformancePartitions(t *testing.T) {
	storagetest.Run(t, harness(embedded(t), jsstore.Partitions(4)))
}

func TestOpenChecksPartitions(t *testing.T) {
	nc := connect(t, embedded(t))
	s, err := jsstore.Open(t.Context(), nc, jsstore.Prefix("parts"), jsstore.Partitions(2))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = jsstore.Open(t.Context(), nc, jsstore.Prefix("parts"), jsstore.Partitions(2)); err != nil {
		t.Fatalf("reopening with the same partitions: %v", err)
	}
	s.Close()
	if _, err := jsstore.Open(t.Context(), nc, jsstore.Prefix("parts"), jsstore.Partitions(3)); err == nil {
		t.Fatal("Open with 3 partitions of runs stored over 2: no error")
	}
	for _, o := range []jsstore.Option{jsstore.Replicas(0), jsstore.Partitions(0), jsstore.Prefix("a.b")} {
		if _, err := jsstore.Open(t.Context(), nc, o); err == nil {
			t.Error("Open with an invalid option: no error")
		}
	}
}

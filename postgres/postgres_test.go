package postgres_test

import (
	"testing"

	"github.com/flux-go/flux/storagetest"
)

// TestConformance runs the shared flux.Storage suite, each test on a store
// of its own in a fresh schema.
// TestEngineConformance runs the engine-level suite, each test on a store
// of its own in a fresh schema.
func TestEngineConformance(t *testing.T) {
	dbURL(t)
	storagetest.RunEngine(t, func(t *testing.T) storagetest.Harness {
		s := openStore(t)
		return storagetest.Harness{Store: s, Corrupt: corrupter(s)}
	})
}

func TestConformance(t *testing.T) {
	dbURL(t)
	storagetest.Run(t, func(t *testing.T) storagetest.Harness {
		s := openStore(t)
		return storagetest.Harness{Store: s, Corrupt: corrupter(s)}
	})
}

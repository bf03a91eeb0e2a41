package flux_test

import (
	"testing"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/storagetest"
)

func TestMemoryStorageConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storagetest.Harness {
		return storagetest.Harness{Store: flux.NewMemoryStorage()}
	})
}

func TestMemoryStorageEngine(t *testing.T) {
	storagetest.RunEngine(t, func(t *testing.T) storagetest.Harness {
		return storagetest.Harness{Store: flux.NewMemoryStorage()}
	})
}

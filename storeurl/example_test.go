package storeurl_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/storeurl"
)

// ExampleOpen opens the storage named by FLUX_STORAGE_URL, in memory when
// it is unset, and runs an engine on it.
func ExampleOpen() {
	url := os.Getenv("FLUX_STORAGE_URL")
	if url == "" {
		url = "memory:"
	}
	store, err := storeurl.Open(context.Background(), url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close() // after the engine's Close
	engine, err := flux.NewEngine(flux.Config{Storage: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer engine.Close()
	fmt.Println("engine ready")
	// Output: engine ready
}

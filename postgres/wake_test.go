package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/postgres"
)

// TestNotifyWakesAnotherProcess: two stores on one schema, as two
// processes would have. A run started through one is executed by an engine
// on the other that never looks on its own: LISTEN/NOTIFY woke it.
func TestNotifyWakesAnotherProcess(t *testing.T) {
	schema := freshSchema(t)
	open := func() *postgres.Store {
		s, err := postgres.Open(context.Background(), dbURL(t)+"&pool_max_conns=4", postgres.Schema(schema))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	producerStore, workerStore := open(), open()
	worker, err := flux.NewEngine(flux.Config{Storage: workerStore, Logger: quiet, RecoveryInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer worker.Close()
	if err := worker.Register(w1); err != nil {
		t.Fatal(err)
	}
	producer, err := flux.NewEngine(flux.Config{Storage: producerStore, Logger: quiet, Workers: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The first run may be found when the worker's listener connects; once
	// it completed, the listener is in place, and the next runs can only be
	// found by their notification.
	for i := range 3 {
		id, err := flux.Start(ctx, producer, w1, orderIn{OrderID: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		res, err := flux.Wait(ctx, producer, w1, id)
		if err != nil || res.Data.Note != fmt.Sprintf("sent %d", i) {
			t.Fatalf("run %d, started by one process: %+v, %v; want it completed by the other", i, res, err)
		}
	}
}

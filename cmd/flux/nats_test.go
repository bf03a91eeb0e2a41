package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/internal/natstest"
	"github.com/flux-go/flux/jsstore"
)

// The commands read the JetStream store named by --nats, with the store's
// options in the URL's query.
func TestRunsAndDevOnNATS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := natstest.Single(t)
	store, err := jsstore.OpenURL(ctx, url, jsstore.Prefix("cli"), jsstore.Partitions(2))
	if err != nil {
		t.Fatal(err)
	}
	e, err := flux.NewEngine(flux.Config{Storage: store})
	if err != nil {
		t.Fatal(err)
	}
	res, err := flux.Execute(ctx, e, devFlow, devIn{Name: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	storeURL := url + "?prefix=cli&partitions=2"

	var list strings.Builder
	if err := runsCmd(ctx, &list, []string{"list", "--nats", storeURL, "--json"}); err != nil {
		t.Fatal(err)
	}
	var listed flux.RunPage
	if err := json.Unmarshal([]byte(list.String()), &listed); err != nil {
		t.Fatalf("runs list --json: %v\n%s", err, list.String())
	}
	if len(listed.Runs) != 1 || listed.Runs[0].ID != res.ID || listed.Runs[0].Status != flux.StatusCompleted {
		t.Fatalf("runs list --nats = %+v, want the completed run %s", listed.Runs, res.ID)
	}
	var show strings.Builder
	if err := runsCmd(ctx, &show, []string{"show", "--nats", storeURL, res.ID}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(show.String(), "greet") {
		t.Fatalf("runs show --nats does not show the run's nodes:\n%s", show.String())
	}

	base, _ := startDev(t, "--nats", storeURL)
	var p page
	if code := getJSON(t, base+"/api/runs", &p); code != 200 || len(p.Runs) != 1 || p.Runs[0].ID != res.ID {
		t.Fatalf("GET /api/runs on flux dev --nats: %d %+v, want the one run %s", code, p.Runs, res.ID)
	}

	for _, bad := range []string{url + "?partitions=x", url + "?color=red"} {
		if err := runsCmd(ctx, &strings.Builder{}, []string{"list", "--nats", bad}); err == nil {
			t.Errorf("runs list --nats %s: no error", bad)
		}
	}
}

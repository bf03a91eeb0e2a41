package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/sqlite"
)

func TestParseDev(t *testing.T) {
	t.Parallel()
	c, err := parseDev(nil, io.Discard)
	if err != nil || c.trace != "./.flux/trace.ndjson" || c.port != 4280 || c.host != "127.0.0.1" || c.store != nil {
		t.Errorf("defaults = %+v, %v; want the trace ./.flux/trace.ndjson on 127.0.0.1:4280", c, err)
	}
	c, err = parseDev([]string{"--trace", "x.ndjson", "--port", "0"}, io.Discard)
	if err != nil || c.trace != "x.ndjson" || c.port != 0 {
		t.Errorf("--trace x.ndjson --port 0 = %+v, %v", c, err)
	}
	c, err = parseDev([]string{"--db", "w.db"}, io.Discard)
	if err != nil || c.store == nil || c.store.kind() != "sqlite" || c.store.db != "w.db" {
		t.Errorf("--db w.db = %+v, %v; want the sqlite store", c, err)
	}
	c, err = parseDev([]string{"--postgres", "postgres://u:secret@h/db"}, io.Discard)
	if err != nil || c.store == nil || c.store.kind() != "postgres" {
		t.Errorf("--postgres = %+v, %v; want the postgres store", c, err)
	}
	for _, args := range [][]string{
		{"--trace", "t.ndjson", "--db", "w.db"},
		{"--port", "70000"},
		{"extra"},
		{"--nope"},
	} {
		if _, err := parseDev(args, io.Discard); err == nil {
			t.Errorf("parseDev(%q) accepted bad flags", args)
		}
	}
	if _, err := parseDev([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
	if got := redactURL("postgres://u:secret@h/db"); strings.Contains(got, "secret") {
		t.Errorf("redactURL kept the password: %s", got)
	}
}

// lineWriter sends the first line written to it.
type lineWriter struct{ lines chan string }

func (w lineWriter) Write(p []byte) (int, error) {
	select {
	case w.lines <- string(p):
	default:
	}
	return len(p), nil
}

// startDev runs serveDev with args on a free port and returns its base
// URL and a func that stops it and checks that it stops; the server also
// stops when the test ends.
func startDev(t *testing.T, args ...string) (string, func()) {
	t.Helper()
	c, err := parseDev(append(args, "--port", "0"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := lineWriter{make(chan string, 1)}
	done := make(chan error, 1)
	go func() { done <- serveDev(ctx, c, ln, out) }()
	var line string
	select {
	case line = <-out.lines:
	case err := <-done:
		cancel()
		t.Fatalf("flux dev stopped: %v", err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("flux dev returned %v on shutdown", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("flux dev did not stop within 10s of its context")
			}
		})
	}
	t.Cleanup(stop)
	i := strings.Index(line, "http://")
	if i < 0 {
		t.Fatalf("flux dev printed %q, want its URL", line)
	}
	return strings.TrimSuffix(strings.Fields(line[i:])[0], "/"), stop
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return res.StatusCode
}

type page struct {
	Runs []struct {
		ID       string `json:"id"`
		Workflow string `json:"workflow"`
		Status   string `json:"status"`
	} `json:"runs"`
}

func seedTrace(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "seed-trace.ndjson")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the seed trace is missing: %v", err)
	}
	return p
}

func TestDevServesTrace(t *testing.T) {
	t.Parallel()
	base, stop := startDev(t, "--trace", seedTrace(t))
	var p page
	if code := getJSON(t, base+"/api/runs", &p); code != 200 || len(p.Runs) != 4 {
		t.Fatalf("GET /api/runs: %d with %d runs, want the seed's 4", code, len(p.Runs))
	}
	if p.Runs[0].Workflow != "image-processing" || p.Runs[0].Status != "failed" {
		t.Errorf("newest run %+v, want the failed image-processing run", p.Runs[0])
	}
	res, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), "/assets/app.js") {
		t.Errorf("the page does not load the embedded script: %.200s", body)
	}
	// An open event stream must not hold up the shutdown.
	stream, err := http.Get(base + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	buf := make([]byte, 64)
	if n, err := stream.Body.Read(buf); n == 0 || err != nil {
		t.Fatalf("reading the event stream: %v", err)
	}
	stop()
	if _, err := io.Copy(io.Discard, stream.Body); err != nil {
		t.Errorf("the event stream did not end cleanly: %v", err)
	}
}

type devIn struct {
	Name string `json:"name"`
}

type devData struct {
	Greeting string `json:"greeting"`
}

var devFlow = flux.New[devIn, devData]("greet").
	Step("greet", func(c *flux.Ctx[devIn, devData]) error {
		c.Data.Greeting = "hello " + c.Input.Name
		return nil
	}).
	Commit("send", func(c *flux.Ctx[devIn, devData]) error { return nil })

func TestDevServesSQLite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "workflows.db")
	store, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	e, err := flux.NewEngine(flux.Config{Storage: store})
	if err != nil {
		t.Fatal(err)
	}
	res, err := flux.Execute(context.Background(), e, devFlow, devIn{Name: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	base, _ := startDev(t, "--db", path)
	var p page
	if code := getJSON(t, base+"/api/runs", &p); code != 200 || len(p.Runs) != 1 || p.Runs[0].ID != res.ID {
		t.Fatalf("GET /api/runs: %d %+v, want the one run %s", code, p.Runs, res.ID)
	}
	var d struct {
		Nodes []struct{ Name, Kind, Status string }
		Data  devData
	}
	if code := getJSON(t, base+"/api/run?id="+res.ID, &d); code != 200 || len(d.Nodes) != 2 || d.Nodes[1].Kind != "commit" || d.Data.Greeting != "hello ada" {
		t.Errorf("GET /api/run: %d %+v", code, d)
	}
}

func TestDevRefusesMissingDatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing.db")
	c, err := parseDev([]string{"--db", path}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = serveDev(context.Background(), c, ln, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no SQLite database") {
		t.Errorf("serveDev on a missing database: %v", err)
	}
	if _, statErr := os.Stat(path); statErr == nil {
		t.Error("flux dev created the missing database")
	}
}

package fluxhttp_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flux-go/flux"
	"github.com/flux-go/flux/fluxhttp"
	"github.com/flux-go/flux/internal/triggertest"
)

// BenchmarkHTTPStart measures starts/s through the HTTP API (POST
// workflows/{name}/runs over loopback TCP from 16 goroutines), without
// and with an Idempotency-Key (the answer then reads the run's status),
// runs stored and not executed (Workers -1), beside package trigger's
// BenchmarkStart (flux.Start alone, 16 goroutines).
func BenchmarkHTTPStart(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		for _, keyed := range []bool{false, true} {
			name := kind
			if keyed {
				name += "/key"
			}
			b.Run(name, func(b *testing.B) { benchHTTPStart(b, kind, keyed) })
		}
	}
}

func benchHTTPStart(b *testing.B, kind string, keyed bool) {
	var store flux.Storage
	if kind == "sqlite" {
		store = triggertest.OpenSQLite(b, triggertest.SQLitePath(b))
	} else {
		store = triggertest.OpenPostgres(b, triggertest.PostgresSchema(b))
	}
	e := triggertest.Engine(b, store, -1)
	w, _ := triggertest.Flow()
	h, err := fluxhttp.New(fluxhttp.Config{Engine: e, Authorize: func(*http.Request) error { return nil }}, fluxhttp.Workflow(w))
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	url := srv.URL + "/workflows/order-flow/runs"
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				req, _ := http.NewRequest("POST", url, bytes.NewReader(triggertest.Payload(i)))
				if keyed {
					req.Header.Set("Idempotency-Key", "bench/"+strconv.Itoa(i))
				}
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					b.Errorf("start %d: status %d", i, resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "starts/s")
}

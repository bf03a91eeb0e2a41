package main

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// The raw baseline beside W1: what the same durable writes cost without
// Flux. Each "run" is three writes, as a W1 run makes (its creation, the
// write that records its first steps and starts its commit, and the one
// that records the commit and the outcome): an INSERT of a row and two
// UPDATEs of it, each carrying a body the size of a run's state. C clients
// submit them to one writer that group-commits whatever is queued in one
// transaction, as Flux's stores do: SQLite with synchronous=FULL in WAL
// mode, PostgreSQL over one connection.

// baselineBody is the size of the body each write carries.
const baselineBody = 300

// baselineWrite is one write waiting for the writer.
type baselineWrite struct {
	id     string
	update int // 0 inserts; 1 and 2 update
	done   chan error
}

// baselineWriter commits queued writes in batches.
type baselineWriter struct {
	mu    sync.Mutex
	queue []*baselineWrite
	wake  chan struct{}
}

func (w *baselineWriter) submit(id string, update int) error {
	bw := &baselineWrite{id: id, update: update, done: make(chan error, 1)}
	w.mu.Lock()
	w.queue = append(w.queue, bw)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return <-bw.done
}

// loop hands each batch to commit until ctx ends.
func (w *baselineWriter) loop(ctx context.Context, commit func([]*baselineWrite) error) {
	for {
		w.mu.Lock()
		// As Flux's SQLite writer does: let the clients about to write
		// join the batch, until a few yields bring none.
		for n, idle := 0, 0; idle < 4 && len(w.queue) > 0 && len(w.queue) < 64; {
			if len(w.queue) > n {
				n, idle = len(w.queue), 0
			} else {
				idle++
			}
			w.mu.Unlock()
			runtime.Gosched()
			w.mu.Lock()
		}
		batch := w.queue
		w.queue = nil
		w.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-w.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		err := commit(batch)
		for _, bw := range batch {
			bw.done <- err
		}
	}
}

// benchBaseline runs n baseline runs at concurrency c against the chosen
// store and returns the figures in W1's units (3 steps per run).
func benchBaseline(ctx context.Context, so *storeOptions, n, c int) (benchResult, error) {
	body := strings.Repeat("x", baselineBody)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := &baselineWriter{wake: make(chan struct{}, 1)}
	var commit func([]*baselineWrite) error
	switch so.kind() {
	case "sqlite":
		db, err := sql.Open("sqlite", so.db+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)")
		if err != nil {
			return benchResult{}, err
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		if _, err := db.ExecContext(ctx, `DROP TABLE IF EXISTS baseline_runs;
			CREATE TABLE baseline_runs (id TEXT PRIMARY KEY, status TEXT NOT NULL, version INTEGER NOT NULL, body BLOB NOT NULL)`); err != nil {
			return benchResult{}, err
		}
		ins, err := db.PrepareContext(ctx, `INSERT INTO baseline_runs (id, status, version, body) VALUES (?, 'running', 1, ?)`)
		if err != nil {
			return benchResult{}, err
		}
		up, err := db.PrepareContext(ctx, `UPDATE baseline_runs SET status = ?, version = version + 1, body = ? WHERE id = ? AND version = ?`)
		if err != nil {
			return benchResult{}, err
		}
		commit = func(batch []*baselineWrite) error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			for _, bw := range batch {
				if bw.update == 0 {
					_, err = tx.Stmt(ins).ExecContext(ctx, bw.id, []byte(body))
				} else {
					_, err = tx.Stmt(up).ExecContext(ctx, "running", []byte(body), bw.id, bw.update)
				}
				if err != nil {
					return err
				}
			}
			return tx.Commit()
		}
	case "postgres":
		conn, err := pgx.Connect(ctx, so.postgres)
		if err != nil {
			return benchResult{}, err
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS baseline_runs;
			CREATE TABLE baseline_runs (id text PRIMARY KEY, status text NOT NULL, version bigint NOT NULL, body bytea NOT NULL)`); err != nil {
			return benchResult{}, err
		}
		commit = func(batch []*baselineWrite) error {
			b := &pgx.Batch{}
			b.Queue("BEGIN")
			for _, bw := range batch {
				if bw.update == 0 {
					b.Queue(`INSERT INTO baseline_runs (id, status, version, body) VALUES ($1, 'running', 1, $2)`, bw.id, []byte(body))
				} else {
					b.Queue(`UPDATE baseline_runs SET status = $1, version = version + 1, body = $2 WHERE id = $3 AND version = $4`,
						"running", []byte(body), bw.id, bw.update)
				}
			}
			b.Queue("COMMIT")
			return conn.SendBatch(ctx, b).Close()
		}
	default:
		return benchResult{}, fmt.Errorf("--baseline needs --storage sqlite or postgres: it measures raw durable writes")
	}
	go w.loop(ctx, commit)

	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) || ctx.Err() != nil {
					return
				}
				id := fmt.Sprintf("b_%d", i)
				for u := range 3 {
					if err := w.submit(id, u); err != nil {
						once.Do(func() { firstErr = err })
						return
					}
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return benchResult{}, firstErr
	}
	return benchResult{
		Storage: so.kind() + " raw baseline", Runs: n, Elapsed: elapsed, ConcurrencyLevel: c,
		RunsPerSecond: float64(n) / elapsed.Seconds(), StepsPerSecond: float64(3*n) / elapsed.Seconds(),
		PeakRSSBytes: peakRSS(),
	}, nil
}

package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/flux-go/flux/driver"
)

// Engines in every process hear of runs that need an owner through
// LISTEN/NOTIFY on a channel of the store's schema. A notification is sent
// in the transaction of the write (so it is heard once the write is
// visible) when a run is stored pending and free, an unfinished run's
// lease is given back (a run that goes to wait too: a signal may have made
// it due, and the engines learn its next wake-up), or a signal makes a
// free waiting run due (signals.go). Where notifications do not arrive
// (PgBouncer in transaction mode, a dropped connection), engines still
// look every Config.RecoveryInterval.

// channelName is the notification channel of a schema: at most 63 bytes.
func channelName(schema string) string {
	name := "flux_runs_" + schema
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(schema))
	return "flux_runs_" + hex.EncodeToString(sum[:16])
}

// needsWake reports whether a write lets a run wait for an owner.
func (r *writeReq) needsWake() bool {
	if r.create != nil {
		return driver.NeedsOwner(r.create.Run.Status, r.create.Run.Owner)
	}
	p := r.checkpoint
	return p.Lease < 0 && p.Header != nil && !p.Header.Status.Final()
}

// Wakeups implements [driver.Waker]. The first subscription starts the
// store's listener, which holds one connection of the pool while the store
// is open.
func (s *Store) Wakeups() (<-chan struct{}, func()) {
	c, stop := s.wakes.Subscribe()
	s.listenOnce.Do(func() {
		s.wg.Add(1)
		go s.listen()
	})
	return c, stop
}

// listen relays the notifications of the store's channel to its
// subscribers until the store is closed, connecting again after a failure.
func (s *Store) listen() {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.done
		cancel()
	}()
	listen := "LISTEN " + quoteIdent(s.channel)
	for ctx.Err() == nil {
		conn, err := s.pool.Acquire(ctx)
		if err == nil {
			if _, err = conn.Exec(ctx, listen); err == nil {
				// Runs stored while no one listened are looked for now.
				s.wakes.Signal()
				for err == nil {
					if _, err = conn.Conn().WaitForNotification(ctx); err == nil {
						s.wakes.Signal()
					}
				}
			}
			// The connection is in LISTEN, or broken: it does not go back.
			_ = conn.Hijack().Close(context.Background())
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func quoteIdent(s string) string {
	out := []byte{'"'}
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			out = append(out, '"')
		}
		out = append(out, s[i])
	}
	return string(append(out, '"'))
}

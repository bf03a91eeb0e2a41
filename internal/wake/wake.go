// Package wake tells subscribers, coalesced, that something happened: how
// stores tell the engines of a process that a run may need an owner.
package wake

import "sync"

// Broadcast is a set of subscribers. The zero value is ready to use.
type Broadcast struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

// Subscribe returns a channel that receives after each Signal (several
// signals before a receive count as one), and the function that ends the
// subscription.
func (b *Broadcast) Subscribe() (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	b.mu.Lock()
	if b.subs == nil {
		b.subs = make(map[chan struct{}]struct{})
	}
	b.subs[c] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return c, func() {
		once.Do(func() {
			b.mu.Lock()
			delete(b.subs, c)
			b.mu.Unlock()
		})
	}
}

// Signal tells every subscriber, without waiting for any.
func (b *Broadcast) Signal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// Len returns the number of subscribers.
func (b *Broadcast) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

package jsstore

import "sync"

// memo is a map of hints, bounded in size and safe for concurrent use:
// when full it starts over empty, since losing a hint costs only a read.
type memo[V any] struct {
	mu  sync.Mutex
	m   map[string]V
	max int
}

func newMemo[V any](max int) *memo[V] { return &memo[V]{m: make(map[string]V), max: max} }

func (c *memo[V]) get(k string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

// set keeps v under k, or forgets k if keep is false.
func (c *memo[V]) set(k string, v V, keep bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !keep {
		delete(c.m, k)
		return
	}
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[k] = v
}

// update replaces the value under k, if there is one, with f of it.
func (c *memo[V]) update(k string, f func(V) V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[k]; ok {
		c.m[k] = f(v)
	}
}

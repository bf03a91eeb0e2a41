package flux

import (
	"fmt"

	"github.com/flux-go/flux/driver"
)

// Concurrency limits. A limit bounds the runs of a workflow that engines
// execute at once in the background, across every engine sharing the
// storage: runs started with [Start] beyond it stay pending, in order, and
// start as others end. A run counts from when an engine takes it until it
// ends, except while it waits (a sleep, a signal) holding no engine.
// Runs executed inline by [Execute] are not held back, but count.

// Concurrency limits the runs of w executing at once to max (0: no
// limit).
func (w *Workflow[In, Data]) Concurrency(max int) *Workflow[In, Data] {
	if max < 0 {
		w.errs = append(w.errs, fmt.Errorf("Concurrency(%d): must be 0 or more", max))
	}
	w.limit.Max = max
	return w
}

// ConcurrencyKey limits the runs of w executing at once with the same key
// to perKey: key(input), computed when the run is started, groups them —
// one run at a time per customer, say, with perKey 1.
func (w *Workflow[In, Data]) ConcurrencyKey(perKey int, key func(In) string) *Workflow[In, Data] {
	switch {
	case perKey < 0:
		w.errs = append(w.errs, fmt.Errorf("ConcurrencyKey(%d): must be 0 or more", perKey))
	case key == nil:
		w.errs = append(w.errs, fmt.Errorf("ConcurrencyKey(%d, nil): key function is nil", perKey))
	}
	w.limit.PerKey, w.keyOf = perKey, key
	return w
}

// limits returns w's limit, and false if it has none.
func (w *Workflow[In, Data]) limits() (driver.Limit, bool) {
	l := w.limit
	l.Workflow = w.name
	return l, l.Max > 0 || l.PerKey > 0
}

// concurrencyKey returns the key of a run of w with input in.
func (w *Workflow[In, Data]) concurrencyKey(in In) (string, error) {
	if w.keyOf == nil {
		return "", nil
	}
	var k string
	if err := safeCall(func() error { k = w.keyOf(in); return nil }); err != nil {
		return "", fmt.Errorf("%w for workflow %q: its concurrency key: %w", ErrInvalidInput, w.name, err)
	}
	return k, nil
}

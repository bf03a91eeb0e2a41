package flux_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: an
// engine left open, a handler abandoned at its timeout that never returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

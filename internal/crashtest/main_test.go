package crashtest

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs a child process instead of the tests when the parent test
// re-executed the binary with childEnv set.
func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(childMain(cfg))
	}
	goleak.VerifyTestMain(m)
}

package tracefile

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// childEnv, when set, makes the test binary act as one of the writer
// processes of TestMultiProcessAppend instead of running tests.
const childEnv = "TRACEFILE_TEST_CHILD"

// TestMain fails the package if a Sink's goroutine outlives its test.
func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	goleak.VerifyTestMain(m)
}

package crash_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		// The child: it is killed with SIGKILL, or exits once its
		// client has stopped. goleak would only look at the client
		// goroutines of a process that is about to vanish anyway.
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}

package mqtttest

import (
	"io"
	"testing"
)

// closeAtCleanup is the common part of the New... constructors: it fails the
// test if starting v failed, or else has t close v when it ends.
func closeAtCleanup[T io.Closer](t testing.TB, v T, err error) T {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Error(err)
		}
	})
	return v
}

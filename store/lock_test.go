package store_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt/store"
)

const childEnv = "STORE_TEST_LOCK_CHILD"

func TestSecondOpenRefused(t *testing.T) {
	p := newPath(t)
	s := open(t, p, store.Options{})
	_, err := store.Open(p, store.Options{})
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), p) {
		t.Fatalf("second Open: %v, want ErrLocked naming %s", err, p)
	}
	must(t, s.Close())
	s = open(t, p, store.Options{})
	must(t, s.Close())
}

// TestSecondProcessRefused opens the store in a child process (this test
// binary run again) while the parent holds it, and again after.
func TestSecondProcessRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	p := newPath(t)
	child := func() string {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+p)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v: %s", err, out)
		}
		return string(out)
	}
	s := open(t, p, store.Options{})
	if out := child(); !strings.HasPrefix(out, "locked: ") || !strings.Contains(out, p) {
		t.Fatalf("child opening a held store said %q, want locked and the path", out)
	}
	must(t, s.Close())
	if out := child(); out != "opened\n" {
		t.Fatalf("child opening a free store said %q", out)
	}
}

// lockChild is the child of TestSecondProcessRefused.
func lockChild() int {
	s, err := store.Open(os.Getenv(childEnv), store.Options{})
	switch {
	case errors.Is(err, store.ErrLocked):
		os.Stdout.WriteString("locked: " + err.Error() + "\n")
	case err != nil:
		os.Stdout.WriteString("error: " + err.Error() + "\n")
	default:
		s.Close()
		os.Stdout.WriteString("opened\n")
	}
	return 0
}

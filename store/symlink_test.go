//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package store_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt/store"
)

// Whoever can write in the store's directory can plant a symbolic link at
// one of the store's paths, pointing at a file of the store's user. The
// store must never write through such a link: these tests plant one and
// check that the file it points at keeps its content and mode.

// victim is a file of the store's user that a planted link points at.
type victim struct {
	path string
	data []byte
	mode fs.FileMode
}

func newVictim(t *testing.T) victim {
	t.Helper()
	v := victim{
		path: filepath.Join(t.TempDir(), "victim"),
		data: []byte("precious: not a store file\n"),
		mode: 0o640,
	}
	must(t, os.WriteFile(v.path, v.data, 0o600))
	must(t, os.Chmod(v.path, v.mode))
	return v
}

// check fails t if the victim file changed.
func (v victim) check(t *testing.T) {
	t.Helper()
	st, err := os.Stat(v.path)
	must(t, err)
	if got := readFile(t, v.path); !bytes.Equal(got, v.data) {
		t.Errorf("the file behind the link was written: %d bytes now, %q...", len(got), got[:min(len(got), 32)])
	}
	if st.Mode() != v.mode {
		t.Errorf("the file behind the link has mode %v now, was %v", st.Mode(), v.mode)
	}
}

// regular fails t unless name is a regular file, not a link.
func regular(t *testing.T, name string) {
	t.Helper()
	st, err := os.Lstat(name)
	must(t, err)
	if !st.Mode().IsRegular() {
		t.Fatalf("%s has mode %v, want a regular file", name, st.Mode())
	}
}

// A link planted at path.tmp while the store is open is not followed by
// the next compaction (which used to open it with O_TRUNC and fill the
// file behind it with the store's records): the compaction removes it and
// creates its own file, and the store goes on.
func TestCompactionIgnoresLinkAtTmp(t *testing.T) {
	v := newVictim(t)
	p := newPath(t)
	s := open(t, p, store.Options{})
	want := map[uint64]string{1: "payload that must stay in the store"}
	must(t, s.Put(1, []byte(want[1])))
	must(t, s.Sync())
	must(t, os.Symlink(v.path, p+".tmp"))
	churn(t, s, want) // Sync compacts
	v.check(t)
	regular(t, p)
	if _, err := os.Lstat(p + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s.tmp after the compaction: %v", p, err)
	}
	st, err := os.Stat(p)
	must(t, err)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("the compacted file has mode %v, want 0600", st.Mode())
	}
	must(t, s.Close())
	s = open(t, p, store.Options{})
	defer s.Close()
	checkState(t, s, want)
}

// A link swapped in for path.tmp after it was written is renamed to path;
// the store must not then open path through it and append its records to
// the file behind it. It fails instead, with an error that names the link.
func TestCompactionRefusesLinkSwappedIn(t *testing.T) {
	v := newVictim(t)
	p := newPath(t)
	s := open(t, p, store.Options{})
	defer s.Close()
	must(t, s.Put(1, []byte("one")))
	must(t, s.Sync())
	store.SetHook(s, func(stage string) error {
		if stage == "synced" {
			must(t, os.Remove(p+".tmp"))
			must(t, os.Symlink(v.path, p+".tmp"))
		}
		return nil
	})
	err := s.Compact()
	if err == nil || !strings.Contains(err.Error(), "symbolic link") || !strings.Contains(err.Error(), p) {
		t.Errorf("Compact when path became a link: %v, want an error that says so", err)
	}
	store.SetHook(s, nil)
	if err := s.Put(2, []byte("two")); err == nil {
		must(t, s.Sync())
		t.Error("Put after the store lost its file: no error")
	}
	v.check(t)
}

// A link at path.lock is refused: Open fails with an error that names it,
// and takes no lock on (nor creates) the file behind it.
func TestOpenRefusesLinkAtLock(t *testing.T) {
	t.Run("to a file", func(t *testing.T) {
		v := newVictim(t)
		p := newPath(t)
		must(t, os.Symlink(v.path, p+".lock"))
		refused(t, p, p+".lock")
		v.check(t)
	})
	t.Run("to nothing", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "made-by-the-store")
		p := newPath(t)
		must(t, os.Symlink(target, p+".lock"))
		refused(t, p, p+".lock")
		if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open created the file behind the lock link: %v", err)
		}
	})
}

// A link at path itself is refused too: compaction would replace it by a
// regular file anyway (rename replaces the link, not its target), so a
// store behind a link would silently leave the file it points at; and a
// planted link would make the store append to another file. Link the
// directory instead.
func TestOpenRefusesLinkAtPath(t *testing.T) {
	t.Run("to a store", func(t *testing.T) {
		q := newPath(t)
		s := open(t, q, store.Options{})
		must(t, s.Put(1, []byte("one")))
		must(t, s.Close())
		before := readFile(t, q)
		p := newPath(t)
		must(t, os.Symlink(q, p))
		refused(t, p, p)
		if !bytes.Equal(readFile(t, q), before) {
			t.Error("the store behind the link changed")
		}
	})
	t.Run("to nothing", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "made-by-the-store")
		p := newPath(t)
		must(t, os.Symlink(target, p))
		refused(t, p, p)
		if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open created the file behind the link: %v", err)
		}
	})
	t.Run("directory behind a link", func(t *testing.T) {
		dir := t.TempDir()
		link := filepath.Join(t.TempDir(), "dir")
		must(t, os.Symlink(dir, link))
		s := open(t, filepath.Join(link, "session.db"), store.Options{})
		must(t, s.Put(1, []byte("one")))
		must(t, s.Compact())
		must(t, s.Close())
		regular(t, filepath.Join(dir, "session.db"))
	})
}

// refused opens path and expects an error naming link as a symbolic link.
func refused(t *testing.T, path, link string) {
	t.Helper()
	s, err := store.Open(path, store.Options{})
	if err == nil {
		s.Close()
		t.Fatalf("Open with a link at %s: no error", link)
	}
	if !strings.Contains(err.Error(), "symbolic link") || !strings.Contains(err.Error(), link) {
		t.Fatalf("Open with a link at %s: %v, want an error that says so", link, err)
	}
	// A second try fails the same way: the first left no lock behind.
	if _, err2 := store.Open(path, store.Options{}); err2 == nil || err2.Error() != err.Error() {
		t.Fatalf("second Open: %v, want %v", err2, err)
	}
}

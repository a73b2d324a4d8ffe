package store_test

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt/store"
)

// churn puts and deletes until Sync has compacted the log at least once,
// and returns the live state, which it checks along the way.
func churn(t *testing.T, s *store.File, want map[uint64]string) {
	t.Helper()
	value := strings.Repeat("x", 200)
	compacted := false
	for i := uint64(0); !compacted; i++ {
		if i > 100_000 {
			t.Fatal("the log never got compacted")
		}
		must(t, s.Put(i, []byte(value)))
		if i%10 != 0 {
			must(t, s.Delete(i-1))
			delete(want, i-1)
		}
		want[i] = value
		before := store.LogSize(s)
		must(t, s.Sync())
		compacted = store.LogSize(s) < before
	}
	checkState(t, s, want)
}

func TestCompaction(t *testing.T) {
	p := newPath(t)
	s := open(t, p, store.Options{NoSync: true})
	want := map[uint64]string{1 << 40: "kept from the start"}
	must(t, s.Put(1<<40, []byte(want[1<<40])))
	churn(t, s, want)
	st, err := os.Stat(p)
	must(t, err)
	if compacted := 16 + int64(len(want))*13 + s.Size(); st.Size() != compacted {
		t.Fatalf("after compaction the file has %d bytes, want %d", st.Size(), compacted)
	}
	data := readFile(t, p)
	recs, end := prefix(data)
	if end != int64(len(data)) || !maps.Equal(state(recs), want) || len(recs) != len(want) {
		t.Fatalf("the compacted file holds %d records (ending at %d of %d), want the %d live ones", len(recs), end, len(data), len(want))
	}
	// The store goes on from the compacted file.
	must(t, s.Put(7, []byte("after")))
	want[7] = "after"
	must(t, s.Delete(1<<40))
	delete(want, 1<<40)
	checkState(t, s, want)
	must(t, s.Close())
	s = open(t, p, store.Options{})
	defer s.Close()
	checkState(t, s, want)
}

// TestCompactionCrash copies the directory at each stage of a compaction,
// as a crash would leave it, and opens every copy.
func TestCompactionCrash(t *testing.T) {
	p := newPath(t)
	s := open(t, p, store.Options{NoSync: true})
	want := map[uint64]string{}
	for i := range uint64(50) {
		must(t, s.Put(i, []byte(strings.Repeat("v", int(i)))))
		want[i] = strings.Repeat("v", int(i))
	}
	for i := uint64(0); i < 50; i += 2 {
		must(t, s.Delete(i))
		delete(want, i)
	}
	must(t, s.Sync())
	snapshots := map[string]string{}
	store.SetHook(s, func(stage string) error {
		snapshots[stage] = snapshot(t, p)
		return nil
	})
	must(t, s.Compact())
	must(t, s.Close())
	if len(snapshots) != 2 {
		t.Fatalf("stages seen: %v", snapshots)
	}
	for stage, q := range snapshots {
		if _, err := os.Stat(q + ".tmp"); (stage == "synced") != (err == nil) {
			t.Fatalf("at %s, the .tmp exists: %v", stage, err == nil)
		}
		s := open(t, q, store.Options{})
		checkState(t, s, want)
		must(t, s.Close())
		if _, err := os.Stat(q + ".tmp"); !os.IsNotExist(err) {
			t.Fatalf("Open after a crash at %s left the .tmp: %v", stage, err)
		}
	}
}

// snapshot copies the store file and its .tmp, if any, to a new directory.
func snapshot(t *testing.T, p string) string {
	q := filepath.Join(t.TempDir(), filepath.Base(p))
	for _, suffix := range []string{"", ".tmp"} {
		b, err := os.ReadFile(p + suffix)
		if err == nil {
			err = os.WriteFile(q+suffix, b, 0o600)
		}
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	return q
}

// A .tmp of any content next to the file is a compaction that did not
// finish: it is ignored and removed.
func TestLeftoverTmp(t *testing.T) {
	data, final := sample(t)
	for _, tmp := range [][]byte{nil, []byte("garbage"), data[:len(data)/2], header} {
		p := writeStore(t, data)
		must(t, os.WriteFile(p+".tmp", tmp, 0o600))
		s := open(t, p, store.Options{})
		checkState(t, s, final)
		must(t, s.Close())
		if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
			t.Fatalf("the .tmp is still there: %v", err)
		}
	}
}

func TestCompactionFailure(t *testing.T) {
	boom := errors.New("boom")
	t.Run("before the rename", func(t *testing.T) {
		p := newPath(t)
		s := open(t, p, store.Options{})
		defer s.Close()
		must(t, s.Put(1, []byte("one")))
		store.SetHook(s, func(stage string) error { return boom })
		if err := s.Compact(); !errors.Is(err, boom) {
			t.Fatalf("Compact: %v", err)
		}
		if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
			t.Fatalf("a failed compaction left its .tmp: %v", err)
		}
		// The store works on, on the old file.
		store.SetHook(s, nil)
		must(t, s.Put(2, []byte("two")))
		must(t, s.Sync())
		checkState(t, s, map[uint64]string{1: "one", 2: "two"})
	})
	t.Run("after the rename", func(t *testing.T) {
		p := newPath(t)
		s := open(t, p, store.Options{})
		must(t, s.Put(1, []byte("one")))
		store.SetHook(s, func(stage string) error {
			if stage == "renamed" {
				return boom
			}
			return nil
		})
		if err := s.Compact(); !errors.Is(err, boom) {
			t.Fatalf("Compact: %v", err)
		}
		if err := s.Put(2, nil); !errors.Is(err, boom) {
			t.Fatalf("Put after the directory could not be synced: %v", err)
		}
		s.Close()
		s = open(t, p, store.Options{})
		defer s.Close()
		checkState(t, s, map[uint64]string{1: "one"})
	})
	t.Run("in Sync", func(t *testing.T) {
		s := open(t, newPath(t), store.Options{NoSync: true})
		defer s.Close()
		failed := 0
		store.SetHook(s, func(string) error { failed++; return boom })
		want := map[uint64]string{}
		for i := range uint64(6000) { // about 1.5 MB of log
			must(t, s.Put(i, make([]byte, 200)))
			must(t, s.Delete(i-1))
			delete(want, i-1)
			want[i] = string(make([]byte, 200))
			must(t, s.Sync()) // the records are durable: no error
		}
		if failed != 1 {
			t.Fatalf("compaction tried %d times, want once until the log grows by another MiB", failed)
		}
		checkState(t, s, want)
		store.SetHook(s, nil)
		churn(t, s, want)
	})
}

// A record that changed on the disk after Open checked it stops the
// compaction, which must not give it a new checksum.
func TestCompactionFindsDamage(t *testing.T) {
	p := newPath(t)
	s := open(t, p, store.Options{})
	must(t, s.Put(1, []byte("one")))
	must(t, s.Put(2, []byte("two")))
	must(t, s.Sync())
	w, err := os.OpenFile(p, os.O_WRONLY, 0)
	must(t, err)
	_, err = w.WriteAt([]byte("O"), 16+21) // "one" -> "One"
	must(t, err)
	must(t, w.Close())
	if err := s.Compact(); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Compact over a damaged record: %v", err)
	}
	if err := s.Put(3, nil); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Put after the damage was found: %v", err)
	}
	s.Close()
	if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("the .tmp is still there: %v", err)
	}
	if _, err := store.Open(p, store.Options{}); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
}

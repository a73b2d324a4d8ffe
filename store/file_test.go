package store_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt/store"
)

func TestFileRoundTrip(t *testing.T) {
	p := newPath(t)
	s := open(t, p, store.Options{})
	want := map[uint64]string{}
	for i := range uint64(300) {
		v := strings.Repeat(string(rune('a'+i%26)), int(i%70))
		must(t, s.Put(i*7919, []byte(v)))
		want[i*7919] = v
	}
	for i := uint64(0); i < 300; i += 3 {
		must(t, s.Delete(i*7919))
		delete(want, i*7919)
	}
	must(t, s.Close()) // Close syncs
	for range 2 {
		s = open(t, p, store.Options{})
		checkState(t, s, want)
		if s.Len() != len(want) || s.Path() != p {
			t.Fatalf("Len %d Path %q, want %d and %q", s.Len(), s.Path(), len(want), p)
		}
		must(t, s.Close())
	}
}

// TestFileModel runs random operations against a File and a map, closing,
// reopening and compacting on the way.
func TestFileModel(t *testing.T) {
	p := newPath(t)
	rng := rand.New(rand.NewPCG(1, 2))
	s := open(t, p, store.Options{MaxBytes: 4000, NoSync: true})
	defer func() { s.Close() }()
	want := map[uint64]string{}
	var live int64
	for i := range 5000 {
		k := rng.Uint64N(40)
		switch r := rng.IntN(100); {
		case r < 55:
			v := strings.Repeat("v", rng.IntN(200)) + fmt.Sprint(i)
			next := live + int64(8+len(v))
			if old, ok := want[k]; ok {
				next -= int64(8 + len(old))
			}
			err := s.Put(k, []byte(v))
			if next > 4000 {
				if !errors.Is(err, store.ErrFull) {
					t.Fatalf("op %d: Put over the limit: %v", i, err)
				}
				break
			}
			must(t, err)
			want[k], live = v, next
		case r < 90:
			must(t, s.Delete(k))
			if old, ok := want[k]; ok {
				live -= int64(8 + len(old))
				delete(want, k)
			}
		case r < 95:
			must(t, s.Sync())
		case r < 98:
			must(t, s.Close())
			s = open(t, p, store.Options{MaxBytes: 4000, NoSync: true})
			checkState(t, s, want)
		default:
			must(t, s.Compact())
			checkState(t, s, want)
		}
		if s.Size() != live {
			t.Fatalf("op %d: Size %d, want %d", i, s.Size(), live)
		}
	}
	checkState(t, s, want)
}

func TestSyncAfterNothingIsCheap(t *testing.T) {
	s := open(t, newPath(t), store.Options{})
	defer s.Close()
	must(t, s.Put(1, []byte("x")))
	must(t, s.Sync())
	w, sy := store.Counts(s)
	if w != 1 || sy < 1 {
		t.Fatalf("after one Put and Sync: %d writes, %d fsyncs", w, sy)
	}
	must(t, s.Sync())
	must(t, s.Delete(99)) // absent: changes nothing
	must(t, s.Sync())
	checkState(t, s, map[uint64]string{1: "x"})
	must(t, s.Sync())
	if w2, sy2 := store.Counts(s); w2 != w || sy2 != sy {
		t.Fatalf("Syncs with nothing to do made %d writes and %d fsyncs", w2-w, sy2-sy)
	}
	must(t, s.Delete(1))
	must(t, s.Sync())
	if w2, sy2 := store.Counts(s); w2 != w+1 || sy2 != sy+1 {
		t.Fatalf("a Delete and a Sync made %d writes and %d fsyncs, want 1 and 1", w2-w, sy2-sy)
	}
}

func TestGroupCommit(t *testing.T) {
	s := open(t, newPath(t), store.Options{})
	defer s.Close()
	for i := range uint64(64) {
		must(t, s.Put(i, make([]byte, 100)))
	}
	w0, s0 := store.Counts(s)
	must(t, s.Sync())
	if w, sy := store.Counts(s); w-w0 != 1 || sy-s0 != 1 {
		t.Fatalf("Sync of 64 Puts made %d writes and %d fsyncs, want 1 and 1", w-w0, sy-s0)
	}
}

func TestClosed(t *testing.T) {
	p := newPath(t)
	s := open(t, p, store.Options{})
	must(t, s.Close())
	for name, err := range map[string]error{
		"Put": s.Put(1, nil), "Delete": s.Delete(1), "Sync": s.Sync(), "Close": s.Close(),
		"Load": s.Load(func(uint64, []byte) error { return nil }), "Compact": s.Compact(),
	} {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

// After a write fails, the store refuses work until it is reopened, and
// what was synced before is intact.
func TestFailedWriteIsSticky(t *testing.T) {
	p := newPath(t)
	s := open(t, p, store.Options{})
	must(t, s.Put(1, []byte("safe")))
	must(t, s.Sync())
	store.Break(s)
	must(t, s.Put(2, []byte("lost")))
	err1 := s.Sync()
	err2 := s.Put(3, nil)
	if err1 == nil || err2 == nil || err1 != err2 || !strings.Contains(err1.Error(), "open it again") {
		t.Fatalf("after a failed write: Sync %v, Put %v; want the same error, saying to reopen", err1, err2)
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close after a failed write returned nil")
	}
	s = open(t, p, store.Options{}) // the lock was released
	defer s.Close()
	checkState(t, s, map[uint64]string{1: "safe"})
}

func TestOptions(t *testing.T) {
	if _, err := store.Open(newPath(t), store.Options{MaxBytes: -1}); err == nil || !strings.Contains(err.Error(), "MaxBytes") {
		t.Fatalf("Open with MaxBytes -1: %v", err)
	}
	if _, err := store.Open(newPath(t)+"/no/such/dir/x", store.Options{}); err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
	// A file written under a higher limit opens whole under a lower one.
	p := newPath(t)
	s := open(t, p, store.Options{})
	must(t, s.Put(1, make([]byte, 1000)))
	must(t, s.Close())
	s = open(t, p, store.Options{MaxBytes: 100})
	defer s.Close()
	if s.Size() != 1008 {
		t.Fatalf("Size %d, want 1008", s.Size())
	}
	if err := s.Put(2, nil); !errors.Is(err, store.ErrFull) {
		t.Fatalf("Put into an over-full store: %v", err)
	}
	must(t, s.Delete(1))
	must(t, s.Put(2, nil))
}

func TestFileMode(t *testing.T) {
	p := newPath(t)
	s := open(t, p, store.Options{})
	must(t, s.Close())
	for _, name := range []string{p, p + ".lock"} {
		st, err := os.Stat(name)
		must(t, err)
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: others may read the session", name, st.Mode())
		}
	}
	if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("%s.tmp left behind: %v", p, err)
	}
}

func TestLargeValues(t *testing.T) {
	p := newPath(t)
	s := open(t, p, store.Options{NoSync: true})
	big := strings.Repeat("0123456789", 300_000) // 3 MB: more than the write buffer
	must(t, s.Put(1, []byte("small")))
	must(t, s.Put(2, []byte(big)))
	must(t, s.Put(3, []byte(big[:2_000_000])))
	checkState(t, s, map[uint64]string{1: "small", 2: big, 3: big[:2_000_000]}) // partly unwritten
	must(t, s.Close())
	s = open(t, p, store.Options{NoSync: true})
	defer s.Close()
	checkState(t, s, map[uint64]string{1: "small", 2: big, 3: big[:2_000_000]})
}

package store_test

import (
	"errors"
	"testing"

	"github.com/robustmqtt/mqtt/store"
)

// Both stores obey the same contract.
var impls = []struct {
	name string
	new  func(t *testing.T, limit int64) store.Store
}{
	{"Memory", func(t *testing.T, limit int64) store.Store { return store.NewMemoryLimit(limit) }},
	{"File", func(t *testing.T, limit int64) store.Store {
		s := open(t, newPath(t), store.Options{MaxBytes: limit, NoSync: true})
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

func TestContract(t *testing.T) {
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			s := impl.new(t, 0)
			checkState(t, s, map[uint64]string{})
			v := []byte("ten")
			must(t, s.Put(10, v))
			v[0] = 'X' // Put copied it
			must(t, s.Put(2, []byte("two")))
			must(t, s.Put(^uint64(0), []byte("max")))
			must(t, s.Put(0, nil))
			must(t, s.Put(2, []byte("two again")))
			must(t, s.Delete(10))
			must(t, s.Delete(10))   // absent: no error
			must(t, s.Delete(1234)) // never there
			must(t, s.Sync())
			must(t, s.Sync())
			checkState(t, s, map[uint64]string{0: "", 2: "two again", ^uint64(0): "max"})

			stop := errors.New("stop")
			n := 0
			err := s.Load(func(uint64, []byte) error { n++; return stop })
			if err != stop || n != 1 {
				t.Fatalf("Load with fn failing: err %v after %d calls, want the fn's error after 1", err, n)
			}
		})
	}
}

func TestFull(t *testing.T) {
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			s := impl.new(t, 100) // 8 bytes per key + values
			must(t, s.Put(1, make([]byte, 42)))
			must(t, s.Put(2, make([]byte, 42))) // 100: exactly full
			want := load(t, s)
			for _, tc := range []struct {
				key uint64
				n   int
			}{{3, 0}, {1, 43}, {2, 1000}} {
				err := s.Put(tc.key, make([]byte, tc.n))
				if !errors.Is(err, store.ErrFull) {
					t.Fatalf("Put(%d, %d bytes) on a full store: %v, want ErrFull", tc.key, tc.n, err)
				}
			}
			checkState(t, s, want)
			must(t, s.Put(1, make([]byte, 10))) // smaller: fits
			must(t, s.Put(3, make([]byte, 24))) // 50+50 again
			must(t, s.Delete(2))
			must(t, s.Put(4, make([]byte, 42)))
			must(t, s.Sync())
		})
	}
}

func TestFullChangesNothingOnDisk(t *testing.T) {
	p := newPath(t)
	s := open(t, p, store.Options{MaxBytes: 50})
	must(t, s.Put(1, []byte("a value")))
	must(t, s.Sync())
	before := readFile(t, p)
	w0, s0 := store.Counts(s)
	if err := s.Put(2, make([]byte, 100)); !errors.Is(err, store.ErrFull) {
		t.Fatalf("Put over the limit: %v, want ErrFull", err)
	}
	must(t, s.Sync())
	if w, sy := store.Counts(s); w != w0 || sy != s0 {
		t.Fatalf("a refused Put led to %d writes and %d fsyncs", w-w0, sy-s0)
	}
	must(t, s.Close())
	if after := readFile(t, p); string(after) != string(before) {
		t.Fatalf("the file changed after a refused Put")
	}
	s = open(t, p, store.Options{})
	defer s.Close()
	checkState(t, s, map[uint64]string{1: "a value"})
}

func TestMemorySurvivesClose(t *testing.T) {
	m := store.NewMemory()
	must(t, m.Put(1, []byte("x")))
	must(t, m.Close())
	checkState(t, m, map[uint64]string{1: "x"})
	must(t, m.Put(2, []byte("yz")))
	if m.Len() != 2 || m.Size() != 8+1+8+2 {
		t.Fatalf("Len %d Size %d, want 2 and 19", m.Len(), m.Size())
	}
}

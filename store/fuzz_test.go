package store_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/robustmqtt/mqtt/store"
)

// seeds adds a valid log, cut and damaged versions of it to a fuzz corpus.
func seeds(f *testing.F) {
	data, _ := sample(f)
	recs, _ := prefix(data)
	f.Add([]byte{})
	f.Add(header)
	f.Add(data)
	f.Add(data[:len(data)-3])
	f.Add(append(bytes.Clone(data), make([]byte, 40)...))
	f.Add(append(bytes.Clone(data[:recs[1].off]), encode(1, 1, []byte("v"), func(n *uint32) { *n = 1 << 31 })...))
	for _, r := range recs {
		d := bytes.Clone(data)
		d[r.off+13] ^= 1
		f.Add(d)
	}
}

// verdict checks recovery's decision about data (err) against the
// reference parser, and returns the intact prefix: a failure must be an
// ErrCorrupt, and an intact file must not fail; a success must not have
// dropped an intact record after the prefix.
func verdict(t *testing.T, data []byte, err error) ([]rec, int64) {
	recs, end := prefix(data)
	if err != nil {
		if !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("recovery failed with something else than ErrCorrupt: %v", err)
		}
		if end > 0 && end == int64(len(data)) {
			t.Fatalf("recovery refused an intact file: %v", err)
		}
		return recs, end
	}
	if end == 0 && (len(data) >= 16 || !bytes.Equal(data, header[:len(data)])) {
		t.Fatalf("recovery accepted a file whose header is neither intact nor a prefix: %x", data[:min(len(data), 16)])
	}
	if end > 0 {
		for q := trusted(data, end); q < int64(len(data)); q++ {
			if r, ok := intactAt(data, q); ok {
				t.Fatalf("recovery kept the records up to %d and dropped the intact record at %d: %+v", end, q, r)
			}
		}
	}
	return recs, end
}

// FuzzScan runs the recovery of Open on arbitrary bytes in memory: it must
// not panic, and must decide as verdict says; the records it accepts are
// exactly those of the intact prefix.
func FuzzScan(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		found, end, fresh, err := store.Scan(data)
		recs, wantEnd := verdict(t, data, err)
		if err != nil {
			return
		}
		if fresh != (wantEnd == 0) || (!fresh && end != wantEnd) {
			t.Fatalf("recovery ends at %d (fresh %v), want %d", end, fresh, wantEnd)
		}
		if len(found) != len(recs) {
			t.Fatalf("recovery found %d records, want %d", len(found), len(recs))
		}
		for i, r := range recs {
			if want := (store.Found{Op: r.op, Key: r.key, Off: r.off, ValueLen: uint32(len(r.value))}); found[i] != want {
				t.Fatalf("record %d: found %+v, want %+v", i, found[i], want)
			}
		}
	})
}

// FuzzOpen opens arbitrary bytes as a store file: Open must not panic and
// must decide as verdict says; a failed Open leaves the file untouched; a
// successful one Loads exactly the state of the intact prefix and has cut
// the file to it.
func FuzzOpen(f *testing.F) {
	seeds(f)
	// One file for every input, overwritten: a fresh directory or file
	// each time would cost ten times more than the test, on ext4.
	p := filepath.Join(f.TempDir(), "session.db")
	f.Fuzz(func(t *testing.T, data []byte) {
		overwrite(t, p, data)
		s, err := store.Open(p, store.Options{NoSync: true})
		recs, end := verdict(t, data, err)
		if err != nil {
			if !bytes.Equal(readFile(t, p), data) {
				t.Fatal("a failed Open changed the file")
			}
			return
		}
		defer s.Close()
		checkState(t, s, state(recs))
		got, want := readFile(t, p), data[:end]
		if end == 0 {
			want = header
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("after Open the file has %d bytes, want %d", len(got), len(want))
		}
	})
}

// trusted returns the end of the record at off as its length field says,
// if that field's checksum holds; off+1 otherwise.
func trusted(data []byte, off int64) int64 {
	d := data[off:]
	if len(d) >= 8 && crc32.Checksum(d[:4], crcTable) == binary.BigEndian.Uint32(d[4:]) {
		return off + 12 + int64(binary.BigEndian.Uint32(d))
	}
	return off + 1
}

func overwrite(t *testing.T, p string, data []byte) {
	w, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	must(t, err)
	defer w.Close()
	_, err = w.WriteAt(data, 0)
	must(t, err)
	must(t, w.Truncate(int64(len(data))))
}

package store_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/robustmqtt/mqtt/store"
)

// The file format, written out again from the package documentation, so
// that the tests check the code against the description and not against
// itself.
var (
	crcTable = crc32.MakeTable(crc32.Castagnoli)
	header   = func() []byte {
		h := append([]byte("RMQSTORE"), 0, 0, 0, 1)
		return binary.BigEndian.AppendUint32(h, crc32.Checksum(h, crcTable))
	}()
)

// rec is one record as the tests see it in a file.
type rec struct {
	off, end int64
	op       byte // 1 put, 2 delete
	key      uint64
	value    []byte
}

// encode returns the bytes of a record with the given op, key and value;
// fix may alter the length field before the checksums are computed.
func encode(op byte, key uint64, value []byte, fix func(length *uint32)) []byte {
	length := uint32(9 + len(value))
	if fix != nil {
		fix(&length)
	}
	body := binary.BigEndian.AppendUint64([]byte{op}, key)
	body = append(body, value...)
	var b []byte
	b = binary.BigEndian.AppendUint32(b, length)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(body, crcTable))
	return append(b, body...)
}

// intactAt returns the record at off if it is intact and wholly inside data.
func intactAt(data []byte, off int64) (rec, bool) {
	d := data[off:]
	if len(d) < 21 {
		return rec{}, false
	}
	n := int64(binary.BigEndian.Uint32(d))
	if crc32.Checksum(d[:4], crcTable) != binary.BigEndian.Uint32(d[4:]) ||
		n < 9 || n > 9+store.MaxValueLen || 12+n > int64(len(d)) ||
		crc32.Checksum(d[12:12+n], crcTable) != binary.BigEndian.Uint32(d[8:]) {
		return rec{}, false
	}
	r := rec{off: off, end: off + 12 + n, op: d[12], key: binary.BigEndian.Uint64(d[13:]), value: d[21 : 12+n]}
	if r.op != 1 && (r.op != 2 || n != 9) {
		return rec{}, false
	}
	return r, true
}

// prefix returns the intact records at the start of data's log, and the
// offset where they end (0 if the header is not intact).
func prefix(data []byte) ([]rec, int64) {
	if len(data) < 16 || !bytes.Equal(data[:16], header) {
		return nil, 0
	}
	var recs []rec
	off := int64(16)
	for {
		r, ok := intactAt(data, off)
		if !ok {
			return recs, off
		}
		recs = append(recs, r)
		off = r.end
	}
}

// state replays records into the live map.
func state(recs []rec) map[uint64]string {
	m := map[uint64]string{}
	for _, r := range recs {
		if r.op == 1 {
			m[r.key] = string(r.value)
		} else {
			delete(m, r.key)
		}
	}
	return m
}

// load returns what s.Load reports, checking the key order.
func load(t testing.TB, s store.Store) map[uint64]string {
	t.Helper()
	m := map[uint64]string{}
	var last uint64
	err := s.Load(func(k uint64, v []byte) error {
		if len(m) > 0 && k <= last {
			return fmt.Errorf("key %d after key %d", k, last)
		}
		last = k
		m[k] = string(v)
		return nil
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m
}

func checkState(t testing.TB, s store.Store, want map[uint64]string) {
	t.Helper()
	if got := load(t, s); !maps.Equal(got, want) {
		t.Fatalf("Load = %s\nwant   %s", brief(got), brief(want))
	}
}

// brief prints a state compactly.
func brief(m map[uint64]string) string {
	var b bytes.Buffer
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		if len(v) > 12 {
			v = v[:12] + "..."
		}
		fmt.Fprintf(&b, "%d:%q ", k, v)
	}
	return "{" + b.String() + "}"
}

func open(t testing.TB, path string, opt store.Options) *store.File {
	t.Helper()
	s, err := store.Open(path, opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newPath returns the path of a store file in a fresh temporary directory.
func newPath(t testing.TB) string { return filepath.Join(t.TempDir(), "session.db") }

// writeStore writes data as a store file in a fresh directory.
func writeStore(t testing.TB, data []byte) string {
	t.Helper()
	p := newPath(t)
	must(t, os.WriteFile(p, data, 0o600))
	return p
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	return b
}

// sample writes a small log with overwrites and deletes, closes it, and
// returns its bytes and the state it holds.
func sample(t testing.TB) ([]byte, map[uint64]string) {
	t.Helper()
	p := newPath(t)
	s := open(t, p, store.Options{NoSync: true})
	m := map[uint64]string{}
	put := func(k uint64, v string) { must(t, s.Put(k, []byte(v))); m[k] = v }
	put(3, "three")
	put(1, "one")
	put(2, "")
	must(t, s.Sync())
	put(3, "THREE, longer")
	must(t, s.Delete(1))
	delete(m, 1)
	put(1<<63+5, "big key")
	must(t, s.Close())
	return readFile(t, p), m
}

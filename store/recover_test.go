package store_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"maps"
	"runtime"
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt/store"
)

// TestTornTail cuts a log at every byte and opens it: every record wholly
// before the cut is recovered, the rest is cut off, and the store works on.
func TestTornTail(t *testing.T) {
	data, final := sample(t)
	recs, end := prefix(data)
	if end != int64(len(data)) || !maps.Equal(state(recs), final) {
		t.Fatalf("the sample log does not parse as documented: %d records end at %d of %d", len(recs), end, len(data))
	}
	for cut := range len(data) + 1 {
		var whole []rec
		keep := int64(16)
		for _, r := range recs {
			if r.end <= int64(cut) {
				whole, keep = append(whole, r), r.end
			}
		}
		p := writeStore(t, data[:cut])
		s, err := store.Open(p, store.Options{NoSync: true})
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		checkState(t, s, state(whole))
		if got := readFile(t, p); !bytes.Equal(got, data[:keep]) && !(cut < 16 && bytes.Equal(got, header)) {
			t.Fatalf("cut at %d: the file is now %d bytes, want the %d of the intact records", cut, len(got), keep)
		}
		must(t, s.Put(77, []byte("after")))
		must(t, s.Close())
		s = open(t, p, store.Options{NoSync: true})
		want := state(whole)
		want[77] = "after"
		checkState(t, s, want)
		must(t, s.Close())
	}
}

// TestZeroTail: a file system may grow a file and crash before it writes
// the data, leaving zeros: what precedes them is recovered.
func TestZeroTail(t *testing.T) {
	data, final := sample(t)
	recs, _ := prefix(data)
	last := recs[len(recs)-1]
	for name, file := range map[string][]byte{
		"after the last record": append(bytes.Clone(data), make([]byte, 5000)...),
		"over the last record's body, and beyond": append(bytes.Clone(data[:last.off+14]),
			make([]byte, len(data)-int(last.off)+100)...),
		"over the last record's header, and beyond": append(bytes.Clone(data[:last.off+3]),
			make([]byte, 100)...),
	} {
		p := writeStore(t, file)
		s, err := store.Open(p, store.Options{NoSync: true})
		if err != nil {
			t.Fatalf("zeros %s: %v", name, err)
		}
		want := final
		if name != "after the last record" {
			want = state(recs[:len(recs)-1])
		}
		checkState(t, s, want)
		must(t, s.Close())
	}
}

// TestDamage: damage anywhere but in a torn tail is reported, with the
// path and the offset, and the file is left alone.
func TestDamage(t *testing.T) {
	data, _ := sample(t)
	recs, _ := prefix(data)
	second := recs[1]
	patch := func(off int64, b ...byte) []byte {
		d := bytes.Clone(data)
		copy(d[off:], b)
		return d
	}
	flip := func(off int64) []byte { return patch(off, data[off]^0x20) }
	withRecord := func(r []byte) []byte { // r in the middle of the log
		return append(append(bytes.Clone(data[:second.off]), r...), data[second.off:]...)
	}
	v2 := append([]byte("RMQSTORE"), 0, 0, 0, 2)
	v2 = binary.BigEndian.AppendUint32(v2, crcOf(v2))

	cases := []struct {
		name   string
		file   []byte
		offset int64
		reason string
	}{
		{"bad magic", patch(0, 'X'), 0, "not a store file"},
		{"header checksum", flip(13), 0, "header checksum"},
		{"version 2", append(v2, data[16:]...), 8, "version 2"},
		{"short garbage", []byte("hello"), 0, "shorter than a header"},
		{"text", []byte(strings.Repeat("not a store file\n", 10)), 0, "not a store file"},
		{"length", flip(second.off + 2), second.off, "header checksum mismatch"},
		{"length checksum", flip(second.off + 5), second.off, "header checksum mismatch"},
		{"body checksum", flip(second.off + 9), second.off, "record checksum mismatch"},
		{"op", flip(second.off + 12), second.off, "record checksum mismatch"},
		{"key", flip(second.off + 15), second.off, "record checksum mismatch"},
		{"value", flip(second.end - 1), second.off, "record checksum mismatch"},
		{"4 GB length", withRecord(encode(1, 5, []byte("v"), func(n *uint32) { *n = 0xffffffff })),
			second.off, "impossible record length 4294967295"},
		{"length 3", withRecord(encode(1, 5, []byte("v"), func(n *uint32) { *n = 3 })),
			second.off, "impossible record length 3"},
		{"unknown op", withRecord(encode(9, 5, []byte("v"), nil)), second.off, "unknown record type 9"},
		{"delete with a value", withRecord(encode(2, 5, []byte("v"), nil)), second.off, "delete record"},
		{"garbage after the log", append(bytes.Clone(data), "some garbage at the end"...),
			int64(len(data)), "header checksum mismatch"},
		{"4 GB length at the end", append(bytes.Clone(data), encode(1, 5, []byte("v"), func(n *uint32) { *n = 0xffffffff })...),
			int64(len(data)), "impossible record length"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeStore(t, tc.file)
			_, err := store.Open(p, store.Options{})
			var ce *store.CorruptError
			if !errors.Is(err, store.ErrCorrupt) || !errors.As(err, &ce) {
				t.Fatalf("Open: %v, want a *CorruptError", err)
			}
			if ce.Path != p || ce.Offset != tc.offset || !strings.Contains(ce.Reason, tc.reason) {
				t.Fatalf("Open: %v\nwant offset %d and reason %q", err, tc.offset, tc.reason)
			}
			if msg := err.Error(); !strings.Contains(msg, p) || !strings.Contains(msg, "move it aside") {
				t.Fatalf("the message does not say the path and what to do: %v", msg)
			}
			if !bytes.Equal(readFile(t, p), tc.file) {
				t.Fatal("Open changed a damaged file")
			}
			s := open(t, p+"2", store.Options{}) // the failed Open released its lock
			must(t, s.Close())
			s, err = store.Open(p, store.Options{})
			if err == nil {
				s.Close()
				t.Fatal("a second Open of the damaged file succeeded")
			}
		})
	}
}

func crcOf(b []byte) uint32 { return crc32.Checksum(b, crcTable) }

// TestHugeLengthAllocatesNothing: a torn record that claims a large length
// is not read, and nothing near that length is allocated.
func TestHugeLengthAllocatesNothing(t *testing.T) {
	data, final := sample(t)
	big := encode(1, 5, []byte("the start of a value"), func(n *uint32) { *n = 9 + store.MaxValueLen })
	p := writeStore(t, append(data, big...))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s, err := store.Open(p, store.Options{NoSync: true})
	runtime.ReadMemStats(&after)
	must(t, err)
	defer s.Close()
	checkState(t, s, final)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("Open allocated %d bytes", n)
	}
}

// A file that is empty or holds the start of a header was being created
// when the process died: it opens as an empty store.
func TestPartialHeader(t *testing.T) {
	for n := range 16 {
		p := writeStore(t, header[:n])
		s := open(t, p, store.Options{NoSync: true})
		checkState(t, s, map[uint64]string{})
		must(t, s.Close())
		if got := readFile(t, p); !bytes.Equal(got, header) {
			t.Fatalf("a %d-byte header became %x", n, got)
		}
	}
}

package store

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
)

// The file is a header followed by an append-only log of records. Every
// integer is big-endian.
//
//	header  (16 bytes)
//	  magic    8  "RMQSTORE"
//	  version  4  formatVersion
//	  crc      4  CRC-32C (Castagnoli) of the 12 bytes before
//	record  (21 bytes + value)
//	  length   4  length of the body: 9 + len(value)
//	  hcrc     4  CRC-32C of the 4 length bytes
//	  crc      4  CRC-32C of the body
//	  body:
//	    op     1  opPut or opDelete
//	    key    8
//	    value  length-9 bytes (none for opDelete)
//
// The length has its own checksum so that recovery can trust it before it
// reads the body: a damaged length is reported as damage instead of being
// mistaken for a record torn at the end of the file (which would silently
// drop the intact records behind it), and a record that claims more bytes
// than the file holds is never read, let alone allocated.
const (
	magic         = "RMQSTORE"
	formatVersion = 1
	headerLen     = 16
	recHeaderLen  = 12 // length, hcrc, crc
	bodyMin       = 9  // op, key
	recOverhead   = recHeaderLen + bodyMin
	maxBody       = bodyMin + MaxValueLen

	opPut    = 1
	opDelete = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fileHeader returns the 16 header bytes of the current format.
func fileHeader() []byte {
	h := make([]byte, 0, headerLen)
	h = append(h, magic...)
	h = binary.BigEndian.AppendUint32(h, formatVersion)
	return binary.BigEndian.AppendUint32(h, crc32.Checksum(h, castagnoli))
}

// appendRecord appends the encoding of one record to b.
func appendRecord(b []byte, op byte, key uint64, value []byte) []byte {
	n := uint32(bodyMin + len(value)) // fits: Put checked len(value) <= MaxValueLen
	start := len(b)
	b = binary.BigEndian.AppendUint32(b, n)
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:start+4], castagnoli))
	crcAt := len(b)
	b = append(b, 0, 0, 0, 0)
	b = append(b, op)
	b = binary.BigEndian.AppendUint64(b, key)
	b = append(b, value...)
	binary.BigEndian.PutUint32(b[crcAt:], crc32.Checksum(b[crcAt+4:], castagnoli))
	return b
}

// scanResult is what recovery found in a file.
type scanResult struct {
	// end is the offset just after the last intact record: the file's
	// length once a torn tail is cut off.
	end int64
	// fresh is set when the file is empty or holds only the beginning of a
	// header (a crash while it was being created): it holds no record and
	// is to be written anew.
	fresh bool
}

// scan reads the store file r of the given size, checks the header and
// calls apply for every intact record, in file order, with its offset and
// the length of its value. It stops at the end of the file, or at the first
// record that is not intact. Such a record is a torn tail, the normal result
// of a crash during a write, when nothing but that record (and zero bytes)
// follows it:
//
//   - the file ends inside the record's 12-byte header;
//   - the length is intact but the file ends before the record does;
//   - the length is intact, the body's checksum fails, and the record ends
//     exactly at the end of the file;
//   - from a point inside the record's header (or inside its body, if its
//     length is intact) to the end of the file, every byte is zero: a file
//     system that grew the file before it wrote the data.
//
// Any other flaw is damage: scan returns a *CorruptError naming path and
// the offset. scan allocates nothing in proportion to the file or to a
// length field.
func scan(r io.ReaderAt, size int64, path string, apply func(op byte, key uint64, off int64, valueLen uint32)) (scanResult, error) {
	sc := scanner{newWindow(r, size, path)}
	if res, done, err := sc.header(); done {
		return res, err
	}
	off := int64(headerLen)
	for off < size {
		next, op, key, err := sc.record(off)
		if err != nil || next < 0 {
			return scanResult{end: off}, err
		}
		apply(op, key, off, uint32(next-off-recOverhead))
		off = next
	}
	return scanResult{end: off}, nil
}

type scanner struct {
	window
}

// header checks the file header. done reports that the scan is over: the
// file is fresh, or damaged (err), or could not be read (err).
func (sc *scanner) header() (res scanResult, done bool, err error) {
	want := fileHeader()
	n := min(sc.size, headerLen)
	got, err := sc.at(0, int(n))
	if err != nil {
		return res, true, err
	}
	switch {
	case n < headerLen && bytes.Equal(got, want[:n]):
		return scanResult{fresh: true}, true, nil
	case n < headerLen:
		return res, true, corruptf(sc.path, 0, "the file is %d bytes long, shorter than a header, and is not the beginning of one", n)
	case string(got[:8]) != magic:
		return res, true, corruptf(sc.path, 0, "not a store file: it starts with %q, not %q", got[:8], magic)
	case binary.BigEndian.Uint32(got[8:]) != formatVersion:
		// Before the checksum: another version may lay its header out
		// differently.
		return res, true, corruptf(sc.path, 8, "format version %d, but this package reads version %d (a newer program may read it)",
			binary.BigEndian.Uint32(got[8:]), formatVersion)
	case crc32.Checksum(got[:12], castagnoli) != binary.BigEndian.Uint32(got[12:]):
		return res, true, corruptf(sc.path, 0, "header checksum mismatch")
	}
	return res, false, nil
}

// record checks the record at off and returns the offset of the next one,
// or next = -1 (and no error) if this one is a torn tail.
func (sc *scanner) record(off int64) (next int64, op byte, key uint64, err error) {
	rem := sc.size - off
	if rem < recHeaderLen {
		return -1, 0, 0, nil // torn inside the header
	}
	h, err := sc.at(off, int(min(rem, recOverhead)))
	if err != nil {
		return -1, 0, 0, err
	}
	length := int64(binary.BigEndian.Uint32(h))
	if crc32.Checksum(h[:4], castagnoli) != binary.BigEndian.Uint32(h[4:]) {
		return sc.damaged(off, off+recHeaderLen, "record header checksum mismatch")
	}
	if length < bodyMin || length > maxBody {
		return -1, 0, 0, corruptf(sc.path, off, "impossible record length %d", length)
	}
	end := off + recHeaderLen + length
	if end > sc.size {
		return -1, 0, 0, nil // torn: the file ends inside the body
	}
	// Copy out what is needed before checksum moves the window.
	op, key, want := h[recHeaderLen], binary.BigEndian.Uint64(h[recHeaderLen+1:]), binary.BigEndian.Uint32(h[8:])
	sum, err := sc.checksum(0, off+recHeaderLen, length, nil)
	if err != nil {
		return -1, 0, 0, err
	}
	if sum != want {
		if end == sc.size {
			return -1, 0, 0, nil // torn: the last record, not all of it written
		}
		return sc.damaged(off, end, "record checksum mismatch")
	}
	switch {
	case op == opPut:
	case op == opDelete && length == bodyMin:
	case op == opDelete:
		return -1, 0, 0, corruptf(sc.path, off, "delete record with a %d-byte body, not %d", length, bodyMin)
	default:
		return -1, 0, 0, corruptf(sc.path, off, "unknown record type %d", op)
	}
	return end, op, key, nil
}

// damaged decides about a record at off that failed a checksum: it is a
// torn tail (next = -1, no error) if every byte from some point before
// limit to the end of the file is zero, and damage otherwise.
func (sc *scanner) damaged(off, limit int64, what string) (next int64, op byte, key uint64, err error) {
	z, err := sc.zeroTail(off)
	if err != nil {
		return -1, 0, 0, err
	}
	if z < limit {
		return -1, 0, 0, nil
	}
	return -1, 0, 0, corruptf(sc.path, off, "%s, and %d more bytes follow", what, sc.size-off)
}

// zeroTail returns where the run of zero bytes that ends the file begins,
// looking no further back than from; the size if the last byte is not zero.
func (sc *scanner) zeroTail(from int64) (int64, error) {
	z := sc.size
	for z > from {
		at := z - min(z-from, int64(len(sc.buf)))
		p, err := sc.at(at, int(z-at))
		if err != nil {
			return 0, err
		}
		for i := len(p) - 1; i >= 0; i-- {
			if p[i] != 0 {
				return at + int64(i) + 1, nil
			}
		}
		z = at
	}
	return z, nil
}

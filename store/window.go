package store

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// window reads a file through a buffer, so that reading it record after
// record costs a system call per 64 KiB, not one or two per record.
type window struct {
	r    io.ReaderAt
	size int64 // of the file: the window never reads past it
	path string
	buf  []byte
	off  int64 // file offset of buf[0]
	n    int   // valid bytes in buf
}

func newWindow(r io.ReaderAt, size int64, path string) window {
	return window{r: r, size: size, path: path, buf: make([]byte, 64<<10)}
}

// at returns the n bytes at off, valid until the next call. The caller
// sees to it that n <= len(w.buf) and off+n <= w.size.
func (w *window) at(off int64, n int) ([]byte, error) {
	if off >= w.off && off+int64(n) <= w.off+int64(w.n) {
		i := off - w.off
		return w.buf[i : i+int64(n)], nil
	}
	if n == 0 {
		return nil, nil
	}
	m := int(min(int64(len(w.buf)), w.size-off))
	w.n = 0
	if _, err := w.r.ReadAt(w.buf[:m], off); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the file shrank while we read it
		}
		return nil, fmt.Errorf("store: read %s at byte %d: %w", w.path, off, err)
	}
	w.off, w.n = off, m
	return w.buf[:n], nil
}

// checksum updates the CRC-32C sum with the n bytes at off, which it also
// writes to copy unless copy is nil. Errors from copy are copy's to keep
// (a bufio.Writer does).
func (w *window) checksum(sum uint32, off, n int64, copy io.Writer) (uint32, error) {
	for n > 0 {
		p, err := w.at(off, int(min(n, int64(len(w.buf)))))
		if err != nil {
			return 0, err
		}
		sum = crc32.Update(sum, castagnoli, p)
		if copy != nil {
			copy.Write(p)
		}
		off += int64(len(p))
		n -= int64(len(p))
	}
	return sum, nil
}

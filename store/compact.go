package store

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// Compact rewrites the store file with only its live records and replaces
// the old file with it, durably: the new file is written to path+".tmp" and
// fsynced, renamed over path, and the directory is fsynced. A crash at any
// point leaves either the old file or the new one at path, both complete.
//
// Sync compacts by itself when the log is more than twice as large as its
// live records need plus 1 MiB, so calling Compact is never required. After
// Compact returns nil, every Put and Delete so far is durable.
func (s *File) Compact() error {
	if err := s.usable(); err != nil {
		return err
	}
	if err := s.flush(); err != nil {
		return err
	}
	if err := s.compact(); err != nil {
		return err
	}
	s.dirty = false
	return nil
}

// compactedSize is the length of the file Compact would write.
func (s *File) compactedSize() int64 {
	return headerLen + int64(len(s.index))*(recOverhead-8) + s.live
}

// compact replaces the file by a copy of its live records; pend must be
// empty. If it fails before the rename, the old file stays in use and the
// store works on; if it fails after, the store is failed (s.err), since the
// rename may not be durable.
func (s *File) compact() error {
	return s.rewrite()
}

// rewrite writes the live records (none, when the file is being created)
// to path+".tmp", fsyncs it, renames it over path and fsyncs the
// directory, then uses the new file.
func (s *File) rewrite() error {
	tmp := s.tmpPath()
	had := s.f != nil // false while the file is being created
	// Only a file this call creates will do: never one (or a link) that
	// someone else left at tmp, which O_TRUNC would follow and fill with
	// the store's records. O_EXCL refuses anything there, a link too.
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: remove the leftover %s: %w", tmp, err)
	}
	t, err := openNoFollow(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("store: create %s: %w", tmp, err)
	}
	index, size, err := s.copyLive(t)
	if err == nil && !s.noSync {
		s.syncs++
		err = t.Sync()
	}
	if err == nil {
		err = s.step("synced")
	}
	// Close both files before the rename, for systems (Windows) that
	// cannot rename over an open file; then open whichever is at path.
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if had {
			s.f.Close()
			s.f = nil
		}
		err = os.Rename(tmp, s.path)
		if err == nil {
			s.index, s.size = index, size
		}
	}
	if err != nil {
		os.Remove(tmp)
		what := "compact"
		if !had {
			what = "create"
		}
		err = fmt.Errorf("store: %s %s by way of %s: %w", what, s.path, filepath.Base(tmp), err)
	}
	if s.f == nil && (had || err == nil) { // closed above, or just created
		if err := s.reopen(); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	if err := s.step("renamed"); err != nil {
		return s.fail("sync the directory of", err)
	}
	if !s.noSync {
		if err := syncDir(filepath.Dir(s.path)); err != nil {
			// Without it the rename may not survive a crash, and records
			// appended to the new file would vanish with it.
			return s.fail("sync the directory of", err)
		}
	}
	return nil
}

// reopen opens the file at path after a rename (or a failed one).
func (s *File) reopen() error {
	// Not through a link: one swapped in for the tmp before the rename
	// would now be at path.
	f, err := openNoFollow(s.path, os.O_RDWR, 0)
	if err != nil {
		return s.fail("reopen", err)
	}
	s.f = f
	return nil
}

// copyLive writes a header and a copy of every live record to t, in the
// order of the log, checking each record's checksum on the way, and
// returns the index of the copy and its length.
func (s *File) copyLive(t *os.File) (map[uint64]entry, int64, error) {
	w := bufio.NewWriterSize(t, 64<<10)
	w.Write(fileHeader())
	index := make(map[uint64]entry, len(s.index))
	off := int64(headerLen)
	if s.f != nil {
		keys := slices.SortedFunc(maps.Keys(s.index), func(a, b uint64) int {
			return cmp.Compare(s.index[a].off, s.index[b].off)
		})
		// In log order, the window reads the old file about once.
		src := newWindow(s.f, s.size, s.path)
		for _, k := range keys {
			e := s.index[k]
			hdr, err := src.at(e.off, recOverhead)
			if err != nil {
				return nil, 0, err
			}
			want, key := binary.BigEndian.Uint32(hdr[8:]), binary.BigEndian.Uint64(hdr[13:])
			w.Write(hdr)
			sum, err := src.checksum(crc32.Checksum(hdr[recHeaderLen:], castagnoli), e.off+recOverhead, int64(e.n), w)
			if err != nil {
				return nil, 0, err
			}
			if sum != want || key != k {
				// What Open checked has changed on the disk since.
				s.err = corruptf(s.path, e.off, "record of key %d no longer matches its checksum", k)
				return nil, 0, s.err
			}
			index[k] = entry{off: off, n: e.n}
			off += recOverhead + int64(e.n)
		}
	}
	return index, off, w.Flush()
}

// step calls the test hook, if any, at a stage of rewrite.
func (s *File) step(stage string) error {
	if s.hook == nil {
		return nil
	}
	return s.hook(stage)
}

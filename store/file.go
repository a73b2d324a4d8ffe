package store

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
)

// Options configure [Open]. The zero value is ready to use.
type Options struct {
	// MaxBytes limits the live data: 8 bytes per key plus the length of
	// every value. A Put that would exceed it fails with ErrFull. 0 means
	// [DefaultMaxBytes]; negative is an error. A file that already holds
	// more (opened with a lower limit than it was written with) opens with
	// all its records; Puts fail until Deletes bring it under the limit.
	// The file grows to at most twice its compacted size (the live data
	// plus 21 bytes a record) plus 1 MiB before Sync compacts it.
	MaxBytes int64

	// NoSync skips every fsync. The store is then NOT durable: a crash of
	// the machine (not only of the process) may lose or tear records that
	// Sync said were safe. For tests and benchmarks only.
	NoSync bool
}

// File is a [Store] in a file: an append-only log of checksummed records,
// compacted when it grows much larger than its live data. See the package
// documentation for the format, recovery and the files it creates.
//
// A File is used by one goroutine at a time, Close included.
type File struct {
	path   string
	limit  int64
	noSync bool
	lock   *os.File

	f     *os.File
	size  int64  // bytes written to f (durable once synced)
	pend  []byte // encoded records not yet written to f
	dirty bool   // a Put or Delete since the last Sync

	index map[uint64]entry // live records
	live  int64            // sum of recordLiveSize over index

	// compactFloor is a log size below which no automatic compaction is
	// tried: set after one failed, so that a full disk does not make
	// every Sync copy the live data again.
	compactFloor int64

	err    error // sticky: a write or fsync failed
	closed bool

	// Counters and a hook for tests.
	writes, syncs int
	hook          func(stage string) error
}

// entry locates a live record: the offset of its record in the log (in f,
// or in pend at offsets from size on) and the length of its value.
type entry struct {
	off int64
	n   uint32
}

var _ Store = (*File)(nil)

const (
	// flushAt bounds pend: a Put that would take it past this writes it to
	// the file first (without fsync).
	flushAt = 1 << 20
	// compactSlack is added to twice the compacted size before a log is
	// worth compacting, so that small stores are not rewritten often.
	compactSlack = 1 << 20
)

// Open opens the store file at path, creating it (mode 0600) if it does not
// exist, and recovers its records. The directory must exist. Next to the
// file live path+".lock", which holds the lock that keeps a second Open of
// the same path away (in this process or another one) and which is left in
// place after Close, and path+".tmp", which exists only while the file is
// being created or compacted.
//
// None of the three may be a symbolic link (Open, or a later compaction,
// fails with an error that says so), since a link planted there would
// redirect the store's writes; the directories above them may be links.
// To keep the store on another disk, link its directory, not the file:
// compaction renames a new file over path, which would replace a link
// there rather than the file it points at.
//
// A record torn by a crash at the end of the file is cut off; every intact
// record before it is kept. Any other damage is an error wrapping
// [ErrCorrupt] (a [*CorruptError]) and the file is left as it is. A file held
// by another open store gives an error wrapping [ErrLocked].
func Open(path string, opt Options) (*File, error) {
	if opt.MaxBytes < 0 {
		return nil, fmt.Errorf("store: Options.MaxBytes is %d; use 0 for the default (%d) or a positive limit",
			opt.MaxBytes, DefaultMaxBytes)
	}
	s := &File{
		path:   path,
		limit:  cmp.Or(opt.MaxBytes, DefaultMaxBytes),
		noSync: opt.NoSync,
		index:  make(map[uint64]entry),
	}
	lf, err := lock(path+".lock", path)
	if err != nil {
		return nil, err
	}
	s.lock = lf
	if err := s.open(); err != nil {
		if s.f != nil {
			s.f.Close()
		}
		unlock(lf)
		return nil, err
	}
	return s, nil
}

func (s *File) open() error {
	// A .tmp is a creation or compaction that did not reach its rename;
	// the file at path is complete without it.
	if err := os.Remove(s.tmpPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: remove the leftover %s: %w", s.tmpPath(), err)
	}
	f, err := openNoFollow(s.path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return s.rewrite()
	}
	if err != nil {
		return fmt.Errorf("store: open the store file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("store: %w", err)
	}
	res, err := scan(f, st.Size(), s.path, s.apply)
	if err != nil {
		f.Close()
		return err
	}
	if res.fresh {
		f.Close()
		return s.rewrite()
	}
	s.f, s.size = f, res.end
	if res.end < st.Size() {
		// A torn tail: cut it off, durably, before new records follow.
		err := f.Truncate(res.end)
		if err == nil {
			err = s.fsync()
		}
		if err != nil {
			return fmt.Errorf("store: cut the torn tail off %s at byte %d: %w", s.path, res.end, err)
		}
	}
	return nil
}

// apply replays one record found by scan into the index.
func (s *File) apply(op byte, key uint64, off int64, n uint32) {
	if old, ok := s.index[key]; ok {
		s.live -= recordLiveSize(int(old.n))
		delete(s.index, key)
	}
	if op == opPut {
		s.index[key] = entry{off: off, n: n}
		s.live += recordLiveSize(int(n))
	}
}

// Load calls fn with every live record in increasing key order; fn must not
// modify value, which is valid only until fn returns.
func (s *File) Load(fn func(key uint64, value []byte) error) error {
	if err := s.usable(); err != nil {
		return err
	}
	// Keys usually grow with time, so key order is mostly log order, and
	// the window reads the log in large pieces.
	w := newWindow(s.f, s.size, s.path)
	var buf []byte
	for _, k := range slices.SortedFunc(maps.Keys(s.index), cmp.Compare[uint64]) {
		v, err := s.value(&w, s.index[k], &buf)
		if err != nil {
			return err
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// value returns the value of e: in w, or copied into *buf.
func (s *File) value(w *window, e entry, buf *[]byte) ([]byte, error) {
	at, n := e.off+recOverhead, int(e.n)
	if at >= s.size { // not written yet
		at -= s.size
		*buf = append((*buf)[:0], s.pend[at:at+int64(n)]...)
		return *buf, nil
	}
	if n <= len(w.buf) {
		return w.at(at, n)
	}
	*buf = slices.Grow((*buf)[:0], n)[:n]
	if _, err := s.f.ReadAt(*buf, at); err != nil {
		return nil, fmt.Errorf("store: read %s at byte %d: %w", s.path, at, err)
	}
	return *buf, nil
}

// Put sets key to a copy of value. It fails with an error wrapping ErrFull,
// and changes nothing, if the live data would exceed the limit. The record
// is durable once Sync returns.
func (s *File) Put(key uint64, value []byte) error {
	if err := s.usable(); err != nil {
		return err
	}
	live := s.live + recordLiveSize(len(value))
	if old, ok := s.index[key]; ok {
		live -= recordLiveSize(int(old.n))
	}
	if len(value) > MaxValueLen || live > s.limit {
		return fullError(key, len(value), live, s.limit)
	}
	if err := s.reserve(recOverhead + len(value)); err != nil {
		return err
	}
	s.index[key] = entry{off: s.size + int64(len(s.pend)), n: uint32(len(value))}
	s.pend = appendRecord(s.pend, opPut, key, value)
	s.live, s.dirty = live, true
	return nil
}

// Delete removes key. If key is absent nothing is written. The removal is
// durable once Sync returns.
func (s *File) Delete(key uint64) error {
	if err := s.usable(); err != nil {
		return err
	}
	old, ok := s.index[key]
	if !ok {
		return nil
	}
	if err := s.reserve(recOverhead); err != nil {
		return err
	}
	s.pend = appendRecord(s.pend, opDelete, key, nil)
	delete(s.index, key)
	s.live -= recordLiveSize(int(old.n))
	s.dirty = true
	return nil
}

// reserve writes pend to the file if n more bytes would take it past
// flushAt.
func (s *File) reserve(n int) error {
	if len(s.pend) > 0 && len(s.pend)+n > flushAt {
		return s.flush()
	}
	return nil
}

// flush writes pend at the end of the file, without fsync.
func (s *File) flush() error {
	if len(s.pend) == 0 {
		return nil
	}
	s.writes++
	if _, err := s.f.WriteAt(s.pend, s.size); err != nil {
		return s.fail("write", err)
	}
	s.size += int64(len(s.pend))
	s.pend = s.pend[:0]
	if cap(s.pend) > 4*flushAt { // one huge value: do not keep its buffer
		s.pend = nil
	}
	return nil
}

// Sync writes the records put or deleted since the last Sync and fsyncs
// the file; it does nothing if there are none. Then, if the log has grown
// to more than twice what its live records need plus 1 MiB, it compacts it
// (see [File.Compact]); a compaction that fails leaves the log as it was,
// and Sync still succeeds, since the records are durable.
func (s *File) Sync() error {
	if err := s.usable(); err != nil {
		return err
	}
	if !s.dirty {
		return nil
	}
	if err := s.flush(); err != nil {
		return err
	}
	if err := s.fsync(); err != nil {
		return s.fail("fsync", err)
	}
	s.dirty = false
	if s.size > max(2*s.compactedSize()+compactSlack, s.compactFloor) {
		if err := s.compact(); err != nil && s.err == nil {
			s.compactFloor = s.size + s.compactedSize() + compactSlack
		}
	}
	return nil
}

// Close syncs and closes the file and releases its lock. The File must not
// be used after; further calls return an error wrapping ErrClosed.
func (s *File) Close() error {
	if s.closed {
		return fmt.Errorf("%w: %s was closed already", ErrClosed, s.path)
	}
	err := s.Sync()
	s.closed = true
	if cerr := s.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: close %s: %w", s.path, cerr)
	}
	if uerr := unlock(s.lock); err == nil && uerr != nil {
		err = fmt.Errorf("store: release the lock on %s: %w", s.path, uerr)
	}
	return err
}

// Path returns the path of the store file.
func (s *File) Path() string { return s.path }

// Size returns the live data in bytes: 8 per key plus the values' lengths.
// This is what the limit applies to.
func (s *File) Size() int64 { return s.live }

// Len returns the number of live records.
func (s *File) Len() int { return len(s.index) }

func (s *File) usable() error {
	if s.closed {
		return fmt.Errorf("%w: %s", ErrClosed, s.path)
	}
	return s.err
}

func (s *File) fsync() error {
	if s.noSync {
		return nil
	}
	s.syncs++
	return s.f.Sync()
}

// fail makes the store unusable after a failed write or fsync: after a
// failed fsync the kernel may have dropped the dirty pages, so no later
// fsync can be trusted to cover them.
func (s *File) fail(what string, err error) error {
	s.err = fmt.Errorf("store: %s %s: %w; records since the last successful Sync may be lost: close the store and open it again",
		what, s.path, err)
	return s.err
}

func (s *File) tmpPath() string { return s.path + ".tmp" }

// openNoFollow opens name like os.OpenFile, but fails if name itself is a
// symbolic link (a link among the directories above it is followed).
// Whoever can write in the store's directory could plant one, and the
// store would then truncate, append to or lock the file it points at,
// with the store user's rights. Where package syscall has no O_NOFOLLOW
// (Windows), links are followed.
func openNoFollow(name string, flag int, perm fs.FileMode) (*os.File, error) {
	f, err := os.OpenFile(name, flag|noFollow, perm)
	if err != nil {
		// The open's own error says "too many levels of symbolic links"
		// (ELOOP; EMLINK on FreeBSD) or "file exists" (O_EXCL): say what
		// is there and what to do.
		if fi, lerr := os.Lstat(name); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s is a symbolic link, which the store does not follow, so that a link planted "+
				"there cannot make it write to, create or lock another file; remove the link (to keep the store "+
				"on another disk, link its directory instead): %w", name, err)
		}
		return nil, err
	}
	return f, nil
}

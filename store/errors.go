package store

import (
	"errors"
	"fmt"
	"strconv"
)

// ErrFull is wrapped by the error of a Put that would take the live data
// (keys and values) over the store's limit. The store is unchanged; Delete
// records (the client: wait for acknowledgements) or raise the limit.
var ErrFull = errors.New("store: full")

// ErrCorrupt is wrapped by every error that says a store file is damaged:
// in Open, by a [*CorruptError] giving the path, the byte offset and what is
// wrong. A torn last record, which is what a crash leaves, is not damage:
// Open recovers every record before it.
var ErrCorrupt = errors.New("store: file is damaged")

// ErrLocked is wrapped by the error of an Open of a file that another open
// [File] holds, in this process or in another one.
var ErrLocked = errors.New("store: file is in use")

// ErrClosed is wrapped by the error of any call on a [File] after Close.
var ErrClosed = errors.New("store: closed")

// CorruptError describes a damaged store file. It matches ErrCorrupt with
// errors.Is.
type CorruptError struct {
	Path   string // the store file
	Offset int64  // byte offset in the file where the damage starts
	Reason string // what is wrong, in words
}

// Error returns a message like "store: /var/lib/app/session.db: damaged at
// byte 1234: record checksum mismatch, and 56 more bytes follow; the file is
// not usable: move it aside (its session is lost) and open again".
func (e *CorruptError) Error() string {
	return "store: " + e.Path + ": damaged at byte " + strconv.FormatInt(e.Offset, 10) + ": " +
		e.Reason + "; the file is not usable: move it aside (its session is lost) and open again"
}

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func corruptf(path string, off int64, format string, args ...any) *CorruptError {
	return &CorruptError{Path: path, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// fullError explains a refused Put.
func fullError(key uint64, valueLen int, live, limit int64) error {
	if valueLen > MaxValueLen {
		return fmt.Errorf("%w: a value of %d bytes (key %d) is over the per-record maximum of %d bytes",
			ErrFull, valueLen, key, MaxValueLen)
	}
	return fmt.Errorf("%w: putting %d bytes under key %d would make %d bytes of live data, over the limit of %d; "+
		"delete records first or raise the limit", ErrFull, valueLen, key, live, limit)
}

func lockedError(path, lockPath string) error {
	return fmt.Errorf("%w: %s is open in another store, in this process or another one (it holds the lock on %s); close that store first",
		ErrLocked, path, lockPath)
}

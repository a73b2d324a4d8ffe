//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lock takes an exclusive flock on lockPath, created if missing. The lock
// is on a file of its own, not on the store file, because compaction
// replaces the store file: a lock on the old one would not stop a process
// that opens the new one. flock belongs to the open file, so a second Open
// in the same process is refused too. The kernel drops the lock when the
// process dies, so a crash never leaves a stale lock.
func lock(lockPath, path string) (*os.File, error) {
	lf, err := openNoFollow(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: open the lock file: %w", err)
	}
	for {
		err = syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		lf.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, lockedError(path, lockPath)
		}
		return nil, fmt.Errorf("store: lock %s: %w", lockPath, err)
	}
	return lf, nil
}

// unlock releases a lock taken by lock.
func unlock(lf *os.File) error { return lf.Close() }

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// replaceOpen reports whether a file that is open can be renamed over.
const replaceOpen = true

// noFollow makes an open fail if the last element of the path is a
// symbolic link.
const noFollow = syscall.O_NOFOLLOW

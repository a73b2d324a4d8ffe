//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package store

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// On these systems there is no flock in package syscall, so the lock only
// keeps a second Open in the same process away; another process is not
// stopped. The lock file is still created, so that the files a store uses
// are the same everywhere.
var (
	lockMu sync.Mutex
	locked = map[string]bool{}
)

func lock(lockPath, path string) (*os.File, error) {
	abs, err := filepath.Abs(lockPath)
	if err != nil {
		abs = lockPath
	}
	lockMu.Lock()
	defer lockMu.Unlock()
	if locked[abs] {
		return nil, lockedError(path, lockPath)
	}
	lf, err := openNoFollow(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: open the lock file: %w", err)
	}
	locked[abs] = true
	return lf, nil
}

func unlock(lf *os.File) error {
	abs, err := filepath.Abs(lf.Name())
	if err != nil {
		abs = lf.Name()
	}
	lockMu.Lock()
	delete(locked, abs)
	lockMu.Unlock()
	return lf.Close()
}

// syncDir does nothing: a directory cannot be opened for syncing here.
func syncDir(string) error { return nil }

// replaceOpen reports whether a file that is open can be renamed over: not
// on Windows.
const replaceOpen = false

// noFollow is 0: package syscall has no O_NOFOLLOW here, so a symbolic
// link at a store path is followed.
const noFollow = 0

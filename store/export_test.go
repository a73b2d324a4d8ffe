package store

import "bytes"

// Counts returns how many writes and fsyncs the store has made.
func Counts(s *File) (writes, syncs int) { return s.writes, s.syncs }

// SetHook makes rewrite (creation and compaction) call fn at its stages:
// "synced" (path+".tmp" complete and fsynced, not yet renamed) and
// "renamed" (renamed over path, directory not yet fsynced). An error from
// fn acts as a failure of the step that follows.
func SetHook(s *File, fn func(stage string) error) { s.hook = fn }

// Break closes the file under the store, so that its next write fails.
func Break(s *File) { s.f.Close() }

// LogSize returns the length of the log, pending records included.
func LogSize(s *File) int64 { return s.size + int64(len(s.pend)) }

// Found is a record that scan reported.
type Found struct {
	Op       byte
	Key      uint64
	Off      int64
	ValueLen uint32
}

// Scan runs Open's recovery on data in memory: the records it accepts, the
// offset where the intact ones end, and whether the file counts as fresh.
func Scan(data []byte) (found []Found, end int64, fresh bool, err error) {
	res, err := scan(bytes.NewReader(data), int64(len(data)), "fuzz", func(op byte, key uint64, off int64, n uint32) {
		found = append(found, Found{op, key, off, n})
	})
	return found, res.end, res.fresh, err
}

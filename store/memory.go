package store

import (
	"cmp"
	"maps"
	"slices"
)

// Memory is a [Store] in a map. Its Sync does nothing: the state survives a
// client (hand the same Memory to the next client), not the process. Its
// zero value is not usable; call [NewMemory].
//
// Unlike a [File], a Memory stays usable after Close (Close does nothing),
// so that the client which closes it at shutdown does not destroy the state
// that the next client is to Load. Load may be called any number of times.
type Memory struct {
	m     map[uint64][]byte
	live  int64 // sum of recordLiveSize over m
	limit int64
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store whose limit on live data is
// [DefaultMaxBytes].
func NewMemory() *Memory { return NewMemoryLimit(0) }

// NewMemoryLimit returns an empty Memory store whose limit on live data
// (keys and values) is maxBytes, or [DefaultMaxBytes] if maxBytes <= 0.
func NewMemoryLimit(maxBytes int64) *Memory {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return &Memory{m: make(map[uint64][]byte), limit: maxBytes}
}

// Load calls fn with every record in increasing key order; fn must not
// modify value, which is the store's own copy, nor keep it.
func (s *Memory) Load(fn func(key uint64, value []byte) error) error {
	for _, k := range slices.SortedFunc(maps.Keys(s.m), cmp.Compare[uint64]) {
		if err := fn(k, s.m[k]); err != nil {
			return err
		}
	}
	return nil
}

// Put sets key to a copy of value. It fails with an error wrapping ErrFull,
// and changes nothing, if the live data would exceed the limit.
func (s *Memory) Put(key uint64, value []byte) error {
	live := s.live + recordLiveSize(len(value))
	if old, ok := s.m[key]; ok {
		live -= recordLiveSize(len(old))
	}
	if len(value) > MaxValueLen || live > s.limit {
		return fullError(key, len(value), live, s.limit)
	}
	s.m[key] = slices.Clone(value)
	s.live = live
	return nil
}

// Delete removes key, if present.
func (s *Memory) Delete(key uint64) error {
	if old, ok := s.m[key]; ok {
		s.live -= recordLiveSize(len(old))
		delete(s.m, key)
	}
	return nil
}

// Sync does nothing.
func (s *Memory) Sync() error { return nil }

// Close does nothing: the records stay for the next user.
func (s *Memory) Close() error { return nil }

// Size returns the live data in bytes: 8 per key plus the values' lengths.
func (s *Memory) Size() int64 { return s.live }

// Len returns the number of records.
func (s *Memory) Len() int { return len(s.m) }

package store

// Store keeps a client session's state (messages accepted and not yet
// acknowledged, packet identifiers in use) across restarts of the client or
// of the process. The client encodes each piece as an opaque value under a
// uint64 key; a Store only keeps key -> value, in key order, and makes it
// durable when asked to.
//
// A Store is used by one goroutine at a time: the client's session
// goroutine. Implementations have no locking; handing a Store from one
// goroutine to another needs a happens-before edge (a channel, a WaitGroup),
// and Close must be called from the goroutine that uses the store, not from
// another one while it is in use.
type Store interface {
	// Load calls fn with every live record in increasing key order. fn must
	// not modify value, nor keep it after it returns (the bytes are the
	// store's, and reused): copy what it needs. If fn returns
	// an error, Load stops and returns that error unchanged. Load is meant
	// to be called once, before any Put.
	Load(fn func(key uint64, value []byte) error) error

	// Put sets key to value (copied), replacing any earlier value. It need
	// not be durable until Sync returns. It fails with an error wrapping
	// ErrFull when the live data would exceed the store's limit; nothing is
	// then changed.
	Put(key uint64, value []byte) error

	// Delete removes key. Deleting an absent key is not an error and changes
	// nothing. It need not be durable until Sync returns.
	Delete(key uint64) error

	// Sync makes every Put and Delete so far durable. Many Puts and Deletes
	// followed by one Sync share its cost (group commit). Sync is cheap when
	// nothing changed since the last Sync.
	Sync() error

	// Close syncs and releases the store. The store must not be used after
	// Close, except where an implementation documents otherwise ([Memory]).
	Close() error
}

// DefaultMaxBytes is the limit on live data ([Options].MaxBytes, and
// [NewMemory]) when none is given: 64 MiB.
const DefaultMaxBytes = 64 << 20

// MaxValueLen is the largest value a single record can hold: 1 GiB. A Put of
// a longer value fails with an error wrapping ErrFull, whatever the limit.
// (An MQTT packet is at most 256 MiB, so a client's values stay far below.)
const MaxValueLen = 1 << 30

// recordLiveSize is what one record counts against the limit: its key and
// its value.
func recordLiveSize(valueLen int) int64 { return 8 + int64(valueLen) }

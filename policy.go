package mqtt

import (
	"errors"
	"fmt"
	"sync"
)

// QueuePolicy says what a publish does when the client's queue is full:
// Config.MaxQueued publishes, or Config.MaxQueuedBytes bytes of topics and
// payloads, are accepted and not yet finished. Config.QueuePolicy sets it
// for the client; Message.QueuePolicy overrides it for one publish. Every
// outcome is still exactly one result per publish.
type QueuePolicy uint8

// The queue policies. The zero value of Message.QueuePolicy means "the
// client's"; the zero value of Config.QueuePolicy means Block.
const (
	// Block waits for room until the publish's ctx ends (then ErrWithdrawn).
	// Nothing is dropped: the window alarm.
	Block QueuePolicy = iota + 1
	// FailNewest returns an error wrapping ErrQueueFull at once.
	FailNewest
	// DropOldest makes room by dropping the oldest queued message that was
	// itself published with DropOldest or LatestPerTopic (a message
	// published with Block or FailNewest is never dropped); its publish
	// returns an error wrapping ErrDropped. When no such message is waiting,
	// the new publish fails with ErrQueueFull.
	DropOldest
	// LatestPerTopic keeps only the newest value per topic while messages
	// wait in the queue (while disconnected, or while the in-flight window
	// is full): a newer LatestPerTopic publish to the same topic supersedes
	// a waiting one, whose publish returns an error wrapping ErrSuperseded.
	// When the queue is full otherwise, it behaves as DropOldest. The
	// temperature sensor: only the latest reading matters.
	LatestPerTopic
)

func (p QueuePolicy) String() string {
	switch p {
	case 0:
		return "default"
	case Block:
		return "block"
	case FailNewest:
		return "fail newest"
	case DropOldest:
		return "drop oldest"
	case LatestPerTopic:
		return "latest per topic"
	}
	return fmt.Sprintf("QueuePolicy(%d)", uint8(p))
}

// The outcomes of the queue policies and of message expiry, for errors.Is.
var (
	// ErrQueueFull: the queue was full and the publish's policy did not
	// wait (FailNewest, or DropOldest with nothing it may drop). Nothing
	// was sent.
	ErrQueueFull = errors.New("mqtt: the publish queue is full")
	// ErrDropped: a newer DropOldest or LatestPerTopic publish needed the
	// room, and this message, still waiting in the queue, was dropped. It
	// was never sent and never will be.
	ErrDropped = errors.New("mqtt: dropped from a full queue to make room for a newer message")
	// ErrSuperseded: a newer LatestPerTopic publish to the same topic
	// replaced this message while it waited in the queue. It was never
	// sent and never will be.
	ErrSuperseded = errors.New("mqtt: superseded by a newer message to the same topic")
	// ErrExpired: the message's MQTT 5 Message Expiry Interval ran out while
	// it waited in the queue. It was never sent and never will be.
	ErrExpired = errors.New("mqtt: the message expired before it could be sent")
)

// admission bounds the publishes accepted and not yet finished, by count
// and by bytes. Callers take room before handing a publish to the session
// and release it when the publish finishes.
type admission struct {
	mu             sync.Mutex
	n, bytes       int
	maxN, maxBytes int
	room           chan struct{} // closed when room is released; nil when nobody waits
}

// takeOrWait takes room for one publish of size bytes, or returns a
// channel that is closed the next time room is released.
func (a *admission) takeOrWait(size int) (bool, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fitsLocked(0, 0, size) {
		a.n++
		a.bytes += size
		return true, nil
	}
	if a.room == nil {
		a.room = make(chan struct{})
	}
	return false, a.room
}

// room is what one publish holds in an admission: one of MaxQueued and
// its bytes of MaxQueuedBytes (nothing for one that holds no room).
type room struct{ n, bytes int }

// exchangeFor takes room for one publish of size bytes by releasing the
// rooms in freed, in order, as few of them as it needs but at least
// minFreed. It returns how many it released, or -1, changing nothing,
// when all of them are not enough: the caller drops exactly those, and
// drops nothing when the newcomer would not fit anyway.
func (a *admission) exchangeFor(size, minFreed int, freed []room) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	var n, bytes int
	for k := 0; k <= len(freed); k++ {
		if k >= minFreed && a.fitsLocked(n, bytes, size) {
			a.n += 1 - n
			a.bytes += size - bytes
			if n > 1 || bytes > size {
				a.wakeLocked()
			}
			return k
		}
		if k < len(freed) {
			n += freed[k].n
			bytes += freed[k].bytes
		}
	}
	return -1
}

func (a *admission) fitsLocked(freedN, freedBytes, size int) bool {
	return a.n-freedN+1 <= a.maxN && a.bytes-freedBytes+size <= a.maxBytes
}

// release gives back the room of n publishes of size bytes in total.
func (a *admission) release(n, size int) {
	a.mu.Lock()
	a.n -= n
	a.bytes -= size
	a.wakeLocked()
	a.mu.Unlock()
}

func (a *admission) wakeLocked() {
	if a.room != nil {
		close(a.room)
		a.room = nil
	}
}

// force takes room for a publish restored from a store, even beyond the
// limits: what was accepted before a restart is never refused after it.
func (a *admission) force(size int) {
	a.mu.Lock()
	a.n++
	a.bytes += size
	a.mu.Unlock()
}

// count is how many publishes hold room.
func (a *admission) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

package fleet

import (
	"encoding/binary"
	"sync"
	"time"
)

// ledger records every message the storm's publisher sent: to which
// client, when, whether the broker acknowledged it, and how often the
// client received it. The publisher, its result collector and the
// watchers write to it from their goroutines, hence the mutex.
type ledger struct {
	mu      sync.Mutex
	msgs    []msgRec
	strays  int           // payloads that named no message, or another client's
	changed chan struct{} // a value after every receipt; never blocks
}

type msgRec struct {
	target int32
	issued int64 // Unix ns, when PublishAsync was called
	state  uint8 // issued, acked, failed
	got    uint16
}

const (
	msgIssued = iota
	msgAcked
	msgFailed
)

func newLedger() *ledger { return &ledger{changed: make(chan struct{}, 1)} }

// issue records a message to target and returns its sequence number and
// payload.
func (l *ledger) issue(target int) (int, []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq := len(l.msgs)
	l.msgs = append(l.msgs, msgRec{target: int32(target), issued: time.Now().UnixNano()})
	return seq, binary.BigEndian.AppendUint64(nil, uint64(seq))
}

func (l *ledger) result(seq int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.msgs[seq].state = msgAcked
	} else {
		l.msgs[seq].state = msgFailed
	}
}

// received records that client got payload.
func (l *ledger) received(client int, payload []byte) {
	l.mu.Lock()
	if len(payload) != 8 {
		l.strays++
	} else if seq := binary.BigEndian.Uint64(payload); seq >= uint64(len(l.msgs)) || l.msgs[seq].target != int32(client) {
		l.strays++
	} else {
		l.msgs[seq].got++
	}
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// missing counts the messages of owed (sequence numbers) not received yet.
func (l *ledger) missing(owed []int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, seq := range owed {
		if l.msgs[seq].got == 0 {
			n++
		}
	}
	return n
}

// waitReceived waits until every message of owed was received, or until
// deadline; it returns how many were not.
func (l *ledger) waitReceived(owed []int, deadline <-chan time.Time) int {
	for {
		n := l.missing(owed)
		if n == 0 {
			return 0
		}
		select {
		case <-l.changed:
		case <-deadline:
			return l.missing(owed)
		}
	}
}

// snapshot copies the records.
func (l *ledger) snapshot() ([]msgRec, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]msgRec(nil), l.msgs...), l.strays
}

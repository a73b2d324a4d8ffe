package mqtt

import (
	"cmp"
	"iter"
	"slices"
)

// fifo is a first-in, first-out queue that reuses its backing array.
type fifo[T any] struct {
	items []T
	head  int
}

func (q *fifo[T]) len() int { return len(q.items) - q.head }

func (q *fifo[T]) push(v T) { q.items = append(q.items, v) }

// front returns the first element; the queue must not be empty.
func (q *fifo[T]) front() *T { return &q.items[q.head] }

func (q *fifo[T]) pop() {
	var zero T
	q.items[q.head] = zero // drop the reference for the collector
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head*2 > len(q.items) {
		// Reclaim the consumed front so a long-lived queue doesn't grow.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
}

// pushFront puts vs back at the front, in their order.
func (q *fifo[T]) pushFront(vs []T) {
	if len(vs) == 0 {
		return
	}
	q.items = append(slices.Clone(vs), q.items[q.head:]...)
	q.head = 0
}

// all yields every element, front first.
func (q *fifo[T]) all() iter.Seq[T] {
	return slices.Values(q.items[q.head:])
}

// opQueue is the FIFO of publishes waiting for a connection or for room in
// the in-flight window. Withdrawn publishes stay in it until they reach the
// front, where peek drops them.
type opQueue struct{ fifo[*pubOp] }

// peek returns the first publish that still wants sending, dropping
// finished ones on the way; nil when there is none.
func (q *opQueue) peek() *pubOp {
	for q.len() > 0 {
		o := *q.front()
		if !o.done() && o.state.Load() != opWithdrawn {
			return o
		}
		q.pop()
	}
	return nil
}

// oldestDroppable withdraws and returns the oldest waiting publish whose
// own policy lets a newer message drop it (DropOldest, LatestPerTopic);
// nil when there is none.
func (q *opQueue) oldestDroppable() *pubOp {
	for o := range q.all() {
		if (o.policy == DropOldest || o.policy == LatestPerTopic) && !o.done() && o.state.CompareAndSwap(opQueued, opWithdrawn) {
			return o
		}
	}
	return nil
}

// delivery is one inbound message waiting for the application, with what
// is needed to acknowledge it once taken.
type delivery struct {
	msg  Message
	id   uint16 // QoS 1/2 packet identifier
	gen  uint64
	size int // what it counts against MaxPendingBytes
}

// sortFlights orders flights by when they were first sent.
func sortFlights(fs []*flight) {
	slices.SortFunc(fs, func(a, b *flight) int { return cmp.Compare(a.seq, b.seq) })
}

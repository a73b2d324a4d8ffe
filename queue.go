package mqtt

import (
	"iter"
	"slices"
)

// opQueue is the FIFO of publishes waiting for a connection or for room in
// the in-flight window. Withdrawn publishes stay in it until they reach the
// front, where pop skips them.
type opQueue struct {
	items []*pubOp
	head  int
}

func (q *opQueue) len() int { return len(q.items) - q.head }

func (q *opQueue) push(o *pubOp) { q.items = append(q.items, o) }

// peek returns the first publish that still wants sending, dropping
// finished ones on the way; nil when there is none.
func (q *opQueue) peek() *pubOp {
	for q.len() > 0 {
		o := q.items[q.head]
		if !o.done() && o.state.Load() != opWithdrawn {
			return o
		}
		q.pop()
	}
	return nil
}

func (q *opQueue) pop() {
	q.items[q.head] = nil
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

// pushFront puts os back at the front, in their order.
func (q *opQueue) pushFront(os []*pubOp) {
	if len(os) == 0 {
		return
	}
	rest := q.items[q.head:]
	q.items = append(slices.Clone(os), rest...)
	q.head = 0
}

// all yields every publish still in the queue.
func (q *opQueue) all() iter.Seq[*pubOp] {
	return func(yield func(*pubOp) bool) {
		for _, o := range q.items[q.head:] {
			if !yield(o) {
				return
			}
		}
	}
}

// delivery is one inbound message waiting for the application, with what
// is needed to acknowledge it once taken.
type delivery struct {
	msg Message
	id  uint16 // QoS 1/2 packet identifier
	gen uint64
}

// deliveryQueue is the FIFO of inbound messages for the application.
type deliveryQueue struct {
	items []delivery
	head  int
}

func (q *deliveryQueue) len() int { return len(q.items) - q.head }

func (q *deliveryQueue) push(d delivery) { q.items = append(q.items, d) }

func (q *deliveryQueue) peek() *delivery { return &q.items[q.head] }

func (q *deliveryQueue) pop() {
	q.items[q.head] = delivery{}
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
}

// sortFlights orders flights by when they were first sent.
func sortFlights(fs []*flight) {
	slices.SortFunc(fs, func(a, b *flight) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
}

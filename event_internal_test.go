package mqtt

import (
	"errors"
	"fmt"
	"testing"
)

// A burst of retries must not push out the ConnectionLost before them
// (backoff.Constant(0) against a stopped broker emits thousands a second,
// and an application waiting for ConnectionLost never saw it); other
// events still make room by dropping the oldest.
func TestEmitKeepsNewsOverRetries(t *testing.T) {
	c := &Client{events: make(chan Event, eventBuffer)}
	c.emit(Event{Kind: ConnectionLost, Err: errors.New("gone")})
	for i := range 1000 {
		c.emit(Event{Kind: Reconnecting, Delay: 0, Count: i})
	}
	if e := <-c.events; e.Kind != ConnectionLost {
		t.Fatalf("first event %v, want the ConnectionLost before the retries", e)
	}
	for range eventBuffer {
		c.emit(Event{Kind: Connected})
	}
	for range eventBuffer {
		if e := <-c.events; e.Kind != Connected {
			t.Fatalf("got %v; a full buffer should have dropped the old retries for the news", e)
		}
	}
}

// Nobody but the Events reader hears that a publish restored from the
// store failed, so a burst of such failures (model F11: a restart after
// which the broker's new Maximum Packet Size fits none of 20 stored
// publishes) is never dropped: the events merge, each failure kept.
func TestEmitNeverDropsStoredFailures(t *testing.T) {
	c := &Client{events: make(chan Event, eventBuffer)}
	c.emit(Event{Kind: ConnectionLost, Err: errors.New("gone")})
	const n = 3 * eventBuffer
	for i := range n {
		c.emit(Event{Kind: StoredPublishFailed, Count: 1, Err: fmt.Errorf("publish %d to t/%d failed", i, i)})
	}
	c.emit(Event{Kind: Connected})
	var got []error
	count := 0
	for more := true; more; {
		select {
		case e := <-c.events:
			if e.Kind == ConnectionLost {
				t.Errorf("the oldest event of another kind should have made room first: %v", e)
			}
			got = append(got, StoredFailures(e)...)
			if e.Kind == StoredPublishFailed {
				count += e.Count
				if len(StoredFailures(e)) != e.Count {
					t.Errorf("%v: Count %d, %d failures", e, e.Count, len(StoredFailures(e)))
				}
			}
		default:
			more = false
		}
	}
	if len(got) != n || count != n {
		t.Fatalf("%d failures in the events (Count adds to %d), want %d", len(got), count, n)
	}
	for i, err := range got {
		if want := fmt.Sprintf("publish %d to t/%d failed", i, i); err.Error() != want {
			t.Fatalf("failure %d is %q, want %q, in order", i, err, want)
		}
	}
}

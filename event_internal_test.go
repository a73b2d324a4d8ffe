package mqtt

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// A burst of retries must not push out the ConnectionLost before them
// (backoff.Constant(0) against a stopped broker emits thousands a second,
// and an application waiting for ConnectionLost never saw it); other
// events still make room by dropping the oldest.
func TestEmitKeepsNewsOverRetries(t *testing.T) {
	eachEventsStart(t, testEmitKeepsNewsOverRetries)
}

func testEmitKeepsNewsOverRetries(t *testing.T, c *Client, events func() <-chan Event) {
	c.emit(Event{Kind: ConnectionLost, Err: errors.New("gone")})
	for i := range 1000 {
		c.emit(Event{Kind: Reconnecting, Delay: 0, Count: i})
	}
	if e := <-events(); e.Kind != ConnectionLost {
		t.Fatalf("first event %v, want the ConnectionLost before the retries", e)
	}
	for range eventBuffer {
		c.emit(Event{Kind: Connected})
	}
	for range eventBuffer {
		if e := <-events(); e.Kind != Connected {
			t.Fatalf("got %v; a full buffer should have dropped the old retries for the news", e)
		}
	}
}

// Nobody but the Events reader hears that a publish restored from the
// store failed, so a burst of such failures (model F11: a restart after
// which the broker's new Maximum Packet Size fits none of 20 stored
// publishes) is never dropped: the events merge, each failure kept.
func TestEmitNeverDropsStoredFailures(t *testing.T) {
	eachEventsStart(t, testEmitNeverDropsStoredFailures)
}

func testEmitNeverDropsStoredFailures(t *testing.T, c *Client, events func() <-chan Event) {
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
		case e := <-events():
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

// A refused re-subscription is heard of nowhere else either: bursts of
// ResubscribeFailed mixed with StoredPublishFailed (a resubscription
// refused after a full buffer of stored failures included, which has no
// other event of its kind to merge into) lose no filter and no failure.
func TestEmitNeverDropsResubscribeFailures(t *testing.T) {
	eachEventsStart(t, testEmitNeverDropsResubscribeFailures)
}

func testEmitNeverDropsResubscribeFailures(t *testing.T, c *Client, events func() <-chan Event) {
	var wantFilters []string
	stored := 0
	resubscribe := func(i int) {
		f := fmt.Sprintf("f/%d", i)
		wantFilters = append(wantFilters, f)
		c.emit(Event{Kind: ResubscribeFailed, Err: &resubscribeError{filters: []string{f}, err: fmt.Errorf("%w: %s", ErrRefused, f)}})
	}
	for i := range eventBuffer {
		c.emit(Event{Kind: StoredPublishFailed, Count: 1, Err: fmt.Errorf("stored %d", i)})
		stored++
	}
	resubscribe(0) // the buffer holds only the other kind
	for i := 1; i < 3*eventBuffer; i++ {
		c.emit(Event{Kind: Connected})
		if i%3 == 0 {
			c.emit(Event{Kind: StoredPublishFailed, Count: 1, Err: fmt.Errorf("stored %d", stored)})
			stored++
		}
		resubscribe(i)
	}
	var gotFilters []string
	gotStored := 0
	for more := true; more; {
		select {
		case e := <-events():
			switch e.Kind {
			case ResubscribeFailed:
				gotFilters = append(gotFilters, FailedFilters(e)...)
				for _, f := range FailedFilters(e) {
					if !strings.Contains(e.Err.Error(), f) || !errors.Is(e.Err, ErrRefused) {
						t.Errorf("%v: its error does not say why %s failed", e, f)
					}
				}
			case StoredPublishFailed:
				gotStored += e.Count
			}
		default:
			more = false
		}
	}
	slices.Sort(gotFilters)
	slices.Sort(wantFilters)
	if !slices.Equal(gotFilters, wantFilters) || gotStored != stored {
		t.Fatalf("the events name filters %q and %d stored failures, want %q and %d", gotFilters, gotStored, wantFilters, stored)
	}
}

// eachEventsStart runs test twice: once with the Events channel made
// before the first event (an application that reads events from the
// start), once with the events kept until the test's first read makes it
// (emit holds them meanwhile, to the same rules).
func eachEventsStart(t *testing.T, test func(t *testing.T, c *Client, events func() <-chan Event)) {
	t.Run("channel first", func(t *testing.T) {
		c := &Client{}
		ch := c.Events()
		test(t, c, func() <-chan Event { return ch })
	})
	t.Run("channel made later", func(t *testing.T) {
		c := &Client{}
		test(t, c, c.Events)
	})
}

// A client whose events nobody asked for keeps them until Events is
// called, in order, as the channel would have; after the client stopped,
// Events still hands them out, then reports the channel closed.
func TestEventsAskedForLate(t *testing.T) {
	c := &Client{}
	for i := range 3 {
		c.emit(Event{Kind: Connected, Count: i})
	}
	if len(c.unread) != 3 || c.events != nil {
		t.Fatalf("before Events: %d kept, channel made: %t; want 3 kept and no channel", len(c.unread), c.events != nil)
	}
	c.eventsMu.Lock()
	c.eventsClosed = true // what the session does when the client stops
	c.eventsMu.Unlock()
	c.emit(Event{Kind: Connected, Count: 99}) // after the stop: dropped
	var got []int
	for e := range c.Events() {
		got = append(got, e.Count)
	}
	if fmt.Sprint(got) != "[0 1 2]" {
		t.Fatalf("events %v, want [0 1 2] and then the channel closed", got)
	}
	if c.Events() != c.Events() {
		t.Fatal("Events returned two different channels")
	}
	d := &Client{}
	for range 2 * eventBuffer {
		d.emit(Event{Kind: Connected})
	}
	if len(d.unread) != eventBuffer || cap(d.unread) > eventBuffer+1 {
		t.Fatalf("%d kept in a slice of %d, want %d in at most %d", len(d.unread), cap(d.unread), eventBuffer, eventBuffer+1)
	}
}

// The application gets a copy of the CONNACK's properties, which the
// connection keeps reading, whether its Events channel was there when the
// Connected event came or was made after.
func TestConnackHandedOutAsACopy(t *testing.T) {
	eachEventsStart(t, func(t *testing.T, c *Client, events func() <-chan Event) {
		recv := uint16(10)
		orig := &Properties{ReceiveMaximum: &recv, ReasonString: "ok"}
		c.emit(Event{Kind: Connected, Connack: orig})
		e := <-events()
		if e.Connack == orig || e.Connack == nil || e.Connack.ReceiveMaximum == orig.ReceiveMaximum {
			t.Fatalf("the event shares the CONNACK's properties: %p %+v", e.Connack, e.Connack)
		}
		if *e.Connack.ReceiveMaximum != 10 || e.Connack.ReasonString != "ok" {
			t.Fatalf("the copy differs: %+v", e.Connack)
		}
		*e.Connack.ReceiveMaximum = 99
		if recv != 10 {
			t.Fatal("changing the event's copy changed the connection's")
		}
	})
}

package mqtt

import (
	"errors"
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

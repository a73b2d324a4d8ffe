package mqtttest

import (
	"context"
	"sync"
)

// signal wakes every goroutine waiting for "something changed". A waiter takes
// the channel from wait, re-checks its condition, and blocks on the channel;
// broadcast closes it. Cheap when nobody waits: broadcast then only takes the
// lock.
type signal struct {
	mu sync.Mutex
	ch chan struct{} // nil while nobody waits
}

// wait returns a channel that broadcast closes.
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// broadcast wakes every current waiter.
func (s *signal) broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// until blocks until cond returns true, re-checking it after every broadcast,
// or until ctx ends. The channel is taken before cond is checked, so a change
// between the check and the wait is never missed.
func (s *signal) until(ctx context.Context, cond func() bool) error {
	for {
		ch := s.wait()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

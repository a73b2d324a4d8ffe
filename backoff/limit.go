package backoff

import "time"

// MaxAttempts returns a Strategy that allows at most n retries per streak:
// it asks s while a.N <= n and gives up from retry n+1 on (or earlier, if s
// gives up). n <= 0 gives up at once, like [Never]. It panics if s is nil.
func MaxAttempts(s Strategy, n int) Strategy {
	mustStrategy(s, "MaxAttempts")
	return maxAttempts{s: s, n: n}
}

type maxAttempts struct {
	s Strategy
	n int
}

func (m maxAttempts) Next(a Attempt) (time.Duration, bool) {
	if a.N > m.n {
		return 0, false
	}
	return m.s.Next(a)
}

// MaxElapsed returns a Strategy that gives up rather than start a retry more
// than d after the loss: it asks s for the delay and retries only if
//
//	a.Elapsed + delay <= d
//
// so no retry begins later than d after the loss (a retry that begins just
// before d may still take a while to fail). s's delay is not shortened to fit
// a last retry in; the schedule stays the one s chose. A button press that
// stops mattering after 15 seconds is MaxElapsed(s, 15*time.Second). A
// negative Elapsed or delay counts as 0; d <= 0 allows only a zero delay at
// zero elapsed time. It panics if s is nil.
func MaxElapsed(s Strategy, d time.Duration) Strategy {
	mustStrategy(s, "MaxElapsed")
	return maxElapsed{s: s, d: d}
}

type maxElapsed struct {
	s Strategy
	d time.Duration
}

func (m maxElapsed) Next(a Attempt) (time.Duration, bool) {
	elapsed := max(a.Elapsed, 0)
	if elapsed > m.d {
		return 0, false
	}
	delay, retry := m.s.Next(a)
	// Compare with a subtraction: elapsed+delay could overflow for a delay
	// near math.MaxInt64. 0 <= elapsed <= m.d here, so this one cannot.
	if !retry || max(delay, 0) > m.d-elapsed {
		return 0, false
	}
	return delay, true
}

// mustStrategy panics on a nil Strategy: a wrapper built around nothing is a
// programming error that should surface where the wrapper is built, not at
// the first lost connection.
func mustStrategy(s Strategy, fn string) {
	if s == nil {
		panic("backoff: " + fn + " called with a nil Strategy")
	}
}

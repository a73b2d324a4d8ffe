package battery

import (
	"math"
	"math/bits"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
)

// Scale returns s run at another speed: what s does in from, the result
// does in to. Scale(s, time.Hour, 3*time.Second) makes a 1-hour schedule
// fit in 3 seconds, for a test that measures a real client during a
// shortened outage: the result asks s with Elapsed and Prev multiplied by
// from/to, and divides the delay s chooses by the same factor, so it makes
// the same decisions at the same points of the shortened outage, up to the
// nanosecond that the division rounds away.
//
// Attempt.N and Attempt.Err are passed through. The arithmetic is exact to
// the nanosecond (rounded down) and saturates instead of overflowing.
// Scale panics, with the package prefix, if s is nil or from or to is not
// positive: a programming error.
func Scale(s backoff.Strategy, from, to time.Duration) backoff.Strategy {
	if s == nil {
		panic("battery: Scale called with a nil Strategy")
	}
	if from <= 0 || to <= 0 {
		panic("battery: Scale needs positive durations, got from " + from.String() + " to " + to.String())
	}
	return backoff.Func(func(a backoff.Attempt) (time.Duration, bool) {
		a.Elapsed = mulDiv(a.Elapsed, from, to)
		a.Prev = mulDiv(a.Prev, from, to)
		delay, retry := s.Next(a)
		return mulDiv(delay, to, from), retry
	})
}

// mulDiv returns d·num/den rounded towards zero, saturated to the range of
// a Duration; num and den are positive.
func mulDiv(d, num, den time.Duration) time.Duration {
	neg := d < 0
	// The magnitude of math.MinInt64 wraps to itself as an int64 but is
	// right as a uint64.
	abs := uint64(d)
	if neg {
		abs = -abs
	}
	hi, lo := bits.Mul64(abs, uint64(num))
	var q uint64
	if hi >= uint64(den) { // the quotient does not fit in 64 bits
		q = math.MaxUint64
	} else {
		q, _ = bits.Div64(hi, lo, uint64(den))
	}
	if neg {
		if q > 1<<63 {
			return math.MinInt64
		}
		return time.Duration(-q)
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(q)
}

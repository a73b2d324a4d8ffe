package backoff

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Jitter chooses how [Exponential] randomises its delays. The zero value is
// [FullJitter].
type Jitter int

const (
	// FullJitter draws each delay uniformly from [0, base), where base is the
	// exponential delay Initial·Multiplierᴺ⁻¹ capped at Max. It spreads
	// clients the most and is the default: many devices coming back after a
	// power cut must not reconnect in lockstep. A delay may be 0.
	FullJitter Jitter = iota
	// EqualJitter draws each delay uniformly from [base/2, base): never less
	// than half the exponential delay, still spread.
	EqualJitter
	// DecorrelatedJitter draws each delay uniformly from
	// [Initial, min(Max, max(Prev, Initial)·Multiplier)), where Prev is
	// [Attempt.Prev], the previous delay; it ignores N. Its Multiplier
	// defaults to 3, with which the delays grow by about half on average.
	DecorrelatedJitter
	// NoJitter waits exactly the exponential delay: predictable, and in
	// lockstep with every other client that lost its connection at the same
	// time. For tests and single devices.
	NoJitter
)

// String returns the constant's name, e.g. "FullJitter".
func (j Jitter) String() string {
	switch j {
	case FullJitter:
		return "FullJitter"
	case EqualJitter:
		return "EqualJitter"
	case DecorrelatedJitter:
		return "DecorrelatedJitter"
	case NoJitter:
		return "NoJitter"
	}
	return "Jitter(" + strconv.Itoa(int(j)) + ")"
}

// Exponential is a [Strategy] that retries forever with delays growing
// exponentially from Initial up to Max, randomised by Jitter. The zero value
// behaves as [Default]. Exponential is a plain value: copy it, and share it
// between goroutines (if Rand is safe for concurrent use).
//
// Before jitter, the delay before retry N is
//
//	base(N) = min(Initial · Multiplierᴺ⁻¹, Max)
//
// computed without overflow: however large N is, base(N) is at most Max.
// Wrap it in [MaxAttempts] or [MaxElapsed] to stop retrying.
type Exponential struct {
	// Initial is the delay before the first retry, before jitter. Zero or
	// negative: [DefaultInitial] (1 s).
	Initial time.Duration
	// Max caps the delay before jitter. Zero or negative: [DefaultMax]
	// (2 min). If Max is less than Initial, Initial is the cap: every delay
	// is based on Initial.
	Max time.Duration
	// Multiplier is the growth of the delay per retry. Zero, NaN or less than
	// 1: [DefaultMultiplier] (2), or 3 with DecorrelatedJitter. 1 gives a
	// constant delay; +Inf reaches Max at the second retry.
	Multiplier float64
	// Jitter randomises the delays; the zero value is [FullJitter]. An
	// unknown value means FullJitter.
	Jitter Jitter
	// Rand returns a random number in [0, 1). nil: math/rand/v2's Float64,
	// which is safe for concurrent use. Tests inject a fixed sequence to get
	// an exact schedule; a value outside [0, 1) (or NaN) is clamped into it.
	Rand func() float64
}

// Next returns the delay before retry a.N, and always retry = true.
func (e Exponential) Next(a Attempt) (time.Duration, bool) {
	initial, ceiling, mult := e.params()
	var lo, hi float64 // the delay is drawn from [lo, hi)
	switch e.Jitter {
	case NoJitter:
		b := base(initial, ceiling, mult, a.N)
		return toDuration(b, ceiling), true
	case EqualJitter:
		b := base(initial, ceiling, mult, a.N)
		lo, hi = b/2, b
	case DecorrelatedJitter:
		prev := max(float64(a.Prev), float64(initial))
		lo, hi = float64(initial), min(prev*mult, float64(ceiling))
	default: // FullJitter and unknown values
		lo, hi = 0, base(initial, ceiling, mult, a.N)
	}
	return toDuration(lo+e.random()*(hi-lo), ceiling), true
}

// params returns Initial, the cap and Multiplier with the defaults applied.
func (e Exponential) params() (initial, ceiling time.Duration, mult float64) {
	initial, ceiling, mult = e.Initial, e.Max, e.Multiplier
	if initial <= 0 {
		initial = DefaultInitial
	}
	if ceiling <= 0 {
		ceiling = DefaultMax
	}
	ceiling = max(ceiling, initial)
	if !(mult >= 1) { // also catches NaN
		mult = DefaultMultiplier
		if e.Jitter == DecorrelatedJitter {
			mult = 3
		}
	}
	return initial, ceiling, mult
}

// base returns min(initial·multⁿ⁻¹, ceiling) in nanoseconds. math.Pow
// saturates at +Inf instead of wrapping, so a large n gives the ceiling, never
// a negative delay.
func base(initial, ceiling time.Duration, mult float64, n int) float64 {
	n = max(n, 1)
	b := float64(initial) * math.Pow(mult, float64(n-1))
	return min(b, float64(ceiling))
}

// random returns e.Rand() (or a fresh random number) clamped into [0, 1).
func (e Exponential) random() float64 {
	if e.Rand == nil {
		return rand.Float64()
	}
	r := e.Rand()
	switch {
	case !(r >= 0): // also catches NaN
		return 0
	case r >= 1:
		return math.Nextafter(1, 0)
	}
	return r
}

// toDuration converts ns to a Duration in [0, ceiling]. float64(ceiling) may
// round up past math.MaxInt64, where a conversion would overflow, so values
// that reach it return ceiling itself.
func toDuration(ns float64, ceiling time.Duration) time.Duration {
	switch {
	case ns >= float64(ceiling):
		return ceiling
	case !(ns > 0):
		return 0
	}
	return time.Duration(ns)
}

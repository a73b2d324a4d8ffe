package battery

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
)

// Rand returns a source of random numbers in [0, 1) for
// backoff.Exponential.Rand that always gives the same sequence for the same
// seed: a PCG generator (math/rand/v2, whose algorithm is fixed) turned into
// floats with 53 random bits. It is not safe for concurrent use: give each
// strategy its own.
func Rand(seed uint64) func() float64 {
	pcg := rand.NewPCG(seed, seed)
	return func() float64 { return float64(pcg.Uint64()>>11) / (1 << 53) }
}

// Expected are the average figures of many simulated outages, for a strategy
// that draws its delays at random.
type Expected struct {
	// Runs is how many outages were simulated: 1 when the strategy drew no
	// random number, since every run would then be the same.
	Runs int
	// Attempts and Bytes are the means of [Figures.Attempts] and
	// [Figures.Bytes]; AttemptsErr is the standard error of Attempts.
	Attempts, AttemptsErr float64
	Bytes                 float64
	// Reconnected is the fraction of the runs in which the device
	// reconnected, from 0 to 1.
	Reconnected float64
	// ReconnectAfter is the mean of [Figures.ReconnectAfter] over the runs
	// that reconnected, and ReconnectAfterErr its standard error. Both are
	// 0 if none did.
	ReconnectAfter, ReconnectAfterErr time.Duration
	// GaveUpAfter is the mean of [Figures.GaveUpAfter] over the runs that
	// gave up; 0 if none did.
	GaveUpAfter time.Duration
}

// Mean simulates runs outages of the given length, each with a strategy
// from newStrategy, and averages the figures. newStrategy must draw every
// random number it needs from the source it is given (for an Exponential,
// set Rand to it); Mean passes the same seeded source (see [Rand]) to every
// call, so the result is repeatable. If the first strategy draws nothing
// it is deterministic, and Mean returns its figures with Runs = 1.
//
// The standard errors say how far the means may be from the true expected
// values: about a third of the time by more than one standard error. With
// [MeanRuns] runs they are 1.4% of the spread of one run's figures.
func Mean(newStrategy func(rand func() float64) backoff.Strategy, outage time.Duration, runs int, seed uint64) (Expected, error) {
	var e Expected
	if newStrategy == nil {
		return e, errors.New("battery: Mean needs a function that makes the strategy, got nil")
	}
	if runs < 1 {
		return e, fmt.Errorf("battery: Mean needs at least one run, got %d", runs)
	}
	src := Rand(seed)
	draws := 0
	counted := func() float64 { draws++; return src() }
	var attempts, reconnectAfter, gaveUpAfter stats
	for i := range runs {
		f, err := Simulate(newStrategy(counted), outage)
		if err != nil {
			return e, err
		}
		e.Runs++
		attempts.add(float64(f.Attempts))
		e.Bytes += float64(f.Bytes)
		if f.Reconnected {
			reconnectAfter.add(float64(f.ReconnectAfter))
		} else {
			gaveUpAfter.add(float64(f.GaveUpAfter))
		}
		if i == 0 && draws == 0 {
			break
		}
	}
	e.Attempts, e.AttemptsErr = attempts.mean(), attempts.stdErr()
	e.Bytes /= float64(e.Runs)
	e.Reconnected = float64(reconnectAfter.n) / float64(e.Runs)
	e.ReconnectAfter = time.Duration(math.Round(reconnectAfter.mean()))
	e.ReconnectAfterErr = time.Duration(math.Round(reconnectAfter.stdErr()))
	e.GaveUpAfter = time.Duration(math.Round(gaveUpAfter.mean()))
	return e, nil
}

// stats accumulates a mean and a variance (Welford's method, which stays
// exact where a sum of squares of nanoseconds would lose its precision).
type stats struct {
	n       int
	avg, m2 float64
}

func (s *stats) add(x float64) {
	s.n++
	d := x - s.avg
	s.avg += d / float64(s.n)
	s.m2 += d * (x - s.avg)
}

func (s *stats) mean() float64 { return s.avg }

// stdErr is the standard error of the mean; 0 for fewer than two values.
func (s *stats) stdErr() float64 {
	if s.n < 2 {
		return 0
	}
	return math.Sqrt(s.m2 / float64(s.n-1) / float64(s.n))
}

package battery

import (
	"time"

	"github.com/robustmqtt/mqtt/backoff"
)

// Case is a device and the reconnect strategy it uses, built around a
// source of random numbers so that it can be simulated with a seed
// ([Simulate]) or averaged over many outages ([Mean]).
type Case struct {
	// Device says who uses the strategy, e.g. "window alarm".
	Device string
	// Strategy is the Go expression that builds it, for the table.
	Strategy string
	// New builds the strategy, drawing its random numbers from rand. Every
	// call returns a new strategy; the rand given is its only randomness.
	New func(rand func() float64) backoff.Strategy
}

// Cases returns the strategies the README compares, in its order: the
// client's default; the window alarm; umqtt.robust's own policy, a fixed
// 2 s delay (its DELAY) forever; the button press; the temperature sensor.
// The three devices are those of umqtt.robust's README, configured as
// package backoff's doc and examples configure them.
func Cases() []Case {
	return []Case{
		{
			Device:   "any (the client's default)",
			Strategy: "backoff.Default()",
			New: func(rand func() float64) backoff.Strategy {
				return backoff.Exponential{
					Initial:    backoff.DefaultInitial,
					Max:        backoff.DefaultMax,
					Multiplier: backoff.DefaultMultiplier,
					Jitter:     backoff.FullJitter,
					Rand:       rand,
				}
			},
		},
		{
			Device:   "window alarm",
			Strategy: "Exponential{Initial: 1s, Max: 30m}",
			New: func(rand func() float64) backoff.Strategy {
				return backoff.Exponential{Initial: time.Second, Max: 30 * time.Minute, Rand: rand}
			},
		},
		{
			Device:   "umqtt.robust (fixed 2 s)",
			Strategy: "Constant(2s)",
			New: func(func() float64) backoff.Strategy {
				return backoff.Constant(2 * time.Second)
			},
		},
		{
			Device:   "button press",
			Strategy: "MaxElapsed(Exponential{Initial: 500ms, Max: 4s}, 15s)",
			New: func(rand func() float64) backoff.Strategy {
				return backoff.MaxElapsed(backoff.Exponential{
					Initial: 500 * time.Millisecond,
					Max:     4 * time.Second,
					Rand:    rand,
				}, 15*time.Second)
			},
		},
		{
			Device:   "temperature sensor",
			Strategy: "Never()",
			New: func(func() float64) backoff.Strategy {
				return backoff.Never()
			},
		},
	}
}

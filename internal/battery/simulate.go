package battery

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
)

// MaxAttempts bounds the attempts Simulate makes in one outage, so that a
// strategy that retries without waiting (Constant(0)) ends in an error
// instead of a loop without end. A million attempts is more than a day of
// retrying every 100 ms.
const MaxAttempts = 1_000_000

// ErrTooManyAttempts is returned by Simulate when a strategy makes more than
// MaxAttempts attempts in one outage.
var ErrTooManyAttempts = errors.New("battery: the strategy made more attempts than battery.MaxAttempts in one outage; does it wait at all? Give it a delay or a shorter outage")

// errRefused is the Attempt.Err of every simulated attempt: the port refused.
var errRefused = fmt.Errorf("battery: simulated connection attempt: %w", syscall.ECONNREFUSED)

// Figures are what one broker outage costs a device under one strategy.
type Figures struct {
	// Attempts is how many connection attempts the device made while the
	// broker was away; all of them were refused.
	Attempts int
	// Bytes is what those attempts sent and received:
	// Attempts × RefusedAttemptBytes (see the byte model there).
	Bytes int64
	// Reconnected is false when the strategy gave up during the outage:
	// the client stopped, and only a new Dial brings it back.
	Reconnected bool
	// ReconnectAfter is, when Reconnected, the time from the broker's
	// return to the attempt that connects. An attempt takes no time in the
	// simulation: a real one adds the round trips of the TCP handshake and
	// CONNECT/CONNACK, and the first delivery one more for PUBLISH/PUBACK.
	ReconnectAfter time.Duration
	// GaveUpAfter is, when not Reconnected, the time from the loss to the
	// strategy's giving up.
	GaveUpAfter time.Duration
}

// Simulate plays one broker outage through s in simulated time, without
// sleeping or starting a goroutine, and returns what it cost.
//
// The device loses its connection at time 0, when the broker goes away, and
// notices at once (the broker's host closes the socket). The broker is back
// at outage: an attempt made before then is refused at once, an attempt made
// at or after it connects. Simulate consults s as the client's supervisor
// does, with the Attempt filled in: N from 1, Elapsed the time since the
// loss, Prev the previous delay, and Err a refusal that wraps
// syscall.ECONNREFUSED. A negative delay counts as 0.
//
// A strategy that draws its delays at random gives one possible outcome:
// give it a seeded source (see [Rand]) for an exact, repeatable one, or use
// [Mean] for the expected figures. Simulate returns an error, and the
// figures so far, if s is nil, if outage is negative, or (wrapping
// [ErrTooManyAttempts]) if s makes more than [MaxAttempts] attempts.
func Simulate(s backoff.Strategy, outage time.Duration) (Figures, error) {
	var f Figures
	if s == nil {
		return f, errors.New("battery: Simulate needs a strategy, got nil")
	}
	if outage < 0 {
		return f, fmt.Errorf("battery: the outage %v is negative; give its length, 0 or more", outage)
	}
	a := backoff.Attempt{N: 1, Err: errRefused}
	for {
		delay, retry := s.Next(a)
		if !retry {
			f.GaveUpAfter = a.Elapsed
			return f, nil
		}
		delay = max(delay, 0)
		// Compared by subtraction: a.Elapsed+delay could overflow for a
		// delay near math.MaxInt64; 0 <= a.Elapsed < outage here.
		if delay >= outage-a.Elapsed {
			f.Reconnected = true
			f.ReconnectAfter = delay - (outage - a.Elapsed)
			return f, nil
		}
		if f.Attempts == MaxAttempts {
			return f, fmt.Errorf("%w (%d attempts in the first %v of a %v outage)", ErrTooManyAttempts, f.Attempts, a.Elapsed, outage)
		}
		f.Attempts++
		f.Bytes += RefusedAttemptBytes
		a.N++
		a.Elapsed += delay
		a.Prev = delay
	}
}

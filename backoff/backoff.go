package backoff

import "time"

// Attempt describes the retry about to be made. The caller keeps this state
// and passes it to [Strategy.Next]; strategies keep none of their own.
//
// A run of retries (a streak) starts with a loss, the failure after which the
// caller begins to retry; it ends when a connection has proved stable, and
// the next loss starts a new streak with N = 1 again.
type Attempt struct {
	// N counts the retries of this streak: 1 is the first retry after the
	// loss. Strategies treat N < 1 as 1.
	N int
	// Elapsed is the time since the loss, measured when the strategy is
	// consulted: the delays waited so far plus the time the retries took to
	// fail. 0 for N = 1 when the caller consults the strategy at once.
	Elapsed time.Duration
	// Err is why the last try failed. The strategies of this package ignore
	// it; a [Func] may look at it (for example with errors.Is) to give up on
	// errors that retrying cannot fix.
	Err error
	// Prev is the delay the strategy chose for the previous retry of this
	// streak, 0 when N = 1. It lets [DecorrelatedJitter] build each delay
	// from the last one while staying stateless. A caller that leaves it 0
	// makes DecorrelatedJitter draw every delay as if it were the first.
	Prev time.Duration
}

// Strategy decides whether to retry and how long to wait first.
//
// Next returns the delay to wait before the retry that a describes, and
// retry = false when it is time to give up (the delay is then meaningless).
// Implementations must be safe for concurrent use and should be pure
// functions of a (and of a random source): the caller does the waiting and
// keeps the count. A negative delay is treated as 0 by the supervisor.
type Strategy interface {
	Next(a Attempt) (delay time.Duration, retry bool)
}

// Func adapts a function to a [Strategy], for one-off policies:
//
//	backoff.Func(func(a backoff.Attempt) (time.Duration, bool) {
//		if errors.Is(a.Err, errNotAuthorized) {
//			return 0, false // retrying cannot fix a bad password
//		}
//		return backoff.Default().Next(a)
//	})
type Func func(a Attempt) (time.Duration, bool)

// Next calls f(a).
func (f Func) Next(a Attempt) (time.Duration, bool) { return f(a) }

// Constant returns a Strategy that retries forever, waiting d before every
// retry. A negative d means 0. Without jitter, clients that lost their
// connection together retry together: prefer [Exponential] when many clients
// share a broker.
func Constant(d time.Duration) Strategy { return constant(max(d, 0)) }

type constant time.Duration

func (c constant) Next(Attempt) (time.Duration, bool) { return time.Duration(c), true }

// Never returns a Strategy that gives up at once: the first loss ends the
// retrying. It suits a device for which a lost message is fine and the
// battery is not (a temperature sensor that reports every minute anyway).
func Never() Strategy { return never{} }

type never struct{}

func (never) Next(Attempt) (time.Duration, bool) { return 0, false }

// Defaults of [Exponential], which [Default] uses.
const (
	// DefaultInitial is the delay before the first retry, before jitter. One
	// second, rather than less: with full jitter a fleet that lost a broker
	// together comes back spread over a second, not all in its first
	// milliseconds.
	DefaultInitial = time.Second
	// DefaultMax caps every delay, before jitter. Two minutes: with full
	// jitter a client retries on average once a minute during a long outage,
	// and comes back within two minutes of its end.
	DefaultMax = 2 * time.Minute
	// DefaultMultiplier is the growth of the delay per retry.
	DefaultMultiplier = 2.0
)

// Default returns the Strategy that the client uses when none is configured:
// retry forever, exponentially with full jitter, from [DefaultInitial]
// doubling ([DefaultMultiplier]) up to [DefaultMax]. The n-th delay is drawn
// uniformly from [0, min(1s·2ⁿ⁻¹, 2min)).
func Default() Strategy {
	return Exponential{
		Initial:    DefaultInitial,
		Max:        DefaultMax,
		Multiplier: DefaultMultiplier,
		Jitter:     FullJitter,
	}
}

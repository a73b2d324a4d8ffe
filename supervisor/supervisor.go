package supervisor

import (
	"context"
	"sync"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
)

// DefaultStableAfter is the default of [Config.StableAfter].
const DefaultStableAfter = 30 * time.Second

// Config configures [Run]. The zero value works except Start, which is
// required.
type Config struct {
	// Start begins one run. It is called on Run's goroutine with the run's
	// ctx (cancelled when any member fails or Run's ctx ends) and the run's
	// [Group]. It may do blocking set-up (for an MQTT client: dial, then the
	// CONNECT/CONNACK exchange) while honouring ctx, start the run's
	// goroutines with g.Go, and call g.Up once the run is established; Start
	// itself is not a member, and its returning nil does not end the run.
	//
	// If Start returns an error, the run fails with it after every member
	// it started has been cancelled and awaited; if a member had already
	// failed, the member's error is the run's error instead (Start's is then
	// most likely ctx's). If Start returns nil having started no member, the
	// run fails with [ErrRunEnded].
	Start func(ctx context.Context, g *Group) error

	// Backoff chooses the delay before each restart, and when to give up.
	// nil: [backoff.Default], exponential with full jitter, forever.
	//
	// Run fills every field of the [backoff.Attempt] it passes: N counts the
	// retries since the loss (1 = the first), Elapsed is the time since the
	// loss when the strategy is consulted (after the failed run's members
	// have all returned), Err is the run's error, and Prev is the delay
	// chosen for the previous retry of the streak. The loss is the moment
	// the first failure of the streak was noticed. A negative delay counts
	// as 0.
	Backoff backoff.Strategy

	// StableAfter is how long a run must stay up (after g.Up) before its
	// failure starts a new streak, with N = 1 and Elapsed from that failure.
	// A run that fails sooner, or never came up, continues the streak:
	// the delays keep growing and Elapsed keeps counting from the first
	// failure. Zero or negative: [DefaultStableAfter], 30 s.
	//
	// This is what keeps a broker that accepts a client and then kicks it
	// at once (a duplicate client ID, a refused subscription) from causing a
	// reconnect storm, while a link that drops once a day does not inherit
	// yesterday's long delays. With a strategy whose delays grow (the
	// default), however a connection flaps, runs do not start faster than
	// about one per StableAfter for long: a run that lasts less does not
	// stop the delays from growing.
	StableAfter time.Duration

	// Stop, if not nil, stops Run from outside like the end of Run's ctx
	// does, without Run's ctx being one that can end: with
	// context.Background, the runs' contexts have no parent to register
	// with (a cancellable parent keeps a map of its children and a
	// channel, about 0.4 KiB for a supervisor that lives as long as an MQTT
	// client). Run then returns an error wrapping [ErrStopped].
	Stop *Stopper

	// OnEvent observes the supervisor: it is called on Run's goroutine, in
	// order, for every [Event]. It must not block or take long, because Run
	// waits for it: an observer that forwards events elsewhere uses a
	// non-blocking send (select with default), or a buffer of its own. nil:
	// no events.
	OnEvent func(Event)
}

// Run runs cfg.Start's group of goroutines one for all, restarting it after
// every failure, until the backoff strategy gives up or ctx ends.
//
// The first run starts at once. When any member of a run fails, the run's
// ctx is cancelled, all its members are awaited, and after the delay that
// cfg.Backoff chooses the next run starts; a run that failed before it came
// up (for a client: the dial failed) counts the same way. The wait uses one
// timer for the whole of Run, and ctx ending during it returns at once.
//
// Run returns only after every goroutine it started (Start's members
// included) has returned, so a member that ignores its ctx keeps Run waiting.
// It returns
//   - when ctx ends: an error wrapping ctx.Err() (errors.Is(err,
//     context.Canceled) or context.DeadlineExceeded holds) and ctx's cause,
//     if it has one;
//   - when the strategy gives up: a *[GaveUpError], for which
//     errors.Is(err, [ErrGaveUp]) and errors.Is(err, lastRunErr) both hold;
//   - at once, with an error and without starting anything, if cfg.Start is
//     nil.
//
// A panic in Start, a member or OnEvent is not recovered. One out of Start or
// OnEvent cancels the current run's members on its way out of Run, without
// waiting for them.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Start == nil {
		return errNoStart
	}
	s := supervisor{
		start:       cfg.Start,
		strategy:    cfg.Backoff,
		stableAfter: cfg.StableAfter,
		onEvent:     cfg.OnEvent,
		stop:        cfg.Stop,
	}
	if s.strategy == nil {
		s.strategy = backoff.Default()
	}
	if s.stableAfter <= 0 {
		s.stableAfter = DefaultStableAfter
	}
	if s.onEvent == nil {
		s.onEvent = func(Event) {}
	}
	return s.run(ctx)
}

// supervisor is the state of one Run, owned by Run's goroutine.
type supervisor struct {
	start       func(context.Context, *Group) error
	strategy    backoff.Strategy
	stableAfter time.Duration
	onEvent     func(Event)
	stop        *Stopper // nil: none

	// The streak: the retries since the loss.
	attempt backoff.Attempt // the retry that started the current run; N = 0 when none
	delay   time.Duration   // the delay waited before the current run
	lossAt  time.Time       // when the streak's first failure was noticed
}

// outcome is how a run ended.
type outcome struct {
	err      error
	failedAt time.Time // when Run noticed the failure
	upAt     time.Time // when the run called Up; zero if it never did
}

func (s *supervisor) run(ctx context.Context) error {
	var timer *time.Timer // one for all the waits, created at the first
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var stopCh <-chan struct{}
	if s.stop != nil {
		stopCh = s.stop.ch
	}
	for {
		if ctx.Err() != nil {
			return stopped(ctx)
		}
		if s.stop.isStopped() {
			return errStopped
		}
		out := s.runOnce(ctx)
		if ctx.Err() != nil {
			return stopped(ctx) // Run's ctx ended the run: not a failure
		}
		if s.stop.isStopped() {
			return errStopped // so did a Stop
		}
		a := s.next(out)
		s.onEvent(Event{Kind: Down, Attempt: a, Err: out.err})
		delay, retry := s.strategy.Next(a)
		if !retry {
			s.onEvent(Event{Kind: GaveUp, Attempt: a, Err: out.err})
			return &GaveUpError{Attempt: a}
		}
		delay = max(delay, 0)
		s.attempt, s.delay = a, delay
		s.onEvent(Event{Kind: Retrying, Attempt: a, Delay: delay, Err: out.err})

		if timer == nil {
			timer = time.NewTimer(delay)
		} else {
			timer.Reset(delay) // no stale tick to drain: timers behave as in Go 1.23+
		}
		select {
		case <-ctx.Done():
			return stopped(ctx) // the deferred Stop frees the timer
		case <-stopCh:
			return errStopped
		case <-timer.C:
		}
	}
}

// next returns the Attempt that follows the run that ended with out: the
// streak's next retry, or the first of a new streak if the run was stable.
func (s *supervisor) next(out outcome) backoff.Attempt {
	stable := !out.upAt.IsZero() && out.failedAt.Sub(out.upAt) >= s.stableAfter
	if s.attempt.N == 0 || stable {
		s.attempt, s.delay = backoff.Attempt{}, 0
		s.lossAt = out.failedAt
	}
	return backoff.Attempt{
		N:       s.attempt.N + 1,
		Elapsed: time.Since(s.lossAt),
		Err:     out.err,
		Prev:    s.delay,
	}
}

// runOnce performs one run: Start, then waiting for it to come up and to
// fail. It returns after every member has returned.
func (s *supervisor) runOnce(ctx context.Context) outcome {
	g := newGroup(ctx)
	// Cancelled on return, so that members stop even if Start or OnEvent
	// panics out of Run; on the normal path they have all returned already.
	defer g.cancel(nil)
	s.stop.attach(g)
	defer s.stop.attach(nil)

	if err := s.start(g.ctx, g); err != nil {
		g.fail(err)
	} else if g.count() == 0 {
		g.fail(ErrRunEnded)
	}

	up := g.up
	reportUp := func() {
		s.onEvent(Event{Kind: Up, Attempt: s.attempt})
		up = nil
	}
	select {
	case <-up:
		reportUp()
	default:
	}
	g.runInline()
	for {
		select {
		case <-up:
			reportUp()
		case <-g.ctx.Done():
			var out outcome
			out.failedAt = time.Now()
			out.err = g.wait()
			select {
			case <-up: // came up, then failed before we reported it
				reportUp()
			default:
			}
			if up == nil {
				out.upAt = g.upAt
			}
			return out
		}
	}
}

// A Stopper stops a [Run] from another goroutine (see [Config.Stop]).
type Stopper struct {
	mu      sync.Mutex
	stopped bool
	run     *Group        // the current run; nil between runs
	ch      chan struct{} // closed by Stop: ends a wait between runs
}

// NewStopper returns a Stopper for one Run.
func NewStopper() *Stopper { return &Stopper{ch: make(chan struct{})} }

// Stop makes the Run it was given to return: the current run's ctx is
// cancelled (with [ErrStopped] as its cause), a wait between runs ends and
// no run starts any more. Run returns once the current run's members have
// all returned. Calling Stop again does nothing.
func (s *Stopper) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.stopped = true
	close(s.ch)
	if s.run != nil {
		s.run.cancel(ErrStopped)
	}
}

// attach records g as the current run (nil: none), cancelling it at once
// if Stop was called already. A nil Stopper does nothing.
func (s *Stopper) attach(g *Group) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.run = g
	if g != nil && s.stopped {
		g.cancel(ErrStopped)
	}
}

func (s *Stopper) isStopped() bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
)

// ErrGaveUp is wrapped by the error [Run] returns when the backoff strategy
// gave up. Check it with errors.Is; errors.As to a *[GaveUpError] gives the
// last attempt.
var ErrGaveUp = errors.New("supervisor: the backoff strategy gave up")

// ErrRunEnded is a run's error when the run ended without one while it should
// have kept running: a member returned nil while the run's ctx was still live,
// or Start returned nil without starting any member. The supervisor restarts
// the run like after any other failure. A member that means to stop for good
// should return an error its backoff strategy gives up on, or have Run's ctx
// cancelled.
var ErrRunEnded = errors.New("supervisor: a run ended with no error while it should have kept running (a member returned nil, or Start started none)")

// ErrStopped is wrapped by the error [Run] returns after [Stopper.Stop],
// and is the cause of the ctx of the run it cancelled.
var ErrStopped = errors.New("supervisor: stopped by Stopper.Stop")

// errStopped is what Run returns after Stopper.Stop.
var errStopped = fmt.Errorf("supervisor: stopped: %w", ErrStopped)

var errNoStart = errors.New("supervisor: Config.Start is nil: set it to the function that begins one run")

// GaveUpError is the error [Run] returns when the backoff strategy gave up.
// It wraps both [ErrGaveUp] and the last run's error, so errors.Is holds for
// either.
type GaveUpError struct {
	// Attempt is the retry the strategy refused. Attempt.Err is the last
	// run's error, Attempt.N-1 the number of retries made since the loss and
	// Attempt.Elapsed the time since the loss.
	Attempt backoff.Attempt
}

// Error says that the strategy gave up, after how many retries and how long
// since the first failure, and why the last run failed. A strategy that
// refuses the first retry allows none, and the time it took to say so is no
// news.
func (e *GaveUpError) Error() string {
	if e.Attempt.N <= 1 {
		return fmt.Sprintf("supervisor: the backoff strategy gave up: it allows no retry; the run failed: %v", e.Attempt.Err)
	}
	retries := "retries"
	if e.Attempt.N == 2 {
		retries = "retry"
	}
	return fmt.Sprintf("supervisor: the backoff strategy gave up after %d %s, %v after the first failure; the last run failed: %v",
		e.Attempt.N-1, retries, readable(e.Attempt.Elapsed), e.Attempt.Err)
}

// readable rounds d to three significant digits, so that an elapsed time
// reads 2.57ms rather than 2.569475ms.
func readable(d time.Duration) time.Duration {
	unit := time.Duration(1)
	for x := d; x >= 1000; x /= 10 {
		unit *= 10
	}
	return d.Round(unit)
}

// Unwrap returns [ErrGaveUp] and the last run's error.
func (e *GaveUpError) Unwrap() []error {
	if e.Attempt.Err == nil {
		return []error{ErrGaveUp}
	}
	return []error{ErrGaveUp, e.Attempt.Err}
}

// stopped is Run's error when its ctx ended. It wraps ctx.Err() and, when the
// ctx was cancelled with a cause (context.WithCancelCause), that cause too.
func stopped(ctx context.Context) error {
	err := ctx.Err()
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return fmt.Errorf("supervisor: stopped: %w: %w", err, cause)
	}
	return fmt.Errorf("supervisor: stopped: %w", err)
}

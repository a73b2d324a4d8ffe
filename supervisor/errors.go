package supervisor

import (
	"context"
	"errors"
	"fmt"

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

// Error says that the strategy gave up, when, and why the last run failed.
func (e *GaveUpError) Error() string {
	return fmt.Sprintf("supervisor: the backoff strategy gave up before retry %d, %v after the loss; the last run failed: %v",
		e.Attempt.N, e.Attempt.Elapsed, e.Attempt.Err)
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

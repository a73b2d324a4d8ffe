package supervisor_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/supervisor"
)

// An inline member runs on Run's goroutine after Start, its failure ends
// the run like any member's, and an Up from Start is reported before it
// runs.
func TestGoInline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		var runs int
		otherStopped := make(chan error, 3)
		err := supervisor.Run(t.Context(), supervisor.Config{
			Backoff: backoff.MaxAttempts(backoff.Constant(time.Second), 2),
			OnEvent: rec.on,
			Start: func(ctx context.Context, g *supervisor.Group) error {
				runs++
				g.Up()
				g.Go(func(ctx context.Context) error {
					<-ctx.Done()
					otherStopped <- context.Cause(ctx)
					return nil
				})
				g.GoInline(func(ctx context.Context) error {
					if got := rec.kinds(); len(got) == 0 || got[len(got)-1] != supervisor.Up {
						t.Errorf("events before the inline member ran: %v, want Up last", got)
					}
					return errBoom
				})
				return nil
			},
		})
		if !errors.Is(err, supervisor.ErrGaveUp) || !errors.Is(err, errBoom) {
			t.Fatalf("Run: %v, want ErrGaveUp wrapping the inline member's error", err)
		}
		if runs != 3 {
			t.Fatalf("%d runs, want 3 (the first and two retries)", runs)
		}
		for range runs {
			if cause := <-otherStopped; !errors.Is(cause, errBoom) {
				t.Fatalf("the other member stopped with %v", cause)
			}
		}
	})
}

// An inline member that returns nil while its run is live ends the run with
// ErrRunEnded.
func TestGoInlineNilEndsRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		err := supervisor.Run(t.Context(), supervisor.Config{
			Backoff: backoff.Never(),
			Start: func(ctx context.Context, g *supervisor.Group) error {
				g.GoInline(func(context.Context) error { return nil })
				return nil
			},
		})
		if !errors.Is(err, supervisor.ErrRunEnded) {
			t.Fatalf("Run: %v, want ErrRunEnded", err)
		}
	})
}

func TestGoInlineTwicePanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("a second GoInline in one run did not panic")
			}
		}()
		supervisor.Run(t.Context(), supervisor.Config{
			Backoff: backoff.Never(),
			Start: func(ctx context.Context, g *supervisor.Group) error {
				g.GoInline(func(context.Context) error { return nil })
				g.GoInline(func(context.Context) error { return nil })
				return nil
			},
		})
	})
}

package supervisor_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/supervisor"
)

// A Stopper ends a Run whose ctx cannot end, like the end of its ctx
// would: during a run (the members see their ctx end with ErrStopped as
// its cause, and Run waits for them), during the wait between runs (at
// once), and before the first run (nothing starts).
func TestStopper(t *testing.T) {
	t.Run("while up", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			stop := supervisor.NewStopper()
			rec := newRecorder()
			var live atomic.Int32
			var cause atomic.Value
			up := make(chan struct{})
			done := runAsync(context.Background(), supervisor.Config{
				Stop: stop,
				Start: func(ctx context.Context, g *supervisor.Group) error {
					live.Add(1)
					g.Go(func(ctx context.Context) error {
						defer live.Add(-1)
						<-ctx.Done()
						cause.Store(context.Cause(ctx))
						<-time.After(time.Second) // slow to stop
						return ctx.Err()
					})
					g.Up()
					close(up)
					return nil
				},
				OnEvent: rec.on,
			})
			<-up
			stop.Stop()
			stop.Stop() // again: nothing
			err := <-done
			if n := live.Load(); n != 0 {
				t.Errorf("Run returned with %d members still running", n)
			}
			if !errors.Is(err, supervisor.ErrStopped) {
				t.Errorf("Run = %v, want it to wrap ErrStopped", err)
			}
			if c, _ := cause.Load().(error); !errors.Is(c, supervisor.ErrStopped) {
				t.Errorf("the member's ctx ended with cause %v, want ErrStopped", c)
			}
			if got := time.Since(rec.start); got != time.Second {
				t.Errorf("Run returned after %v, want 1s (the member's time to stop)", got)
			}
			for _, e := range rec.got() {
				if e.Kind != supervisor.Up {
					t.Errorf("event %+v: a run ended by Stop is not a failure", e)
				}
			}
		})
	})
	t.Run("between runs", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			stop := supervisor.NewStopper()
			retrying := make(chan struct{})
			st := newStarts()
			done := runAsync(context.Background(), supervisor.Config{
				Stop: stop,
				Start: func(context.Context, *supervisor.Group) error {
					st.mark()
					return errDial
				},
				Backoff: backoff.Constant(time.Hour),
				OnEvent: func(e supervisor.Event) {
					if e.Kind == supervisor.Retrying {
						close(retrying)
					}
				},
			})
			<-retrying
			<-time.After(10 * time.Minute)
			before := time.Now()
			stop.Stop()
			err := <-done
			if waited := time.Since(before); waited != 0 {
				t.Errorf("Run returned %v after Stop, want at once", waited)
			}
			if !errors.Is(err, supervisor.ErrStopped) || errors.Is(err, supervisor.ErrGaveUp) {
				t.Errorf("Run = %v, want it to wrap ErrStopped only", err)
			}
			if got := st.times(); len(got) != 1 {
				t.Errorf("Start called at %v, want once", got)
			}
		})
	})
	t.Run("before the first run", func(t *testing.T) {
		stop := supervisor.NewStopper()
		stop.Stop()
		err := supervisor.Run(context.Background(), supervisor.Config{
			Stop: stop,
			Start: func(context.Context, *supervisor.Group) error {
				t.Error("Start called after Stop")
				return nil
			},
		})
		if !errors.Is(err, supervisor.ErrStopped) {
			t.Errorf("Run = %v, want ErrStopped", err)
		}
	})
}

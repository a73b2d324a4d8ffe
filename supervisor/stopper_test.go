package supervisor_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/supervisor"
)

// stopWay is one way to stop a Run from outside: the end of its ctx, or a
// Stopper with a ctx that cannot end.
type stopWay struct {
	name string
	// start returns Run's ctx, the Stopper for Config.Stop (or nil), how
	// to stop, and the errors Run's error and the members' ctx's cause
	// must wrap.
	start func() (ctx context.Context, s *supervisor.Stopper, stop func(), want []error)
}

var errClosing = errors.New("client closed")

var stopWays = []stopWay{
	{"ctx", func() (context.Context, *supervisor.Stopper, func(), []error) {
		ctx, cancel := context.WithCancelCause(context.Background())
		return ctx, nil, func() { cancel(errClosing) }, []error{context.Canceled, errClosing}
	}},
	{"Stopper", func() (context.Context, *supervisor.Stopper, func(), []error) {
		s := supervisor.NewStopper()
		return context.Background(), s, func() { s.Stop(); s.Stop() }, []error{supervisor.ErrStopped}
	}},
}

// wrapsAll reports whether err wraps every one of want.
func wrapsAll(err error, want []error) bool {
	for _, w := range want {
		if !errors.Is(err, w) {
			return false
		}
	}
	return true
}

// Stopped during the wait between runs, Run returns at once, and no run
// starts again.
func TestStopDuringDelay(t *testing.T) {
	for _, way := range stopWays {
		t.Run(way.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, stopper, stop, want := way.start()
				retrying := make(chan struct{})
				st := newStarts()
				done := runAsync(ctx, supervisor.Config{
					Stop: stopper,
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
				<-time.After(10 * time.Minute) // well into the delay
				stop()
				before := time.Now()
				err := <-done
				if waited := time.Since(before); waited != 0 {
					t.Errorf("Run returned %v after the stop, want at once", waited)
				}
				if !wrapsAll(err, want) || errors.Is(err, supervisor.ErrGaveUp) {
					t.Errorf("Run = %v, want it to wrap %v only", err, want)
				}
				if !strings.HasPrefix(err.Error(), "supervisor: ") {
					t.Errorf("Run = %q, want the supervisor: prefix", err)
				}
				if got := st.times(); len(got) != 1 {
					t.Errorf("Start called at %v, want once", got)
				}
			})
		})
	}
}

// Stopped while a run is up, Run cancels the members' ctx (its cause says
// why) and returns once they all have; the run's end is not a failure.
func TestStopWhileUp(t *testing.T) {
	for _, way := range stopWays {
		t.Run(way.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, stopper, stop, want := way.start()
				rec := newRecorder()
				var live atomic.Int32
				causes := make(chan error, 3)
				up := make(chan struct{})
				done := runAsync(ctx, supervisor.Config{
					Stop: stopper,
					Start: func(ctx context.Context, g *supervisor.Group) error {
						for range 3 {
							live.Add(1)
							g.Go(func(ctx context.Context) error {
								defer live.Add(-1)
								<-ctx.Done()
								causes <- context.Cause(ctx)
								<-time.After(time.Second) // slow to stop
								return ctx.Err()
							})
						}
						g.Up()
						close(up)
						return nil
					},
					OnEvent: rec.on,
				})
				<-up
				stop()
				err := <-done
				if n := live.Load(); n != 0 {
					t.Errorf("Run returned with %d members still running", n)
				}
				if !wrapsAll(err, want) {
					t.Errorf("Run = %v, want it to wrap %v", err, want)
				}
				if c := <-causes; !errors.Is(c, want[len(want)-1]) {
					t.Errorf("a member's ctx ended with cause %v, want %v", c, want[len(want)-1])
				}
				if got := time.Since(rec.start); got != time.Second {
					t.Errorf("Run returned after %v, want 1s (the members' time to stop)", got)
				}
				for _, e := range rec.got() {
					if e.Kind != supervisor.Up {
						t.Errorf("event %+v: a run ended from outside is not a failure", e)
					}
				}
			})
		})
	}
}

// A Stopper stopped before Run starts nothing (TestCtxDoneBeforeRun is
// the same with a ctx).
func TestStopperBeforeRun(t *testing.T) {
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
}

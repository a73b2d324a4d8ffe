package supervisor_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/supervisor"
)

var (
	errDial = errors.New("dial: connection refused")
	errKick = errors.New("kicked by the broker")
	errBoom = errors.New("boom")
)

// stamped is an event and when, since the test began, Run reported it.
type stamped struct {
	At time.Duration
	supervisor.Event
}

// recorder collects events with their (synctest) time.
type recorder struct {
	start  time.Time
	mu     sync.Mutex
	events []stamped
}

func newRecorder() *recorder { return &recorder{start: time.Now()} }

func (r *recorder) on(e supervisor.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, stamped{time.Since(r.start), e})
}

func (r *recorder) got() []stamped {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]stamped(nil), r.events...)
}

func (r *recorder) kinds() []supervisor.EventKind {
	var ks []supervisor.EventKind
	for _, e := range r.got() {
		ks = append(ks, e.Kind)
	}
	return ks
}

// attempts records the Attempts a strategy is asked for, answering with
// delays[i] for the i-th, and giving up once the delays run out.
type attempts struct {
	delays []time.Duration
	mu     sync.Mutex
	seen   []backoff.Attempt
}

func (s *attempts) Next(a backoff.Attempt) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, a)
	if len(s.seen) > len(s.delays) {
		return 0, false
	}
	return s.delays[len(s.seen)-1], true
}

// starts records when Start was called, since the test began.
type starts struct {
	begin time.Time
	mu    sync.Mutex
	at    []time.Duration
}

func newStarts() *starts { return &starts{begin: time.Now()} }

func (s *starts) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at = append(s.at, time.Since(s.begin))
	return len(s.at)
}

func (s *starts) times() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.at...)
}

// runAsync runs Run in a goroutine and returns where its error will arrive.
func runAsync(ctx context.Context, cfg supervisor.Config) <-chan error {
	done := make(chan error, 1)
	go func() { done <- supervisor.Run(ctx, cfg) }()
	return done
}

func TestExactDelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newStarts()
		strategy := &attempts{delays: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}}
		err := supervisor.Run(t.Context(), supervisor.Config{
			Start: func(ctx context.Context, g *supervisor.Group) error {
				st.mark()
				return errDial
			},
			Backoff: strategy,
		})
		if want := []time.Duration{0, time.Second, 3 * time.Second, 6 * time.Second}; !reflect.DeepEqual(st.times(), want) {
			t.Errorf("Start called at %v, want %v (the first run at once)", st.times(), want)
		}
		want := []backoff.Attempt{
			{N: 1, Elapsed: 0, Err: errDial, Prev: 0},
			{N: 2, Elapsed: time.Second, Err: errDial, Prev: time.Second},
			{N: 3, Elapsed: 3 * time.Second, Err: errDial, Prev: 2 * time.Second},
			{N: 4, Elapsed: 6 * time.Second, Err: errDial, Prev: 3 * time.Second},
		}
		if !reflect.DeepEqual(strategy.seen, want) {
			t.Errorf("strategy saw\n%+v\nwant\n%+v", strategy.seen, want)
		}
		var gu *supervisor.GaveUpError
		if !errors.As(err, &gu) || !reflect.DeepEqual(gu.Attempt, want[3]) {
			t.Errorf("Run = %v, want a *GaveUpError for %+v", err, want[3])
		}
	})
}

func TestGiveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		err := supervisor.Run(t.Context(), supervisor.Config{
			Start:   func(context.Context, *supervisor.Group) error { return errDial },
			Backoff: backoff.Never(),
			OnEvent: rec.on,
		})
		if !errors.Is(err, supervisor.ErrGaveUp) || !errors.Is(err, errDial) {
			t.Errorf("Run = %v; want it to wrap ErrGaveUp and %v", err, errDial)
		}
		if errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v; it wraps context.Canceled", err)
		}
		const msg = "supervisor: the backoff strategy gave up: it allows no retry; the run failed: dial: connection refused"
		if err == nil || err.Error() != msg {
			t.Errorf("Run = %q, want %q", err, msg)
		}
		a := backoff.Attempt{N: 1, Err: errDial}
		want := []stamped{
			{0, supervisor.Event{Kind: supervisor.Down, Attempt: a, Err: errDial}},
			{0, supervisor.Event{Kind: supervisor.GaveUp, Attempt: a, Err: errDial}},
		}
		if got := rec.got(); !reflect.DeepEqual(got, want) {
			t.Errorf("events\n%+v\nwant\n%+v", got, want)
		}
	})
}

// TestStableAfter runs a member that comes up and is kicked after upFor,
// and checks whether the streak goes on (N and Elapsed grow) or restarts.
func TestStableAfter(t *testing.T) {
	const delay = time.Second
	tests := []struct {
		name        string
		stableAfter time.Duration
		upFor       time.Duration
		reset       bool
	}{
		{"kicked right after Up", 10 * time.Second, 0, false},
		{"just short of StableAfter", 10 * time.Second, 10*time.Second - 1, false},
		{"exactly StableAfter", 10 * time.Second, 10 * time.Second, true},
		{"well past StableAfter", 10 * time.Second, time.Hour, true},
		{"default is 30s: short", 0, 30*time.Second - 1, false},
		{"default is 30s: reached", 0, 30 * time.Second, true},
		{"negative is default", -time.Second, 29 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				strategy := &attempts{delays: []time.Duration{delay, delay}}
				supervisor.Run(t.Context(), supervisor.Config{
					Start: func(ctx context.Context, g *supervisor.Group) error {
						g.Up()
						g.Go(func(ctx context.Context) error {
							<-time.After(tt.upFor) // the broker kicks us after upFor
							return errKick
						})
						return nil
					},
					Backoff:     strategy,
					StableAfter: tt.stableAfter,
				})
				var want []backoff.Attempt
				for i := range 3 {
					a := backoff.Attempt{N: i + 1, Elapsed: time.Duration(i) * (tt.upFor + delay), Err: errKick, Prev: delay}
					if i == 0 || tt.reset {
						a.N, a.Elapsed, a.Prev = 1, 0, 0
					}
					want = append(want, a)
				}
				if !reflect.DeepEqual(strategy.seen, want) {
					t.Errorf("strategy saw\n%+v\nwant\n%+v", strategy.seen, want)
				}
			})
		})
	}
}

// TestElapsedSinceLoss checks that Elapsed counts from the streak's first
// failure through runs that came up but were not stable, and through runs
// that took a while to fail.
func TestElapsedSinceLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int32
		strategy := &attempts{delays: []time.Duration{time.Second, 2 * time.Second}}
		supervisor.Run(t.Context(), supervisor.Config{
			Start: func(ctx context.Context, g *supervisor.Group) error {
				switch n.Add(1) {
				case 1:
					return errDial // at 0
				case 2: // at 1s: a 5 s handshake, then refused
					<-time.After(5 * time.Second)
					return errDial
				}
				g.Up() // at 8s: up for 3 s, then kicked
				g.Go(func(ctx context.Context) error {
					<-time.After(3 * time.Second)
					return errKick
				})
				return nil
			},
			Backoff: strategy,
		})
		want := []backoff.Attempt{
			{N: 1, Elapsed: 0, Err: errDial},
			{N: 2, Elapsed: 6 * time.Second, Err: errDial, Prev: time.Second},
			{N: 3, Elapsed: 11 * time.Second, Err: errKick, Prev: 2 * time.Second},
		}
		if !reflect.DeepEqual(strategy.seen, want) {
			t.Errorf("strategy saw\n%+v\nwant\n%+v", strategy.seen, want)
		}
	})
}

func TestEventOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		var n atomic.Int32
		err := supervisor.Run(t.Context(), supervisor.Config{
			Start: func(ctx context.Context, g *supervisor.Group) error {
				switch n.Add(1) {
				case 2:
					return errDial
				case 3:
					g.Go(func(ctx context.Context) error {
						<-time.After(2 * time.Second)
						g.Up()
						<-time.After(time.Second)
						return errBoom
					})
					return nil
				}
				// Up first: a member that fails before Up is called
				// would make the Up a no-op (the run is already failing).
				g.Up()
				g.Go(func(ctx context.Context) error { return errKick })
				return nil
			},
			Backoff: backoff.MaxAttempts(backoff.Constant(time.Second), 2),
			OnEvent: rec.on,
		})
		a1 := backoff.Attempt{N: 1, Err: errKick}
		a2 := backoff.Attempt{N: 2, Elapsed: time.Second, Err: errDial, Prev: time.Second}
		a3 := backoff.Attempt{N: 3, Elapsed: 5 * time.Second, Err: errBoom, Prev: time.Second}
		want := []stamped{
			{0, supervisor.Event{Kind: supervisor.Up}},
			{0, supervisor.Event{Kind: supervisor.Down, Attempt: a1, Err: errKick}},
			{0, supervisor.Event{Kind: supervisor.Retrying, Attempt: a1, Delay: time.Second, Err: errKick}},
			{time.Second, supervisor.Event{Kind: supervisor.Down, Attempt: a2, Err: errDial}},
			{time.Second, supervisor.Event{Kind: supervisor.Retrying, Attempt: a2, Delay: time.Second, Err: errDial}},
			{4 * time.Second, supervisor.Event{Kind: supervisor.Up, Attempt: a2}},
			{5 * time.Second, supervisor.Event{Kind: supervisor.Down, Attempt: a3, Err: errBoom}},
			{5 * time.Second, supervisor.Event{Kind: supervisor.GaveUp, Attempt: a3, Err: errBoom}},
		}
		if got := rec.got(); !reflect.DeepEqual(got, want) {
			t.Errorf("events\n%+v\nwant\n%+v", got, want)
		}
		if !errors.Is(err, errBoom) || !errors.Is(err, supervisor.ErrGaveUp) {
			t.Errorf("Run = %v, want it to wrap %v and ErrGaveUp", err, errBoom)
		}
	})
}

// TestUpBeforeDown: a run that comes up and fails at once reports Up before
// Down, whichever Run notices first.
func TestUpBeforeDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for range 50 {
			rec := newRecorder()
			supervisor.Run(t.Context(), supervisor.Config{
				Start: func(ctx context.Context, g *supervisor.Group) error {
					g.Up()
					g.Up() // idempotent
					g.Go(func(ctx context.Context) error { return errKick })
					g.Up()
					<-ctx.Done() // so that Run finds both the Up and the failure
					return nil
				},
				Backoff: backoff.Never(),
				OnEvent: rec.on,
			})
			want := []supervisor.EventKind{supervisor.Up, supervisor.Down, supervisor.GaveUp}
			if got := rec.kinds(); !reflect.DeepEqual(got, want) {
				t.Fatalf("events %v, want %v", got, want)
			}
		}
	})
}

// TestUpAfterFailureIgnored: Up from a member of a run that is already
// failing reports nothing.
func TestUpAfterFailureIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		supervisor.Run(t.Context(), supervisor.Config{
			Start: func(ctx context.Context, g *supervisor.Group) error {
				g.Go(func(ctx context.Context) error { return errBoom })
				g.Go(func(ctx context.Context) error {
					<-ctx.Done()
					g.Up()
					return nil
				})
				return nil
			},
			Backoff: backoff.Never(),
			OnEvent: rec.on,
		})
		want := []supervisor.EventKind{supervisor.Down, supervisor.GaveUp}
		if got := rec.kinds(); !reflect.DeepEqual(got, want) {
			t.Errorf("events %v, want %v", got, want)
		}
	})
}

func TestDeadlineDuringDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second+time.Millisecond)
		defer cancel()
		st := newStarts()
		err := supervisor.Run(ctx, supervisor.Config{
			Start: func(context.Context, *supervisor.Group) error {
				st.mark()
				return errDial
			},
			Backoff: backoff.Constant(time.Second),
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run = %v, want it to wrap context.DeadlineExceeded", err)
		}
		if got := time.Since(st.begin); got != 5*time.Second+time.Millisecond {
			t.Errorf("Run returned after %v, want at the deadline", got)
		}
		if got := len(st.times()); got != 6 {
			t.Errorf("Start called %d times, want 6 (at 0, 1s, ... 5s)", got)
		}
	})
}

func TestCtxDoneBeforeRun(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := supervisor.Run(ctx, supervisor.Config{
		Start: func(context.Context, *supervisor.Group) error {
			t.Error("Start called with a cancelled ctx")
			return nil
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}

// TestWaitsForMembers: a member that ignores its ctx for a while delays both
// the next run and Run's return, and Elapsed includes that time.
func TestWaitsForMembers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var live atomic.Int32
		st := newStarts()
		rec := newRecorder()
		err := supervisor.Run(t.Context(), supervisor.Config{
			Start: func(ctx context.Context, g *supervisor.Group) error {
				if live.Load() != 0 {
					t.Error("a run started while a member of the last one was running")
				}
				st.mark()
				live.Add(2)
				g.Go(func(ctx context.Context) error {
					defer live.Add(-1)
					return errBoom
				})
				g.Go(func(ctx context.Context) error {
					defer live.Add(-1)
					<-ctx.Done()
					<-time.After(5 * time.Second) // ignores the cancel for 5 s
					return nil
				})
				return nil
			},
			Backoff: backoff.MaxAttempts(backoff.Constant(time.Second), 1),
			OnEvent: rec.on,
		})
		if n := live.Load(); n != 0 {
			t.Errorf("Run returned with %d members still running", n)
		}
		if want := []time.Duration{0, 6 * time.Second}; !reflect.DeepEqual(st.times(), want) {
			t.Errorf("Start called at %v, want %v", st.times(), want)
		}
		if got := time.Since(st.begin); got != 11*time.Second {
			t.Errorf("Run returned after %v, want 11s", got)
		}
		var gu *supervisor.GaveUpError
		if !errors.As(err, &gu) || gu.Attempt.Elapsed != 11*time.Second || gu.Attempt.N != 2 {
			t.Errorf("Run = %v, want a give-up at retry 2, 11s after the loss", err)
		}
		if e := rec.got()[0]; e.Kind != supervisor.Down || e.At != 5*time.Second || e.Attempt.Elapsed != 5*time.Second {
			t.Errorf("first event %+v, want Down at 5s with Elapsed 5s", e)
		}
	})
}

// TestRunError covers what a run's error is in each way a run can end.
func TestRunError(t *testing.T) {
	errHandshake := errors.New("handshake failed")
	tests := []struct {
		name  string
		start func(ctx context.Context, g *supervisor.Group) error
		want  error
	}{
		{"Start fails", func(context.Context, *supervisor.Group) error { return errDial }, errDial},
		{"member fails", func(ctx context.Context, g *supervisor.Group) error {
			g.Go(func(ctx context.Context) error {
				<-time.After(time.Second)
				return errBoom
			})
			g.Go(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
			return nil
		}, errBoom},
		{"member returns nil", func(ctx context.Context, g *supervisor.Group) error {
			g.Go(func(ctx context.Context) error { return nil })
			g.Go(func(ctx context.Context) error { <-ctx.Done(); return nil })
			return nil
		}, supervisor.ErrRunEnded},
		{"Start starts no member", func(ctx context.Context, g *supervisor.Group) error {
			g.Up()
			return nil
		}, supervisor.ErrRunEnded},
		{"Start fails after a member failed", func(ctx context.Context, g *supervisor.Group) error {
			g.Go(func(ctx context.Context) error { return errBoom })
			<-ctx.Done() // waiting for a CONNACK, say
			return ctx.Err()
		}, errBoom},
		{"Start fails, members cancelled", func(ctx context.Context, g *supervisor.Group) error {
			g.Go(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
			<-time.After(time.Second)
			return errHandshake
		}, errHandshake},
		{"member starts a member that fails", func(ctx context.Context, g *supervisor.Group) error {
			g.Go(func(ctx context.Context) error {
				g.Go(func(ctx context.Context) error { return errBoom })
				<-ctx.Done()
				return nil
			})
			return nil
		}, errBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := newRecorder()
				err := supervisor.Run(t.Context(), supervisor.Config{Start: tt.start, Backoff: backoff.Never(), OnEvent: rec.on})
				var gu *supervisor.GaveUpError
				if !errors.As(err, &gu) || gu.Attempt.Err != tt.want {
					t.Errorf("Run = %v, want a *GaveUpError for %v", err, tt.want)
				}
				for _, e := range rec.got() {
					if e.Kind == supervisor.Down && e.Err != tt.want {
						t.Errorf("Down with %v, want %v", e.Err, tt.want)
					}
				}
			})
		})
	}
}

func TestNilStart(t *testing.T) {
	err := supervisor.Run(t.Context(), supervisor.Config{})
	if err == nil || !strings.HasPrefix(err.Error(), "supervisor: ") {
		t.Errorf("Run with a nil Start = %v, want a supervisor: error", err)
	}
}

func TestNegativeDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		st := newStarts()
		supervisor.Run(t.Context(), supervisor.Config{
			Start: func(context.Context, *supervisor.Group) error {
				st.mark()
				return errDial
			},
			Backoff: backoff.Func(func(a backoff.Attempt) (time.Duration, bool) {
				return -5 * time.Second, a.N < 3
			}),
			OnEvent: rec.on,
		})
		if want := []time.Duration{0, 0, 0}; !reflect.DeepEqual(st.times(), want) {
			t.Errorf("Start called at %v, want %v", st.times(), want)
		}
		for _, e := range rec.got() {
			if e.Kind == supervisor.Retrying && e.Delay != 0 {
				t.Errorf("Retrying with Delay %v, want 0", e.Delay)
			}
		}
	})
}

func TestDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var delays []time.Duration
		supervisor.Run(ctx, supervisor.Config{
			Start: func(context.Context, *supervisor.Group) error { return errDial },
			OnEvent: func(e supervisor.Event) {
				if e.Kind == supervisor.Retrying {
					delays = append(delays, e.Delay)
					if len(delays) == 10 {
						cancel()
					}
				}
			},
		})
		for i, d := range delays {
			if hi := min(backoff.DefaultInitial<<i, backoff.DefaultMax); d < 0 || d >= hi {
				t.Errorf("retry %d: delay %v, want it in [0, %v) as backoff.Default chooses", i+1, d, hi)
			}
		}
	})
}

func TestGroupMisuse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var kept *supervisor.Group
		supervisor.Run(t.Context(), supervisor.Config{
			Start: func(ctx context.Context, g *supervisor.Group) error {
				kept = g
				defer expectPanic(t, "supervisor: Group.Go called with a nil function")
				g.Go(nil)
				return nil
			},
			Backoff: backoff.Never(),
		})
		defer expectPanic(t, "supervisor: Group.Go called after its run ended")
		kept.Go(func(context.Context) error { return nil })
	})
}

func expectPanic(t *testing.T, prefix string) {
	t.Helper()
	msg, _ := recover().(string)
	if !strings.HasPrefix(msg, prefix) {
		t.Errorf("panic %q, want one starting %q", msg, prefix)
	}
}

// TestManyMembers: one member of many fails; all are cancelled and awaited.
func TestManyMembers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var live atomic.Int32
		var runs atomic.Int32
		err := supervisor.Run(t.Context(), supervisor.Config{
			Start: func(ctx context.Context, g *supervisor.Group) error {
				run := runs.Add(1)
				for i := range 50 {
					live.Add(1)
					g.Go(func(ctx context.Context) error {
						defer live.Add(-1)
						if i == 25 {
							<-time.After(time.Duration(run) * time.Second)
							return errBoom
						}
						<-ctx.Done()
						return ctx.Err()
					})
				}
				return nil
			},
			Backoff: backoff.MaxAttempts(backoff.Constant(0), 3),
		})
		if n := live.Load(); n != 0 {
			t.Errorf("Run returned with %d members still running", n)
		}
		if !errors.Is(err, errBoom) || runs.Load() != 4 {
			t.Errorf("Run = %v after %d runs, want errBoom after 4", err, runs.Load())
		}
	})
}

func TestEventKindString(t *testing.T) {
	for k, want := range map[supervisor.EventKind]string{
		supervisor.Up: "Up", supervisor.Down: "Down", supervisor.Retrying: "Retrying",
		supervisor.GaveUp: "GaveUp", 0: "EventKind(0)", 9: "EventKind(9)",
	} {
		if got := k.String(); got != want {
			t.Errorf("EventKind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

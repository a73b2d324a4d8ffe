package battery_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/internal/battery"
)

// TestMeanDefault checks Mean against renewal theory. Once the default's
// delays reach their cap c = 2 min (after about a minute), they are drawn
// uniformly from [0, c): mean c/2, variance c²/12. The broker then returns
// at a moment unrelated to the schedule, and the wait until the next
// attempt (the residual life) has mean E[X²]/(2E[X]) = c/3 = 40 s. The
// attempts in an hour are the 7 attempts of the ramp (mean delays 0.5 s to
// 32 s, 63.5 s in all) plus (3600 s - 63.5 s)/60 s, less 1/3 for the
// renewal's start (E[X²]/(2E[X]²) - 1 = -1/3): 65.6.
func TestMeanDefault(t *testing.T) {
	newDefault := battery.Cases()[0].New
	e, err := battery.Mean(newDefault, time.Hour, 2000, 42)
	if err != nil {
		t.Fatal(err)
	}
	if e.Runs != 2000 || e.Reconnected != 1 {
		t.Fatalf("Mean = %+v, want 2000 runs that all reconnected", e)
	}
	// Five standard errors: a false alarm once in millions of seeds, and
	// the seed is fixed.
	wantAttempts := 7 + (3600-63.5)/60 - 1.0/3
	if math.Abs(e.Attempts-wantAttempts) > 5*e.AttemptsErr || e.AttemptsErr > 0.2 {
		t.Errorf("mean attempts %.2f ± %.2f, want %.2f", e.Attempts, e.AttemptsErr, wantAttempts)
	}
	if d := e.ReconnectAfter - 40*time.Second; d.Abs() > 5*e.ReconnectAfterErr || e.ReconnectAfterErr > time.Second {
		t.Errorf("mean reconnect after %v ± %v, want 40s", e.ReconnectAfter, e.ReconnectAfterErr)
	}
	if want := e.Attempts * battery.RefusedAttemptBytes; math.Abs(e.Bytes-want) > 1e-6*want {
		t.Errorf("mean bytes %v, want %v", e.Bytes, want)
	}
}

func TestMeanDeterministic(t *testing.T) {
	calls := 0
	e, err := battery.Mean(func(func() float64) backoff.Strategy {
		calls++
		return backoff.Constant(7 * time.Second)
	}, time.Hour, 1000, 1)
	want := battery.Expected{Runs: 1, Attempts: 514, Bytes: 514 * 80, Reconnected: 1, ReconnectAfter: 5 * time.Second}
	if err != nil || e != want || calls != 1 {
		t.Errorf("Mean = %+v, %v after %d runs; want %+v after 1", e, err, calls, want)
	}
}

// TestMeanGivingUp uses a strategy that gives up at its first retry in a
// quarter of the outages, and otherwise waits an hour.
func TestMeanGivingUp(t *testing.T) {
	e, err := battery.Mean(func(rand func() float64) backoff.Strategy {
		return backoff.Func(func(a backoff.Attempt) (time.Duration, bool) {
			if a.N == 1 && rand() < 0.25 {
				return 0, false
			}
			return time.Hour, true
		})
	}, 30*time.Minute, 4000, 3)
	if err != nil {
		t.Fatal(err)
	}
	// The standard deviation of the fraction is sqrt(0.25·0.75/4000) = 0.007.
	if e.Runs != 4000 || math.Abs(e.Reconnected-0.75) > 0.035 || e.Attempts != 0 {
		t.Errorf("Mean = %+v, want 4000 runs, 75%% reconnected, no attempts", e)
	}
	if e.ReconnectAfter != 30*time.Minute || e.ReconnectAfterErr != 0 || e.GaveUpAfter != 0 {
		t.Errorf("Mean = %+v, want back 30 min after, exactly", e)
	}
}

func TestMeanErrors(t *testing.T) {
	newConstant := func(func() float64) backoff.Strategy { return backoff.Constant(time.Second) }
	for name, f := range map[string]func() error{
		"nil":  func() error { _, err := battery.Mean(nil, time.Hour, 10, 1); return err },
		"runs": func() error { _, err := battery.Mean(newConstant, time.Hour, 0, 1); return err },
		"negative outage": func() error {
			_, err := battery.Mean(newConstant, -time.Hour, 10, 1)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			if err := f(); err == nil || !strings.HasPrefix(err.Error(), "battery: ") {
				t.Errorf("err = %v, want a battery: error", err)
			}
		})
	}
}

// TestCases checks that the cases are the strategies package backoff
// documents for them: the same schedule, given the same random numbers.
func TestCases(t *testing.T) {
	want := map[string]func(rand func() float64) backoff.Strategy{
		"backoff.Default()": func(rand func() float64) backoff.Strategy {
			d := backoff.Default().(backoff.Exponential)
			d.Rand = rand
			return d
		},
		"Exponential{Initial: 1s, Max: 30m}": func(rand func() float64) backoff.Strategy {
			return backoff.Exponential{Initial: time.Second, Max: 30 * time.Minute, Rand: rand}
		},
		"Constant(2s)": func(func() float64) backoff.Strategy { return backoff.Constant(2 * time.Second) },
		"MaxElapsed(Exponential{Initial: 500ms, Max: 4s}, 15s)": func(rand func() float64) backoff.Strategy {
			return backoff.MaxElapsed(backoff.Exponential{Initial: 500 * time.Millisecond, Max: 4 * time.Second, Rand: rand}, 15*time.Second)
		},
		"Never()": func(func() float64) backoff.Strategy { return backoff.Never() },
	}
	cases := battery.Cases()
	if len(cases) != len(want) {
		t.Fatalf("%d cases, want %d", len(cases), len(want))
	}
	for _, c := range cases {
		newWant, ok := want[c.Strategy]
		if !ok || c.Device == "" {
			t.Errorf("unexpected case %+v", c)
			continue
		}
		got, w := c.New(battery.Rand(5)), newWant(battery.Rand(5))
		for n := 1; n <= 40; n++ {
			a := backoff.Attempt{N: n, Elapsed: time.Duration(n) * time.Second}
			d1, r1 := got.Next(a)
			d2, r2 := w.Next(a)
			if d1 != d2 || r1 != r2 {
				t.Errorf("%s: retry %d: %v, %v; want %v, %v", c.Strategy, n, d1, r1, d2, r2)
				break
			}
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestTableErrors(t *testing.T) {
	if err := battery.Table(failingWriter{}, time.Hour, 1, battery.Cases()[2]); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("err = %v, want the writer's", err)
	}
	zero := battery.Case{Device: "busy", Strategy: "Constant(0)", New: func(func() float64) backoff.Strategy { return backoff.Constant(0) }}
	var b strings.Builder
	if err := battery.Table(&b, time.Hour, 1, zero); !errors.Is(err, battery.ErrTooManyAttempts) || b.Len() != 0 {
		t.Errorf("err = %v after writing %q, want ErrTooManyAttempts and nothing written", err, b.String())
	}
}

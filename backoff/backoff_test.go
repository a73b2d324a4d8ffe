package backoff_test

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
)

const maxDuration = time.Duration(math.MaxInt64)

// fixed returns a random source that always answers r.
func fixed(r float64) func() float64 { return func() float64 { return r } }

func TestNext(t *testing.T) {
	exp := func(initial, ceiling time.Duration, mult float64, j backoff.Jitter, r float64) backoff.Exponential {
		return backoff.Exponential{Initial: initial, Max: ceiling, Multiplier: mult, Jitter: j, Rand: fixed(r)}
	}
	nojit := func(initial, ceiling time.Duration, mult float64) backoff.Exponential {
		return exp(initial, ceiling, mult, backoff.NoJitter, 0)
	}
	defaults := backoff.Exponential{Jitter: backoff.NoJitter}
	decor := func(mult float64, r float64) backoff.Exponential {
		return exp(time.Second, time.Minute, mult, backoff.DecorrelatedJitter, r)
	}
	tests := []struct {
		name  string
		s     backoff.Strategy
		a     backoff.Attempt
		delay time.Duration
		retry bool
	}{
		{"constant first", backoff.Constant(3 * time.Second), backoff.Attempt{N: 1}, 3 * time.Second, true},
		{"constant late", backoff.Constant(3 * time.Second), backoff.Attempt{N: 1e6, Elapsed: 1000 * time.Hour}, 3 * time.Second, true},
		{"constant zero", backoff.Constant(0), backoff.Attempt{N: 1}, 0, true},
		{"constant negative is 0", backoff.Constant(-time.Second), backoff.Attempt{N: 2}, 0, true},

		{"never first", backoff.Never(), backoff.Attempt{N: 1}, 0, false},
		{"never zero attempt", backoff.Never(), backoff.Attempt{}, 0, false},

		{"default params N=1", defaults, backoff.Attempt{N: 1}, time.Second, true},
		{"default params N=2", defaults, backoff.Attempt{N: 2}, 2 * time.Second, true},
		{"default params N=7", defaults, backoff.Attempt{N: 7}, 64 * time.Second, true},
		{"default params capped at 2min", defaults, backoff.Attempt{N: 8}, 2 * time.Minute, true},
		{"N=0 counts as 1", defaults, backoff.Attempt{N: 0}, time.Second, true},
		{"negative N counts as 1", defaults, backoff.Attempt{N: -5}, time.Second, true},
		{"N=MaxInt does not wrap", defaults, backoff.Attempt{N: math.MaxInt}, 2 * time.Minute, true},
		{"negative Initial is default", nojit(-time.Second, 0, 0), backoff.Attempt{N: 3}, 4 * time.Second, true},
		{"growth", nojit(100*time.Millisecond, time.Second, 2), backoff.Attempt{N: 4}, 800 * time.Millisecond, true},
		{"cap", nojit(100*time.Millisecond, time.Second, 2), backoff.Attempt{N: 5}, time.Second, true},
		{"Max<Initial first", nojit(5*time.Second, time.Second, 2), backoff.Attempt{N: 1}, 5 * time.Second, true},
		{"Max<Initial late", nojit(5*time.Second, time.Second, 2), backoff.Attempt{N: 10}, 5 * time.Second, true},
		{"default Max<Initial", nojit(5*time.Minute, 0, 2), backoff.Attempt{N: 3}, 5 * time.Minute, true},
		{"huge Max, N=100", nojit(time.Second, maxDuration, 2), backoff.Attempt{N: 100}, maxDuration, true},
		{"huge Max, N=MaxInt", nojit(time.Second, maxDuration, 2), backoff.Attempt{N: math.MaxInt}, maxDuration, true},
		{"huge Max, exact 2^33s", nojit(time.Second, maxDuration, 2), backoff.Attempt{N: 34}, (1 << 33) * time.Second, true},
		{"multiplier 0 is 2", nojit(time.Second, time.Hour, 0), backoff.Attempt{N: 3}, 4 * time.Second, true},
		{"multiplier NaN is 2", nojit(time.Second, time.Hour, math.NaN()), backoff.Attempt{N: 3}, 4 * time.Second, true},
		{"multiplier negative is 2", nojit(time.Second, time.Hour, -3), backoff.Attempt{N: 3}, 4 * time.Second, true},
		{"multiplier 0.5 is 2", nojit(time.Second, time.Hour, 0.5), backoff.Attempt{N: 3}, 4 * time.Second, true},
		{"multiplier 1 is constant", nojit(time.Second, time.Hour, 1), backoff.Attempt{N: 1000}, time.Second, true},
		{"multiplier 3", nojit(time.Second, time.Hour, 3), backoff.Attempt{N: 3}, 9 * time.Second, true},
		{"multiplier +Inf N=1", nojit(time.Second, time.Hour, math.Inf(1)), backoff.Attempt{N: 1}, time.Second, true},
		{"multiplier +Inf N=2", nojit(time.Second, time.Hour, math.Inf(1)), backoff.Attempt{N: 2}, time.Hour, true},

		{"full r=0", exp(0, 0, 0, backoff.FullJitter, 0), backoff.Attempt{N: 3}, 0, true},
		{"full r=0.5", exp(0, 0, 0, backoff.FullJitter, 0.5), backoff.Attempt{N: 3}, 2 * time.Second, true},
		{"full is the zero Jitter", backoff.Exponential{Rand: fixed(0.25)}, backoff.Attempt{N: 3}, time.Second, true},
		{"full r=1 clamped below base", exp(0, 0, 0, backoff.FullJitter, 1), backoff.Attempt{N: 3}, 4*time.Second - 1, true},
		{"full r=1.5 clamped below base", exp(0, 0, 0, backoff.FullJitter, 1.5), backoff.Attempt{N: 3}, 4*time.Second - 1, true},
		{"full r<0 clamped to 0", exp(0, 0, 0, backoff.FullJitter, -1), backoff.Attempt{N: 3}, 0, true},
		{"full r=NaN clamped to 0", exp(0, 0, 0, backoff.FullJitter, math.NaN()), backoff.Attempt{N: 3}, 0, true},
		{"full at the cap", exp(0, time.Minute, 0, backoff.FullJitter, 0.5), backoff.Attempt{N: 40}, 30 * time.Second, true},
		{"full huge Max r~1", exp(time.Second, maxDuration, 2, backoff.FullJitter, 1), backoff.Attempt{N: math.MaxInt}, maxDuration - 1023, true},
		{"unknown jitter is full", exp(0, 0, 0, backoff.Jitter(42), 0.5), backoff.Attempt{N: 3}, 2 * time.Second, true},
		{"negative jitter is full", exp(0, 0, 0, backoff.Jitter(-1), 0.5), backoff.Attempt{N: 3}, 2 * time.Second, true},

		{"equal r=0", exp(0, 0, 0, backoff.EqualJitter, 0), backoff.Attempt{N: 3}, 2 * time.Second, true},
		{"equal r=0.5", exp(0, 0, 0, backoff.EqualJitter, 0.5), backoff.Attempt{N: 3}, 3 * time.Second, true},
		{"equal at the cap", exp(0, time.Minute, 0, backoff.EqualJitter, 0.5), backoff.Attempt{N: 99}, 45 * time.Second, true},

		{"decorrelated first r=0", decor(0, 0), backoff.Attempt{N: 1}, time.Second, true},
		{"decorrelated first r=0.5", decor(0, 0.5), backoff.Attempt{N: 1}, 2 * time.Second, true},
		{"decorrelated ignores N", decor(0, 0.5), backoff.Attempt{N: 100}, 2 * time.Second, true},
		{"decorrelated Prev<Initial", decor(0, 0.5), backoff.Attempt{N: 2, Prev: time.Millisecond}, 2 * time.Second, true},
		{"decorrelated from Prev", decor(0, 0.5), backoff.Attempt{N: 2, Prev: 10 * time.Second}, 15500 * time.Millisecond, true},
		{"decorrelated capped", decor(0, 0.5), backoff.Attempt{N: 2, Prev: 30 * time.Second}, 30500 * time.Millisecond, true},
		{"decorrelated huge Prev", decor(0, 0.5), backoff.Attempt{N: 2, Prev: maxDuration}, 30500 * time.Millisecond, true},
		{"decorrelated multiplier 2", decor(2, 0.5), backoff.Attempt{N: 2, Prev: 10 * time.Second}, 10500 * time.Millisecond, true},
		{"decorrelated multiplier NaN is 3", decor(math.NaN(), 0), backoff.Attempt{N: 2, Prev: 10 * time.Second}, time.Second, true},
		{"decorrelated Initial=Max", exp(time.Second, time.Second, 0, backoff.DecorrelatedJitter, 0.9), backoff.Attempt{N: 9, Prev: time.Second}, time.Second, true},

		{"attempts within", backoff.MaxAttempts(backoff.Constant(time.Second), 3), backoff.Attempt{N: 3}, time.Second, true},
		{"attempts first", backoff.MaxAttempts(backoff.Constant(time.Second), 3), backoff.Attempt{N: 1}, time.Second, true},
		{"attempts exceeded", backoff.MaxAttempts(backoff.Constant(time.Second), 3), backoff.Attempt{N: 4}, 0, false},
		{"attempts 0", backoff.MaxAttempts(backoff.Constant(time.Second), 0), backoff.Attempt{N: 1}, 0, false},
		{"attempts negative", backoff.MaxAttempts(backoff.Constant(time.Second), -1), backoff.Attempt{N: 1}, 0, false},
		{"attempts inner gives up", backoff.MaxAttempts(backoff.Never(), 5), backoff.Attempt{N: 1}, 0, false},
		{"attempts passes delay", backoff.MaxAttempts(nojit(time.Second, time.Hour, 2), 5), backoff.Attempt{N: 4}, 8 * time.Second, true},

		{"elapsed first", backoff.MaxElapsed(backoff.Constant(5*time.Second), 15*time.Second), backoff.Attempt{N: 1}, 5 * time.Second, true},
		{"elapsed exactly d", backoff.MaxElapsed(backoff.Constant(5*time.Second), 15*time.Second), backoff.Attempt{N: 3, Elapsed: 10 * time.Second}, 5 * time.Second, true},
		{"elapsed 1ns past d", backoff.MaxElapsed(backoff.Constant(5*time.Second), 15*time.Second), backoff.Attempt{N: 3, Elapsed: 10*time.Second + 1}, 0, false},
		{"elapsed already past d", backoff.MaxElapsed(backoff.Constant(0), 15*time.Second), backoff.Attempt{N: 9, Elapsed: 20 * time.Second}, 0, false},
		{"elapsed huge delay no overflow", backoff.MaxElapsed(backoff.Constant(maxDuration), 15*time.Second), backoff.Attempt{N: 1, Elapsed: time.Second}, 0, false},
		{"elapsed huge d and delay", backoff.MaxElapsed(backoff.Constant(maxDuration), maxDuration), backoff.Attempt{N: 1}, maxDuration, true},
		{"elapsed huge d, delay and elapsed", backoff.MaxElapsed(backoff.Constant(maxDuration), maxDuration), backoff.Attempt{N: 1, Elapsed: 1}, 0, false},
		{"elapsed negative counts as 0", backoff.MaxElapsed(backoff.Constant(15*time.Second), 15*time.Second), backoff.Attempt{N: 1, Elapsed: -time.Hour}, 15 * time.Second, true},
		{"elapsed min Elapsed no overflow", backoff.MaxElapsed(backoff.Constant(time.Second), maxDuration), backoff.Attempt{N: 1, Elapsed: math.MinInt64}, time.Second, true},
		{"elapsed inner gives up", backoff.MaxElapsed(backoff.Never(), time.Hour), backoff.Attempt{N: 1}, 0, false},
		{"elapsed d=0 zero delay", backoff.MaxElapsed(backoff.Constant(0), 0), backoff.Attempt{N: 1}, 0, true},
		{"elapsed d=0 some delay", backoff.MaxElapsed(backoff.Constant(1), 0), backoff.Attempt{N: 1}, 0, false},
		{"elapsed d<0", backoff.MaxElapsed(backoff.Constant(0), -time.Second), backoff.Attempt{N: 1}, 0, false},
		{"elapsed negative inner delay", backoff.MaxElapsed(backoff.Func(func(backoff.Attempt) (time.Duration, bool) { return -time.Second, true }), 0), backoff.Attempt{N: 1}, -time.Second, true},

		{"nested limits: attempts first", backoff.MaxAttempts(backoff.MaxElapsed(backoff.Constant(time.Second), time.Hour), 2), backoff.Attempt{N: 3, Elapsed: 2 * time.Second}, 0, false},
		{"nested limits: elapsed first", backoff.MaxAttempts(backoff.MaxElapsed(backoff.Constant(time.Second), time.Second), 9), backoff.Attempt{N: 2, Elapsed: time.Second}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			delay, retry := tt.s.Next(tt.a)
			if delay != tt.delay || retry != tt.retry {
				t.Errorf("Next(%+v) = %v (%d), %v; want %v (%d), %v", tt.a, delay, delay, retry, tt.delay, tt.delay, tt.retry)
			}
		})
	}
}

// TestRandomRanges draws with the real random source (Rand == nil) and checks
// every delay lies in the range its jitter mode documents.
func TestRandomRanges(t *testing.T) {
	const initial, ceiling = time.Second, time.Minute
	tests := []struct {
		jitter backoff.Jitter
		// bounds returns the documented range of the delay for a.
		bounds func(a backoff.Attempt) (lo, hi time.Duration)
	}{
		{backoff.FullJitter, func(a backoff.Attempt) (time.Duration, time.Duration) { return 0, base(a.N) }},
		{backoff.EqualJitter, func(a backoff.Attempt) (time.Duration, time.Duration) { return base(a.N) / 2, base(a.N) }},
		{backoff.DecorrelatedJitter, func(a backoff.Attempt) (time.Duration, time.Duration) {
			return initial, min(3*max(a.Prev, initial), ceiling)
		}},
		{backoff.NoJitter, func(a backoff.Attempt) (time.Duration, time.Duration) { return base(a.N), base(a.N) }},
	}
	for _, tt := range tests {
		t.Run(tt.jitter.String(), func(t *testing.T) {
			s := backoff.Exponential{Initial: initial, Max: ceiling, Jitter: tt.jitter}
			var prev time.Duration
			var sum time.Duration
			const n = 2000
			for i := range n {
				a := backoff.Attempt{N: i%20 + 1, Prev: prev}
				if a.N == 1 {
					a.Prev = 0
				}
				delay, retry := s.Next(a)
				lo, hi := tt.bounds(a)
				if !retry || delay < lo || delay > hi || (delay == hi && lo != hi) {
					t.Fatalf("Next(%+v) = %v, %v; want retry in [%v, %v)", a, delay, retry, lo, hi)
				}
				prev = delay
				sum += delay
			}
			if tt.jitter != backoff.NoJitter && sum == 0 {
				t.Errorf("all %d delays were 0", n)
			}
		})
	}
}

// base is the exponential delay of the defaults in TestRandomRanges.
func base(n int) time.Duration {
	return min(time.Second<<(n-1), time.Minute)
}

// TestFullJitterSpreads checks that clients retrying together do not retry in
// lockstep: the reason jitter exists.
func TestFullJitterSpreads(t *testing.T) {
	s := backoff.Default()
	seen := map[time.Duration]bool{}
	for range 100 {
		d, _ := s.Next(backoff.Attempt{N: 5})
		seen[d] = true
	}
	if len(seen) < 90 {
		t.Errorf("100 clients drew only %d distinct delays", len(seen))
	}
}

func TestPure(t *testing.T) {
	seq := func() func() float64 {
		vals := []float64{0.1, 0.7, 0.3, 0.9}
		i := 0
		return func() float64 { i++; return vals[(i-1)%len(vals)] }
	}
	for _, j := range []backoff.Jitter{backoff.FullJitter, backoff.EqualJitter, backoff.DecorrelatedJitter, backoff.NoJitter} {
		var runs [2][]time.Duration
		for r := range runs {
			s := backoff.Exponential{Jitter: j, Rand: seq()}
			var prev time.Duration
			for n := 1; n <= 12; n++ {
				d, _ := s.Next(backoff.Attempt{N: n, Prev: prev})
				runs[r] = append(runs[r], d)
				prev = d
			}
		}
		if !reflect.DeepEqual(runs[0], runs[1]) {
			t.Errorf("%v: same input, different schedules: %v and %v", j, runs[0], runs[1])
		}
	}
}

// TestShared runs one Exponential value from many goroutines (go test -race).
func TestShared(t *testing.T) {
	s := backoff.Default()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for n := 1; n <= 200; n++ {
				if d, retry := s.Next(backoff.Attempt{N: n}); !retry || d < 0 || d >= backoff.DefaultMax {
					t.Errorf("Next(N=%d) = %v, %v", n, d, retry)
				}
			}
		})
	}
	wg.Wait()
}

func TestDefault(t *testing.T) {
	want := backoff.Exponential{Initial: time.Second, Max: 2 * time.Minute, Multiplier: 2, Jitter: backoff.FullJitter}
	if got := backoff.Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default() = %+v, want %+v", got, want)
	}
}

func TestFunc(t *testing.T) {
	errAuth := errors.New("not authorized")
	var got backoff.Attempt
	s := backoff.Func(func(a backoff.Attempt) (time.Duration, bool) {
		got = a
		if errors.Is(a.Err, errAuth) {
			return 0, false
		}
		return time.Duration(a.N) * time.Second, true
	})
	a := backoff.Attempt{N: 3, Elapsed: time.Minute, Err: errors.New("refused"), Prev: 2 * time.Second}
	if d, retry := s.Next(a); d != 3*time.Second || !retry {
		t.Errorf("Next = %v, %v; want 3s, true", d, retry)
	}
	if !reflect.DeepEqual(got, a) {
		t.Errorf("the function saw %+v, want %+v", got, a)
	}
	if _, retry := s.Next(backoff.Attempt{N: 1, Err: errAuth}); retry {
		t.Error("Next retried an error the function gives up on")
	}
}

func TestJitterString(t *testing.T) {
	tests := map[backoff.Jitter]string{
		backoff.FullJitter:         "FullJitter",
		backoff.EqualJitter:        "EqualJitter",
		backoff.DecorrelatedJitter: "DecorrelatedJitter",
		backoff.NoJitter:           "NoJitter",
		backoff.Jitter(17):         "Jitter(17)",
		backoff.Jitter(-2):         "Jitter(-2)",
	}
	for j, want := range tests {
		if got := j.String(); got != want {
			t.Errorf("Jitter(%d).String() = %q, want %q", int(j), got, want)
		}
	}
}

func TestNilStrategyPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"MaxAttempts": func() { backoff.MaxAttempts(nil, 3) },
		"MaxElapsed":  func() { backoff.MaxElapsed(nil, time.Second) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				msg, _ := recover().(string)
				if !strings.HasPrefix(msg, "backoff: "+name) {
					t.Errorf("panic %q, want one starting %q", msg, "backoff: "+name)
				}
			}()
			f()
		})
	}
}

func BenchmarkNext(b *testing.B) {
	for _, j := range []backoff.Jitter{backoff.FullJitter, backoff.DecorrelatedJitter, backoff.NoJitter} {
		b.Run(j.String(), func(b *testing.B) {
			s := backoff.MaxElapsed(backoff.Exponential{Jitter: j}, time.Hour)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n = n%40 + 1
				s.Next(backoff.Attempt{N: n, Prev: time.Second})
			}
		})
	}
}

package battery_test

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/internal/battery"
)

func TestSimulate(t *testing.T) {
	noJitter := backoff.Exponential{Initial: time.Second, Max: time.Minute, Jitter: backoff.NoJitter}
	// negativeTwice waits -1 s (counted as 0) twice, then 10 s.
	negativeTwice := backoff.Func(func(a backoff.Attempt) (time.Duration, bool) {
		if a.N <= 2 {
			return -time.Second, true
		}
		return 10 * time.Second, true
	})
	tests := []struct {
		name   string
		s      backoff.Strategy
		outage time.Duration
		want   battery.Figures
	}{
		// Attempts at 2 s, 4 s, ... 3598 s are refused; the one at 3600 s,
		// the moment the broker is back, connects.
		{"constant 2s", backoff.Constant(2 * time.Second), time.Hour,
			battery.Figures{Attempts: 1799, Bytes: 1799 * 80, Reconnected: true}},
		// 7 s · 514 = 3598 s is the last refused; 3605 s connects.
		{"constant 7s", backoff.Constant(7 * time.Second), time.Hour,
			battery.Figures{Attempts: 514, Bytes: 514 * 80, Reconnected: true, ReconnectAfter: 5 * time.Second}},
		// Attempts at 1, 3, 7, 15, 31, 63 s; then 63+60 = 123 s.
		{"exponential", noJitter, 100 * time.Second,
			battery.Figures{Attempts: 6, Bytes: 480, Reconnected: true, ReconnectAfter: 23 * time.Second}},
		{"no outage", backoff.Constant(time.Second), 0,
			battery.Figures{Reconnected: true, ReconnectAfter: time.Second}},
		{"no outage, no delay", backoff.Constant(0), 0,
			battery.Figures{Reconnected: true}},
		{"never", backoff.Never(), time.Hour, battery.Figures{}},
		{"max attempts", backoff.MaxAttempts(backoff.Constant(time.Second), 3), time.Hour,
			battery.Figures{Attempts: 3, Bytes: 240, GaveUpAfter: 3 * time.Second}},
		// Attempts at 5, 10 and 15 s; a fourth would start at 20 s > 15 s.
		{"max elapsed", backoff.MaxElapsed(backoff.Constant(5*time.Second), 15*time.Second), time.Hour,
			battery.Figures{Attempts: 3, Bytes: 240, GaveUpAfter: 15 * time.Second}},
		{"max elapsed past the outage", backoff.MaxElapsed(backoff.Constant(5*time.Second), 15*time.Second), 12 * time.Second,
			battery.Figures{Attempts: 2, Bytes: 160, Reconnected: true, ReconnectAfter: 3 * time.Second}},
		{"negative delays count as 0", negativeTwice, 5 * time.Second,
			battery.Figures{Attempts: 2, Bytes: 160, Reconnected: true, ReconnectAfter: 5 * time.Second}},
		{"huge delay", backoff.Constant(math.MaxInt64), time.Hour,
			battery.Figures{Reconnected: true, ReconnectAfter: math.MaxInt64 - time.Hour}},
		{"huge outage", backoff.Constant(1000 * time.Hour), math.MaxInt64,
			battery.Figures{Attempts: 2562, Bytes: 2562 * 80, Reconnected: true, ReconnectAfter: 1000*time.Hour - math.MaxInt64%(1000*time.Hour)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := battery.Simulate(tt.s, tt.outage)
			if err != nil || got != tt.want {
				t.Errorf("Simulate = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestSimulateAttempts checks the Attempt values Simulate passes: those the
// client's supervisor passes when every retry is refused at once.
func TestSimulateAttempts(t *testing.T) {
	var got []backoff.Attempt
	s := backoff.Func(func(a backoff.Attempt) (time.Duration, bool) {
		got = append(got, a)
		return time.Duration(a.N) * time.Second, true
	})
	if _, err := battery.Simulate(s, 7*time.Second); err != nil {
		t.Fatal(err)
	}
	// Retries at 1 s and 3 s are refused; the third, at 6 s, too; the
	// fourth would come at 10 s.
	want := []backoff.Attempt{
		{N: 1},
		{N: 2, Elapsed: time.Second, Prev: time.Second},
		{N: 3, Elapsed: 3 * time.Second, Prev: 2 * time.Second},
		{N: 4, Elapsed: 6 * time.Second, Prev: 3 * time.Second},
	}
	for i := range got {
		if !errors.Is(got[i].Err, syscall.ECONNREFUSED) || !strings.HasPrefix(got[i].Err.Error(), "battery: ") {
			t.Errorf("attempt %d: Err = %v, want one wrapping ECONNREFUSED", i+1, got[i].Err)
		}
		got[i].Err = nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the strategy saw %+v, want %+v", got, want)
	}
}

func TestSimulateErrors(t *testing.T) {
	t.Run("nil strategy", func(t *testing.T) {
		if _, err := battery.Simulate(nil, time.Hour); err == nil || !strings.HasPrefix(err.Error(), "battery: ") {
			t.Errorf("err = %v, want a battery: error", err)
		}
	})
	t.Run("negative outage", func(t *testing.T) {
		if _, err := battery.Simulate(backoff.Constant(time.Second), -time.Second); err == nil || !strings.Contains(err.Error(), "negative") {
			t.Errorf("err = %v, want one about the negative outage", err)
		}
	})
	t.Run("no delay", func(t *testing.T) {
		f, err := battery.Simulate(backoff.Constant(0), time.Second)
		if !errors.Is(err, battery.ErrTooManyAttempts) {
			t.Fatalf("err = %v, want ErrTooManyAttempts", err)
		}
		if f.Attempts != battery.MaxAttempts || f.Reconnected {
			t.Errorf("figures so far = %+v, want %d attempts", f, battery.MaxAttempts)
		}
	})
}

func TestScale(t *testing.T) {
	var seen backoff.Attempt
	inner := backoff.Func(func(a backoff.Attempt) (time.Duration, bool) {
		seen = a
		return time.Minute, a.N < 5
	})
	s := battery.Scale(inner, time.Hour, 3*time.Second) // 1200 times faster
	a := backoff.Attempt{N: 4, Elapsed: 2 * time.Second, Prev: time.Millisecond, Err: syscall.ECONNREFUSED}
	d, retry := s.Next(a)
	if d != 50*time.Millisecond || !retry {
		t.Errorf("Next = %v, %v; want 50ms, true", d, retry)
	}
	want := backoff.Attempt{N: 4, Elapsed: 40 * time.Minute, Prev: 1200 * time.Millisecond, Err: syscall.ECONNREFUSED}
	if seen != want {
		t.Errorf("the strategy saw %+v, want %+v", seen, want)
	}
	if _, retry := s.Next(backoff.Attempt{N: 5}); retry {
		t.Error("Scale retried where the strategy gives up")
	}

	tests := []struct {
		name           string
		from, to       time.Duration
		delay, elapsed time.Duration
		wantDelay      time.Duration
		wantElapsed    time.Duration // what the strategy sees
	}{
		{"rounds down", 3, 1, 0, 0, 0, 0},
		{"rounds a delay down", 3, 2, 5, 0, 3, 0},
		{"slower", time.Second, time.Hour, time.Second, time.Hour, time.Hour, time.Second},
		{"delay saturates", 1, 2, math.MaxInt64, 0, math.MaxInt64, 0},
		{"elapsed saturates", 2, 1, 0, math.MaxInt64, 0, math.MaxInt64},
		{"negative elapsed saturates", 2, 1, 0, math.MinInt64, 0, math.MinInt64},
		{"negative elapsed", 2, 1, 0, -3, 0, -6},
		{"min elapsed halved", 1, 2, 0, math.MinInt64, 0, math.MinInt64 / 2},
		{"negative delay", 1, 2, -7, 0, -14, 0},
		{"no intermediate overflow", math.MaxInt64, math.MaxInt64, math.MaxInt64 - 1, math.MaxInt64 - 2, math.MaxInt64 - 1, math.MaxInt64 - 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var saw time.Duration
			s := battery.Scale(backoff.Func(func(a backoff.Attempt) (time.Duration, bool) {
				saw = a.Elapsed
				return tt.delay, true
			}), tt.from, tt.to)
			d, _ := s.Next(backoff.Attempt{N: 1, Elapsed: tt.elapsed})
			if d != tt.wantDelay || saw != tt.wantElapsed {
				t.Errorf("delay %v, strategy saw elapsed %v; want %v and %v", d, saw, tt.wantDelay, tt.wantElapsed)
			}
		})
	}
}

// TestScaleKeepsTheSchedule checks that a scaled strategy makes the same
// decisions in the shortened outage, so that a test can measure the seed
// cases in 3 seconds instead of an hour.
func TestScaleKeepsTheSchedule(t *testing.T) {
	const outage = 3 * time.Second
	for _, c := range battery.Cases() {
		t.Run(c.Device, func(t *testing.T) {
			full, err := battery.Simulate(c.New(battery.Rand(1)), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			short, err := battery.Simulate(battery.Scale(c.New(battery.Rand(1)), time.Hour, outage), outage)
			if err != nil {
				t.Fatal(err)
			}
			// Constant(2s) connects exactly when the hour ends; scaled, its
			// delay rounds down to 1666666 ns, so the 1800th attempt comes
			// 1.2 µs before the end of the 3 s and is refused, and the next
			// connects one delay (less 1.2 µs) later.
			if c.Strategy == "Constant(2s)" {
				full.Attempts++
				full.Bytes += battery.RefusedAttemptBytes
				full.ReconnectAfter = 2 * time.Second
			}
			// Compare at the hour's scale, to the microsecond (the rounding
			// loses at most a nanosecond per attempt, 1.2 µs at full scale).
			scaleUp := func(f battery.Figures) battery.Figures {
				f.ReconnectAfter = (f.ReconnectAfter * 1200).Round(100 * time.Millisecond)
				f.GaveUpAfter = (f.GaveUpAfter * 1200).Round(100 * time.Millisecond)
				return f
			}
			round := func(f battery.Figures) battery.Figures {
				f.ReconnectAfter = f.ReconnectAfter.Round(100 * time.Millisecond)
				f.GaveUpAfter = f.GaveUpAfter.Round(100 * time.Millisecond)
				return f
			}
			if got, want := scaleUp(short), round(full); got != want {
				t.Errorf("scaled to %v and back: %+v; the full hour: %+v", outage, got, want)
			}
		})
	}
}

func TestRand(t *testing.T) {
	a, b, c := battery.Rand(7), battery.Rand(7), battery.Rand(8)
	same := 0
	for range 1000 {
		x, y, z := a(), b(), c()
		if x != y {
			t.Fatalf("the same seed gave %v and %v", x, y)
		}
		if x < 0 || x >= 1 {
			t.Fatalf("%v is outside [0, 1)", x)
		}
		if x == z {
			same++
		}
	}
	if same > 1 {
		t.Errorf("seeds 7 and 8 agreed %d times in 1000", same)
	}
}

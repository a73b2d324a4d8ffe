package backoff_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
)

// The temperature sensor reports once a minute: a lost reading is fine, and
// the battery matters more than a reconnect. The first loss ends the retrying.
func Example_temperature() {
	printSchedule(backoff.Never(), 5)
	// Output:
	// retry 1: give up 0s after the loss
}

// The button press matters for 15 seconds. Retry quickly (half a second,
// doubling up to 4 s, with full jitter), and give up rather than start a retry
// more than 15 s after the loss. Here retry 9 would wait 3.6 s and start 16.75 s
// after the loss, so the strategy gives up instead.
func Example_button() {
	s := backoff.MaxElapsed(backoff.Exponential{
		Initial: 500 * time.Millisecond,
		Max:     4 * time.Second,
		Rand:    cycle(0.9, 0.5, 0.7, 0.3), // for a reproducible schedule; leave nil in real use
	}, 15*time.Second)
	printSchedule(s, 20)
	// Output:
	// retry 1: wait 450ms, start 450ms after the loss
	// retry 2: wait 500ms, start 950ms after the loss
	// retry 3: wait 1.4s, start 2.35s after the loss
	// retry 4: wait 1.2s, start 3.55s after the loss
	// retry 5: wait 3.6s, start 7.15s after the loss
	// retry 6: wait 2s, start 9.15s after the loss
	// retry 7: wait 2.8s, start 11.95s after the loss
	// retry 8: wait 1.2s, start 13.15s after the loss
	// retry 9: give up 13.15s after the loss
}

// The window-broken alarm must arrive however long the outage lasts, but a
// device on battery should wake rarely meanwhile: retry forever, exponentially
// with full jitter, with delays capped at 30 minutes. From retry 12 on (when
// 2¹¹ s would exceed the cap) every delay is drawn from [0, 30 min).
func Example_windowAlarm() {
	s := backoff.Exponential{
		Initial: time.Second,
		Max:     30 * time.Minute,
		Rand:    cycle(0.9, 0.5, 0.7, 0.3), // for a reproducible schedule; leave nil in real use
	}
	printSchedule(s, 15)
	// Output:
	// retry 1: wait 900ms, start 900ms after the loss
	// retry 2: wait 1s, start 1.9s after the loss
	// retry 3: wait 2.8s, start 4.7s after the loss
	// retry 4: wait 2.4s, start 7.1s after the loss
	// retry 5: wait 14.4s, start 21.5s after the loss
	// retry 6: wait 16s, start 37.5s after the loss
	// retry 7: wait 44.8s, start 1m22.3s after the loss
	// retry 8: wait 38.4s, start 2m0.7s after the loss
	// retry 9: wait 3m50.4s, start 5m51.1s after the loss
	// retry 10: wait 4m16s, start 10m7.1s after the loss
	// retry 11: wait 11m56.8s, start 22m3.9s after the loss
	// retry 12: wait 9m0s, start 31m3.9s after the loss
	// retry 13: wait 27m0s, start 58m3.9s after the loss
	// retry 14: wait 15m0s, start 1h13m3.9s after the loss
	// retry 15: wait 21m0s, start 1h34m3.9s after the loss
	// and so on
}

// A one-off policy: give up on an error that retrying cannot fix, otherwise
// retry like the default.
func ExampleFunc() {
	errNotAuthorized := errors.New("not authorized")
	s := backoff.Func(func(a backoff.Attempt) (time.Duration, bool) {
		if errors.Is(a.Err, errNotAuthorized) {
			return 0, false
		}
		return backoff.Default().Next(a)
	})
	_, retry := s.Next(backoff.Attempt{N: 1, Err: fmt.Errorf("connect: %w", errNotAuthorized)})
	fmt.Println("retry after a refused password:", retry)
	_, retry = s.Next(backoff.Attempt{N: 1, Err: errors.New("connection refused")})
	fmt.Println("retry after a refused connection:", retry)
	// Output:
	// retry after a refused password: false
	// retry after a refused connection: true
}

// printSchedule prints the retries that s allows after a loss, as a client
// would make them if every retry failed at once, filling in the Attempt as the
// supervisor does.
func printSchedule(s backoff.Strategy, limit int) {
	a := backoff.Attempt{N: 1}
	for ; a.N <= limit; a.N++ {
		delay, retry := s.Next(a)
		if !retry {
			fmt.Printf("retry %d: give up %v after the loss\n", a.N, a.Elapsed.Round(time.Millisecond))
			return
		}
		a.Elapsed += delay
		a.Prev = delay
		fmt.Printf("retry %d: wait %v, start %v after the loss\n",
			a.N, delay.Round(time.Millisecond), a.Elapsed.Round(time.Millisecond))
	}
	fmt.Println("and so on")
}

// cycle returns a random source that repeats vals.
func cycle(vals ...float64) func() float64 {
	i := 0
	return func() float64 {
		i++
		return vals[(i-1)%len(vals)]
	}
}

package supervisor_test

import (
	"errors"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/supervisor"
)

// The give-up message says how many retries were made and for how long, in
// durations a person reads, and a refused first retry as "allows no retry"
// instead of a count and a time that mean nothing.
func TestGaveUpErrorMessage(t *testing.T) {
	cases := []struct {
		a    backoff.Attempt
		want string
	}{
		{backoff.Attempt{N: 1, Elapsed: 1092 * time.Nanosecond, Err: errDial},
			"supervisor: the backoff strategy gave up: it allows no retry; the run failed: dial: connection refused"},
		{backoff.Attempt{N: 2, Elapsed: 2569475 * time.Nanosecond, Err: errDial},
			"supervisor: the backoff strategy gave up after 1 retry, 2.57ms after the first failure; the last run failed: dial: connection refused"},
		{backoff.Attempt{N: 9, Elapsed: 13*time.Second + 152345678, Err: errBoom},
			"supervisor: the backoff strategy gave up after 8 retries, 13.2s after the first failure; the last run failed: boom"},
	}
	for _, tc := range cases {
		err := &supervisor.GaveUpError{Attempt: tc.a}
		if got := err.Error(); got != tc.want {
			t.Errorf("N=%d: Error() =\n%q\nwant\n%q", tc.a.N, got, tc.want)
		}
		if !errors.Is(err, supervisor.ErrGaveUp) || !errors.Is(err, tc.a.Err) {
			t.Errorf("N=%d: %v does not wrap ErrGaveUp and the last run's error", tc.a.N, err)
		}
	}
}

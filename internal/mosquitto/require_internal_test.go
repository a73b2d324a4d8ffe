package mosquitto

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB that records a skip or a failure instead of
// acting on it, and ends the goroutine as they would.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// Without the program a test skips, saying how to install it; with
// MQTT_REQUIRE_MOSQUITTO=1 it fails instead.
func TestRequireMissing(t *testing.T) {
	for _, env := range []string{"", "1"} {
		t.Setenv(RequireEnv, env)
		r := &recorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Require(r, "mosquitto-not-installed")
		}()
		<-done
		got, other := r.skipped, r.failed
		if env == "1" {
			got, other = r.failed, r.skipped
		}
		if !strings.Contains(got, "apt-get install mosquitto mosquitto-clients") || other != "" {
			t.Errorf("%s=%q: skipped %q, failed %q", RequireEnv, env, r.skipped, r.failed)
		}
	}
}

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt/mqtttest"
)

// Without -W, a first connection that is refused ends the command at once,
// as with mosquitto's clients: nothing listens on the port, or the broker's
// CONNACK says no, even for a reason that retrying might cure. (It used to
// retry for 10 seconds.)
func TestFirstConnectionRefused(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	closed := b.Addr()
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	unavailable := mqtttest.NewScriptedBroker(t)
	unavailable.SetConnack([]byte{0x20, 0x02, 0x00, 0x03}) // MQTT 3.1.1: server unavailable
	for _, tc := range []struct {
		addr string
		args []string
		want string
	}{
		{closed, []string{"pub", "-t", "x", "-m", "y", "-q", "1"}, "connection refused"},
		{closed, []string{"sub", "-t", "x"}, "connection refused"},
		{closed, []string{"rr", "-t", "x", "-e", "y", "-m", "z"}, "connection refused"},
		{unavailable.Addr(), []string{"pub", "-t", "x", "-m", "y"}, "server unavailable"},
		{unavailable.Addr(), []string{"sub", "-t", "x"}, "server unavailable"},
	} {
		start := time.Now()
		_, stderr, status := runCmd(t, nil, append(tc.args[:1:1], at(tc.addr, tc.args[1:]...)...)...)
		took := time.Since(start)
		if status != 1 {
			t.Errorf("%q: exit status %d, want 1", tc.args, status)
		}
		oneLine(t, stderr, "mqtt "+tc.args[0]+": gave up connecting: ", tc.want)
		if !strings.HasSuffix(stderr, " (give -W seconds to keep trying)\n") {
			t.Errorf("%q: stderr %q does not say that -W retries", tc.args, stderr)
		}
		// One attempt, where retries took connectWait: milliseconds,
		// with room for a loaded machine.
		if took > connectWait/2 {
			t.Errorf("%q: took %s to fail", tc.args, took)
		}
	}
}

// With -W the user asked to wait: a refused connection is retried until
// then (TestPubConnectTimeout has the closed port).
func TestFirstConnectionRefusedWait(t *testing.T) {
	t.Parallel()
	unavailable := mqtttest.NewScriptedBroker(t)
	unavailable.SetConnack([]byte{0x20, 0x02, 0x00, 0x03})
	_, stderr, status := runCmd(t, nil, append([]string{"sub"}, at(unavailable.Addr(), "-t", "x", "-W", "0.5")...)...)
	if status != 27 {
		t.Errorf("exit status %d, want 27", status)
	}
	oneLine(t, stderr, "mqtt sub: timed out: no connection to tcp://"+unavailable.Addr()+" within 0.5s: last attempt: ", "server unavailable")
}

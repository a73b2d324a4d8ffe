package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt/internal/mosquitto"
)

// pub and sub against Mosquitto, with mosquitto_pub and mosquitto_sub on
// the other side. Skipped when Mosquitto is not installed, unless
// MQTT_REQUIRE_MOSQUITTO=1.
func TestMosquitto(t *testing.T) {
	t.Parallel()
	m := mosquitto.New(t, "")
	mosquittoPub := mosquitto.Require(t, "mosquitto_pub")
	mosquittoSub := mosquitto.Require(t, "mosquitto_sub")
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()

	// mosquitto_sub, started; it has subscribed when it returns.
	mosquittoSubscriber := func(t *testing.T, id string, args ...string) *proc {
		t.Helper()
		p := startProgram(t, mosquittoSub, nil, append(at(m.Addr(), "-i", id), args...)...)
		err := m.WaitLog(ctx, func(log string) bool { return strings.Contains(log, "Sending SUBACK to "+id) })
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	// pub's -M defaults to the library's window: with 3.1.1, 20,
	// Mosquitto's max_inflight_messages, which the client must respect
	// unannounced (see Config.MaxInflight).
	// mosquitto_sub -C itself fails now and then ("A network protocol
	// error occurred") when its subscription is QoS 2, whoever publishes:
	// it subscribes with QoS 1, so QoS 2 is pub's side only.
	for _, tc := range []struct{ version, qos string }{{"311", "1"}, {"5", "2"}} {
		t.Run("pub -l to mosquitto_sub, V"+tc.version+" q"+tc.qos, func(t *testing.T) {
			var in strings.Builder
			for i := range 100 {
				fmt.Fprintf(&in, "line %03d\n", i)
			}
			topic := "cli/mosquitto/" + tc.version
			id := "mosquitto-sub-" + tc.version
			s := mosquittoSubscriber(t, id, "-V", tc.version, "-q", "1", "-C", "100", "-t", topic)
			pub(t, m.Addr(), in.String(), "-V", tc.version, "-q", tc.qos, "-l", "-t", topic)
			finish(t, s, 0, in.String())
		})
	}

	t.Run("mosquitto_pub to sub", func(t *testing.T) {
		s := sub(t, m.Addr(), "-V", "mqttv5", "-q", "2", "-v", "-C", "3", "-t", "cli/from-mosquitto/#")
		for _, args := range [][]string{
			{"-t", "cli/from-mosquitto/a", "-q", "1", "-m", "one"},
			{"-t", "cli/from-mosquitto/b", "-q", "2", "-l"},
		} {
			_, stderr, status := runProgram(t, mosquittoPub, strings.NewReader("two\nthree\n"), append(at(m.Addr()), args...)...)
			if status != 0 {
				t.Fatalf("mosquitto_pub %q: exit status %d; stderr:\n%s", args, status, stderr)
			}
		}
		finish(t, s, 0, "cli/from-mosquitto/a one\ncli/from-mosquitto/b two\ncli/from-mosquitto/b three\n")
	})

	// Mosquitto saves the session in its database when it stops and
	// restores it when it starts: what is published meanwhile waits there.
	t.Run("sub -c through a restart", func(t *testing.T) {
		s := sub(t, m.Addr(), "-c", "-i", "cli-persistent", "-q", "1", "-C", "3", "-t", "cli/persistent")
		mosquittoPublish := func(msg string) {
			t.Helper()
			_, stderr, status := runProgram(t, mosquittoPub, nil, at(m.Addr(), "-q", "1", "-t", "cli/persistent", "-m", msg)...)
			if status != 0 {
				t.Fatalf("mosquitto_pub: exit status %d; stderr:\n%s", status, stderr)
			}
		}
		mosquittoPublish("before")
		s.waitStdout("before")
		// Acknowledged, or QoS 1 may deliver it again after the restart.
		err := m.WaitLog(ctx, func(log string) bool { return strings.Contains(log, "Received PUBACK from cli-persistent") })
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Stop(); err != nil {
			t.Fatal(err)
		}
		s.waitStderr("mqtt sub: connection lost: ")
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		mosquittoPublish("after") // the subscriber may or may not be back
		s.waitStdout("after")
		s.waitStderr("mqtt sub: reconnected to tcp://" + m.Addr() + " (session present: true)")
		mosquittoPublish("again")
		finish(t, s, 0, "before\nafter\nagain\n")
	})
}

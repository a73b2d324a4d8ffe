package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// A short demo with a fault every half second loses no acknowledged button
// press or alarm, says so, and exits 0.
func TestDemo(t *testing.T) {
	t.Parallel()
	var out, errs bytes.Buffer
	code := run(t.Context(), []string{"demo", "-duration", "3s", "-faults", "500ms"}, stdio{out: &out, errOut: &errs})
	t.Logf("output:\n%s", out.String())
	if code != 0 {
		t.Fatalf("exit status %d, want 0; stderr:\n%s", code, errs.String())
	}
	for _, want := range []string{
		"fault: broker restart",
		"fault: cut every connection",
		"fault: black hole",
		header + "  lost",
		"No acknowledged button press or alarm was lost.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "\x1b[") {
		t.Error("escape sequences in output that is not a terminal")
	}
	for _, dev := range []string{"temperature    0 ", "button         1 ", "alarm          2 "} {
		if !strings.Contains(out.String(), "\n"+dev) {
			t.Errorf("the summary has no row %q", dev)
		}
	}
}

// demoAt runs the demo against the broker at url, briefly, and checks
// that it lost nothing, injected cuts and black holes but no broker
// restart, and left none of its persistent sessions on the broker.
func demoAt(t *testing.T, url string, sessionGone func(ctx context.Context, clientID string) bool) {
	t.Helper()
	var out, errs bytes.Buffer
	code := run(t.Context(), []string{"demo", "-url", url, "-duration", "3s", "-faults", "400ms"}, stdio{out: &out, errOut: &errs})
	t.Logf("output:\n%s", out.String())
	if code != 0 {
		t.Fatalf("exit status %d, want 0; stderr:\n%s", code, errs.String())
	}
	for _, want := range []string{
		"behind a fault proxy on 127.0.0.1:",
		"a cut or a black hole every 400ms (restarts need the embedded broker)",
		"fault: cut every connection",
		"fault: black hole",
		"\nalarm          2 ",
		"No acknowledged button press or alarm was lost.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "broker restart") {
		t.Error("a broker restart, of a broker the demo did not start")
	}
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	for _, name := range []string{"button", "alarm", "monitor"} {
		if id := fmt.Sprintf("mqtt-demo-%d-%s", os.Getpid(), name); !sessionGone(ctx, id) {
			t.Errorf("the demo left the session of %s on the broker", id)
		}
	}
}

// mqtt demo -url runs the devices against a broker of the user's: here the
// embedded one, as if it were not, with the topics under the URL's path.
func TestDemoURL(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	demoAt(t, "tcp://"+b.Addr()+"/cli/demo", func(ctx context.Context, id string) bool {
		present, _ := resumeV311(ctx, t, b.URL(), id)
		return !present
	})
}

// ... and against Mosquitto.
func TestDemoURLMosquitto(t *testing.T) {
	t.Parallel()
	m := mosquitto.New(t, "")
	demoAt(t, "mqtt://"+m.Addr(), func(ctx context.Context, id string) bool {
		present, _ := resumeV311(ctx, t, m.URL(), id)
		return !present
	})
}

// resumeV311 connects as clientID with a persistent MQTT 3.1.1 session and
// says whether the broker had kept one.
func resumeV311(ctx context.Context, t *testing.T, server, clientID string) (present bool, err error) {
	t.Helper()
	c, err := mqtt.Dial(ctx, mqtt.Config{Servers: []string{server}, ClientID: clientID, CleanStart: false})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		// Leave no session behind either.
		c.Close()
		if c, err := mqtt.Dial(ctx, mqtt.Config{Servers: []string{server}, ClientID: clientID, CleanStart: true}); err == nil {
			c.Disconnect(ctx)
		}
	}()
	select {
	case e := <-c.Events():
		return e.Kind == mqtt.Connected && e.SessionPresent, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func TestUsage(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: mqtt <command>"},
		{[]string{"help"}, 0, "demo"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"demo", "-h"}, 0, "-duration"},
		{[]string{"demo", "-duration", "soon"}, 2, "invalid value"},
		{[]string{"demo", "extra"}, 2, "takes no arguments"},
		{[]string{"demo", "-faults", "-1s"}, 2, "-faults 0 or more"},
		{[]string{"demo", "-window", "0s"}, 2, "must be positive"},
		{[]string{"demo", "-url", "ws://127.0.0.1:1/mqtt"}, 2, "the fault proxy cannot sit in front of a WebSocket broker"},
		{[]string{"demo", "-url", "127.0.0.1:1883"}, 2, "--url has no scheme"},
		// Nothing listens there: at once, and said of the user's broker.
		{[]string{"demo", "-url", "tcp://127.0.0.1:1", "-duration", "1s"}, 1, "start the monitor, through the fault proxy on 127.0.0.1:"},
		{[]string{"demo", "-url", "tcp://127.0.0.1:1", "-faults", "0"}, 1, "start the monitor: mqtt: dial: cannot connect to tcp://127.0.0.1:1 (connection refused)"},
	}
	for _, tc := range cases {
		var out, errs bytes.Buffer
		code := run(t.Context(), tc.args, stdio{out: &out, errOut: &errs})
		if code != tc.code || !strings.Contains(out.String()+errs.String(), tc.want) {
			t.Errorf("mqtt %q: exit %d, output\n%s%s\nwant exit %d and %q", tc.args, code, out.String(), errs.String(), tc.code, tc.want)
		}
	}
}

// On a terminal the table is redrawn in place: each redraw first moves back
// over the previous one.
func TestDisplayRedrawsOnATerminal(t *testing.T) {
	var out bytes.Buffer
	d := &display{w: &out, terminal: true, start: time.Now()}
	rows := []row{{name: "alarm", qos: 1, sent: 3, acked: 2, delivered: 2}}
	d.progress(rows, "status")
	first := out.String()
	if strings.Contains(first, "\x1b[") || !strings.Contains(first, header) {
		t.Fatalf("first draw:\n%q", first)
	}
	d.progress(rows, "status")
	if got := strings.Count(out.String()[len(first):], "\x1b[1A\x1b[2K"); got != 3 {
		t.Fatalf("the redraw moved back over %d lines, want 3 (header, row, status)", got)
	}
	d.event("fault: %s", "cut")
	if !strings.HasSuffix(out.String(), "fault: cut\n") {
		t.Fatalf("event line: %q", out.String())
	}
}

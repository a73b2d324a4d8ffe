package mqtt_test

import (
	"context"
	"errors"
	"net"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/mqtttest"
	"github.com/robustmqtt/mqtt/supervisor"
)

// What a first-time user tripped on: each test here is one of those
// reports, and pins the behaviour or the words that answer it.

// closedPort is a loopback server where nothing listens: a connect is
// refused at once.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "tcp://" + ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return url
}

// Dial with a nil ctx used to start the session, the supervisor and a TCP
// connection and then panic. It is an error now, and nothing starts.
func TestDialNilContext(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()

	var ctx context.Context // nil, as a user passed it
	c, err := mqtt.Dial(ctx, mqtt.Config{Servers: []string{"tcp://" + ln.Addr().String()}, ClientID: "nil-ctx"})
	const want = "mqtt: Dial needs a non-nil context; use context.Background()"
	if c != nil || err == nil || err.Error() != want {
		t.Errorf("Dial(nil, ...) = %v, %v; want nil, %q", c, err, want)
	}
	ln.Close()
	<-acceptDone
	if n := accepted.Load(); n != 0 {
		t.Errorf("Dial(nil, ...) made %d connections, want none", n)
	}
}

// Dial with backoff.Never and no broker says which server, why, and that
// the strategy allows no retry: no internal package name, no "loss" of a
// connection that never was.
func TestDialNeverNoBrokerSaysWhy(t *testing.T) {
	url, other := closedPort(t), closedPort(t)
	cases := []struct {
		name    string
		servers []string
		want    string
	}{
		{"one server", []string{url},
			"mqtt: dial: cannot connect to " + url + " (connection refused), and the reconnect strategy allows no retry (backoff.Never)"},
		{"two servers", []string{url, other},
			"mqtt: dial: cannot connect to " + url + " (connection refused), and the reconnect strategy allows no retry (backoff.Never), so no other server was tried"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mqtt.Dial(testCtx(t), mqtt.Config{Servers: tc.servers, ClientID: "never", Backoff: backoff.Never()})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Dial error =\n%v\nwant\n%s", err, tc.want)
			}
			checkGaveUp(t, err)
		})
	}
}

// A strategy that allowed some retries says how many attempts, in how
// long, and which server the last went to.
func TestDialGiveUpAfterRetriesSaysWhy(t *testing.T) {
	url := closedPort(t)
	_, err := mqtt.Dial(testCtx(t), mqtt.Config{Servers: []string{url}, ClientID: "retries",
		Backoff: backoff.MaxAttempts(backoff.Constant(0), 2)})
	want := regexp.MustCompile(`^mqtt: dial: cannot connect after 3 attempts in [0-9.]+(ns|µs|ms|s), the last to ` +
		regexp.QuoteMeta(url) + ` \(connection refused\), and the reconnect strategy allows no more$`)
	if err == nil || !want.MatchString(err.Error()) {
		t.Fatalf("Dial error =\n%v\nwant it to match\n%s", err, want)
	}
	checkGaveUp(t, err)
}

// A broker's refusal is the reason given, and stays reachable as a
// *ConnectError.
func TestDialRefusedByBrokerSaysWhy(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	sb.SetConnack([]byte{0x20, 0x02, 0x00, 0x05}) // 3.1.1: not authorized
	_, err := mqtt.Dial(testCtx(t), mqtt.Config{Servers: []string{sb.URL()}, ClientID: "refused", Backoff: backoff.Never()})
	if err == nil {
		t.Fatal("Dial succeeded against a broker that refuses")
	}
	var ce *mqtt.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("errors.As(%v, *ConnectError) = false", err)
	}
	// The refusal's own words come last, whole.
	if want := "mqtt: dial: cannot connect to " + sb.URL() + ", and the reconnect strategy allows no retry (backoff.Never): " + ce.Error(); err.Error() != want {
		t.Fatalf("Dial error =\n%v\nwant\n%s", err, want)
	}
	if !strings.Contains(err.Error(), "not authorized") {
		t.Errorf("Dial error = %v; want it to say the broker's reason", err)
	}
	checkGaveUp(t, err)
}

// After a connection was up, the GaveUp event and Client.Err say which
// server the last attempt went to and why it failed, how many attempts in
// how long since the loss.
func TestGaveUpAfterLossSaysWhy(t *testing.T) {
	t.Run("retries", func(t *testing.T) {
		sb := mqtttest.NewScriptedBroker(t)
		c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "lost",
			Backoff: backoff.MaxAttempts(backoff.Constant(0), 2)})
		scripted(t, sb)
		events := loseForGood(t, c, sb)
		e := events[len(events)-1]
		want := regexp.MustCompile(`^mqtt: cannot reconnect after 2 attempts in [0-9.]+(ns|µs|ms|s) since the connection was lost, the last to ` +
			regexp.QuoteMeta(sb.URL()) + ` \(connection refused\), and the reconnect strategy allows no more$`)
		if e.Server != sb.URL() || !want.MatchString(e.Err.Error()) {
			t.Fatalf("GaveUp event: Server %q, Err\n%v\nwant Server %q and an Err matching\n%s", e.Server, e.Err, sb.URL(), want)
		}
		checkGaveUp(t, e.Err)
		if err := c.Err(); err == nil || err.Error() != e.Err.Error() {
			t.Fatalf("Err() = %v, want the event's words: %v", err, e.Err)
		}
		checkGaveUp(t, c.Err())
	})
	t.Run("never", func(t *testing.T) {
		sb := mqtttest.NewScriptedBroker(t)
		c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "lost-never", Backoff: backoff.Never()})
		scripted(t, sb)
		events := loseForGood(t, c, sb)
		var lost error
		for _, e := range events {
			if e.Kind == mqtt.ConnectionLost {
				lost = e.Err
			}
		}
		if lost == nil {
			t.Fatalf("no ConnectionLost with an Err in %v", events)
		}
		err := events[len(events)-1].Err
		// The loss's own words come last, whole.
		if want := "mqtt: the connection to " + sb.URL() + " was lost, and the reconnect strategy allows no retry (backoff.Never): " + lost.Error(); err.Error() != want {
			t.Fatalf("GaveUp Err =\n%v\nwant\n%s", err, want)
		}
		if !errors.Is(err, lost) {
			t.Errorf("GaveUp Err does not wrap the loss's error %v", lost)
		}
		checkGaveUp(t, err)
		if c.Err() == nil || c.Err().Error() != err.Error() {
			t.Fatalf("Err() = %v, want the event's words: %v", c.Err(), err)
		}
	})
}

// A Reconnecting event carries its cause in Err too (an slog line printed
// err=<nil>), the same error as Attempt.Err, and reads well.
func TestReconnectingEventCarriesErr(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "reconnecting",
		Backoff: backoff.MaxAttempts(backoff.Constant(0), 2)})
	scripted(t, sb)
	var seen int
	for _, e := range loseForGood(t, c, sb) {
		if e.Kind != mqtt.Reconnecting {
			continue
		}
		seen++
		if e.Err == nil || e.Err != e.Attempt.Err {
			t.Errorf("Reconnecting N=%d: Err = %v, Attempt.Err = %v; want the same non-nil error", e.Attempt.N, e.Err, e.Attempt.Err)
			continue
		}
		if s, want := e.String(), "reconnecting in 0s (attempt "; !strings.HasPrefix(s, want) || !strings.HasSuffix(s, ") after: "+e.Err.Error()) {
			t.Errorf("String() = %q; want %q..., then the error", s, want)
		}
	}
	if seen != 2 {
		t.Errorf("%d Reconnecting events, want 2", seen)
	}
}

func TestEventString(t *testing.T) {
	boom := errors.New("boom")
	cases := []struct {
		e    mqtt.Event
		want string
	}{
		{mqtt.Event{Kind: mqtt.Reconnecting, Delay: 1500 * time.Millisecond, Attempt: backoff.Attempt{N: 2, Err: boom}, Err: boom},
			"reconnecting in 1.5s (attempt 2) after: boom"},
		{mqtt.Event{Kind: mqtt.Reconnecting, Delay: 734123456, Attempt: backoff.Attempt{N: 1, Err: boom}, Err: boom},
			"reconnecting in 734ms (attempt 1) after: boom"},
		{mqtt.Event{Kind: mqtt.Reconnecting, Delay: time.Second, Attempt: backoff.Attempt{N: 3}},
			"reconnecting in 1s (attempt 3)"},
	}
	for _, tc := range cases {
		if got := tc.e.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

// The Config doc says what is required: Servers, and a ClientID or
// CleanStart. Both minimal configurations connect; Servers alone is
// refused with an error that says what to set.
func TestConfigMinimum(t *testing.T) {
	b := mqtttest.NewBroker(t)
	for _, cfg := range []mqtt.Config{
		{Servers: []string{b.URL()}, ClientID: "minimal"},
		{Servers: []string{b.URL()}, CleanStart: true},
	} {
		c, err := mqtt.Dial(testCtx(t), cfg)
		if err != nil {
			t.Fatalf("Dial(%+v): %v", cfg, err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	_, err := mqtt.Dial(testCtx(t), mqtt.Config{Servers: []string{b.URL()}})
	if !errors.Is(err, mqtt.ErrInvalidConfig) || !strings.Contains(err.Error(), "ClientID") || !strings.Contains(err.Error(), "CleanStart") {
		t.Fatalf("Dial with Servers only = %v; want ErrInvalidConfig naming ClientID and CleanStart", err)
	}
}

// loseForGood closes the scripted broker (its connection and its port),
// then collects the client's events until GaveUp and waits for the client
// to stop. The last event returned is the GaveUp.
func loseForGood(t *testing.T, c *mqtt.Client, sb *mqtttest.ScriptedBroker) []mqtt.Event {
	t.Helper()
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	var events []mqtt.Event
	deadline := time.After(wait)
	for {
		select {
		case e, ok := <-c.Events():
			if !ok {
				t.Fatalf("Events closed before a GaveUp; got %v", events)
			}
			events = append(events, e)
			if e.Kind != mqtt.GaveUp {
				continue
			}
			select {
			case <-c.Done():
			case <-deadline:
				t.Fatal("Done not closed after GaveUp")
			}
			return events
		case <-deadline:
			t.Fatalf("no GaveUp within the deadline; got %v", events)
		}
	}
}

// checkGaveUp checks that err is still the give-up for errors.Is and
// errors.As, and that it speaks in the client's words.
func checkGaveUp(t *testing.T, err error) {
	t.Helper()
	var sup *supervisor.GaveUpError
	if !errors.Is(err, mqtt.ErrGaveUp) || !errors.As(err, &sup) {
		t.Errorf("%v: errors.Is(ErrGaveUp) %t, errors.As(*supervisor.GaveUpError) %t; want both",
			err, errors.Is(err, mqtt.ErrGaveUp), errors.As(err, &sup))
	}
	if strings.Contains(err.Error(), "supervisor") || strings.Contains(err.Error(), "the loss") {
		t.Errorf("%v: speaks of the supervisor or of a loss", err)
	}
}

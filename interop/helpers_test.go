package interop_test

import (
	"context"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
)

// wait is the longest any test waits for something that should happen.
const wait = 20 * time.Second

// version is a protocol level a test runs at.
type version struct {
	name    string
	version byte
}

// versions are the protocol levels every test runs at.
var versions = []version{{"v311", 4}, {"v5", 5}}

// eachVersion starts a broker with conf and runs f in a subtest for each of
// versions, against that broker.
func eachVersion(t *testing.T, conf string, f func(t *testing.T, b *mosquitto.Broker, v version)) {
	b := mosquitto.New(t, conf)
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) { f(t, b, v) })
	}
}

// testCtx is a context that ends with the test or after wait.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	t.Cleanup(cancel)
	return ctx
}

// config is the configuration of a client of broker b.
func config(b *mosquitto.Broker, id string, version byte) mqtt.Config {
	return mqtt.Config{Servers: []string{b.URL()}, ClientID: id, Version: version}
}

// dial connects a client and closes it when the test ends. It retries every
// 10 ms: the tests want the client back as soon as the broker is.
func dial(t testing.TB, cfg mqtt.Config) *mqtt.Client {
	t.Helper()
	if cfg.Backoff == nil {
		cfg.Backoff = backoff.Constant(10 * time.Millisecond)
	}
	c, err := mqtt.Dial(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Dial %s: %v", cfg.ClientID, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// subscribe subscribes c or fails the test.
func subscribe(t testing.TB, c *mqtt.Client, subs ...mqtt.Subscription) {
	t.Helper()
	if err := c.Subscribe(testCtx(t), subs...); err != nil {
		t.Fatalf("Subscribe %v: %v", subs, err)
	}
}

// publish publishes m on c or fails the test.
func publish(t testing.TB, c *mqtt.Client, m mqtt.Message) {
	t.Helper()
	if err := c.Publish(testCtx(t), m); err != nil {
		t.Fatalf("Publish to %s: %v", m.Topic, err)
	}
}

// receive waits for the next message on c.
func receive(t testing.TB, c *mqtt.Client) mqtt.Message {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case m, ok := <-c.Messages():
		if !ok {
			t.Fatal("Messages closed while waiting for a message")
		}
		return m
	case <-timer.C:
		t.Fatal("no message within the deadline")
	}
	return mqtt.Message{}
}

// receiveWant waits for the next message and checks its topic and payload.
func receiveWant(t testing.TB, c *mqtt.Client, topic, payload string) mqtt.Message {
	t.Helper()
	m := receive(t, c)
	if m.Topic != topic || string(m.Payload) != payload {
		t.Fatalf("got %q %q, want %q %q", m.Topic, m.Payload, topic, payload)
	}
	return m
}

// waitEvent waits for an event of kind k on c and returns it.
func waitEvent(t testing.TB, c *mqtt.Client, k mqtt.EventKind) mqtt.Event {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case e, ok := <-c.Events():
			if !ok {
				t.Fatalf("Events closed while waiting for %v", k)
			}
			if e.Kind == k {
				return e
			}
		case <-timer.C:
			t.Fatalf("no %v event within the deadline", k)
		}
	}
}

package mqtt_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// wait is the longest any test waits for something that should happen.
const wait = 20 * time.Second

// testCtx is a context that ends with the test or after wait.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	t.Cleanup(cancel)
	return ctx
}

// fastRetry reconnects at once, forever: tests about faults want the
// client back as soon as the broker is.
var fastRetry = backoff.Constant(10 * time.Millisecond)

// dial connects a client and closes it when the test ends.
func dial(t testing.TB, cfg mqtt.Config) *mqtt.Client {
	t.Helper()
	if cfg.Backoff == nil {
		cfg.Backoff = fastRetry
	}
	c, err := mqtt.Dial(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// receive waits for the next message.
func receive(t testing.TB, c *mqtt.Client) mqtt.Message {
	t.Helper()
	select {
	case m, ok := <-c.Messages():
		if !ok {
			t.Fatal("Messages closed while waiting for a message")
		}
		return m
	case <-time.After(wait):
		t.Fatal("no message within the deadline")
	}
	return mqtt.Message{}
}

// waitEvent waits for an event of kind k and returns it.
func waitEvent(t testing.TB, c *mqtt.Client, k mqtt.EventKind) mqtt.Event {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case e, ok := <-c.Events():
			if !ok {
				t.Fatalf("Events closed while waiting for %v", k)
			}
			if e.Kind == k {
				return e
			}
		case <-deadline:
			t.Fatalf("no %v event within the deadline", k)
		}
	}
}

// waitAnyEvent returns c's next event.
func waitAnyEvent(t testing.TB, c *mqtt.Client) mqtt.Event {
	t.Helper()
	select {
	case e, ok := <-c.Events():
		if !ok {
			t.Fatal("Events closed")
		}
		return e
	case <-time.After(wait):
		t.Fatal("no event within the deadline")
	}
	panic("unreachable")
}

// scripted accepts the next client connection on a scripted broker.
func scripted(t testing.TB, sb *mqtttest.ScriptedBroker) *mqtttest.ScriptedConn {
	t.Helper()
	sc, err := sb.Accept(testCtx(t))
	if err != nil {
		t.Fatalf("scripted broker: no connection: %v", err)
	}
	return sc
}

// dialScripted starts a scripted broker, dials it with cfg (its Servers
// set to the broker) and accepts the client's connection.
func dialScripted(t testing.TB, cfg mqtt.Config) (*mqtt.Client, *mqtttest.ScriptedBroker, *mqtttest.ScriptedConn) {
	t.Helper()
	sb := mqtttest.NewScriptedBroker(t)
	cfg.Servers = []string{sb.URL()}
	c := dial(t, cfg)
	return c, sb, scripted(t, sb)
}

// frame encodes p at version for a scripted broker to write.
func frame(t testing.TB, version byte, p codec.Packet) []byte {
	t.Helper()
	b, err := p.AppendTo(nil, version)
	if err != nil {
		t.Fatalf("encode %T: %v", p, err)
	}
	return b
}

// send writes packets on a scripted connection, in one write.
func send(t testing.TB, sc *mqtttest.ScriptedConn, version byte, ps ...codec.Packet) {
	t.Helper()
	var b []byte
	for _, p := range ps {
		b = append(b, frame(t, version, p)...)
	}
	if err := sc.Write(b); err != nil {
		t.Fatalf("scripted write: %v", err)
	}
}

// next reads and decodes the client's next frame on a scripted connection.
func next(t testing.TB, sc *mqtttest.ScriptedConn, version byte) codec.Packet {
	t.Helper()
	b, err := sc.ReadFrame(testCtx(t))
	if err != nil {
		t.Fatalf("scripted read: %v", err)
	}
	p, _, err := codec.Decode(b, version, 0)
	if err != nil {
		t.Fatalf("decode the client's frame % x: %v", b, err)
	}
	return p
}

// nextOf reads the client's next frame and checks its type.
func nextOf[P codec.Packet](t testing.TB, sc *mqtttest.ScriptedConn, version byte) P {
	t.Helper()
	p := next(t, sc, version)
	got, ok := p.(P)
	if !ok {
		var want P
		t.Fatalf("client sent %T (%+v), want %T", p, p, want)
	}
	return got
}

// isClosedErr reports whether err is the client's ErrClosed.
func isClosedErr(err error) bool { return errors.Is(err, mqtt.ErrClosed) }

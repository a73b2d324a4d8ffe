package mqtt_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
	"github.com/robustmqtt/mqtt/store"
)

// start starts a client without waiting for a connection and closes it
// when the test ends.
func start(t testing.TB, cfg mqtt.Config) *mqtt.Client {
	t.Helper()
	if cfg.Backoff == nil {
		cfg.Backoff = fastRetry
	}
	c, err := mqtt.Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A device that boots while the broker is away: Start returns at once,
// the alarm waits in the queue, the button press whose window closes
// before the broker is back is withdrawn, a subscribe waits for the
// connection, and once the broker listens the client connects (Connected,
// WaitConnected) and sends what still matters.
func TestStartWhileBrokerIsAway(t *testing.T) {
	ctx := testCtx(t)
	b := mqtttest.NewBroker(t)
	monitor := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "start-monitor"})
	if err := monitor.Subscribe(ctx, mqtt.Subscription{Filter: "home/#", QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}

	c := start(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "start-device"})
	// An attempt was made, and refused: the client is running, offline.
	if e := waitEvent(t, c, mqtt.Reconnecting); !errors.Is(e.Err, syscall.ECONNREFUSED) {
		t.Fatalf("Reconnecting after %v, want the refused connection", e.Err)
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.WaitConnected(gone); !errors.Is(err, context.Canceled) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("WaitConnected with an ended ctx, offline: %v; want the ctx's error and the last attempt's", err)
	}

	alarm := c.PublishAsync(ctx, mqtt.Message{Topic: "home/alarm", Payload: []byte("broken"), QoS: mqtt.AtLeastOnce})
	press, cancelPress := context.WithTimeout(ctx, time.Second)
	defer cancelPress()
	button := c.PublishAsync(press, mqtt.Message{Topic: "home/button", Payload: []byte("ring"), QoS: mqtt.AtLeastOnce})
	subscribed := make(chan error, 1)
	go func() { subscribed <- c.Subscribe(ctx, mqtt.Subscription{Filter: "device/cmd", QoS: mqtt.AtLeastOnce}) }()

	if err := <-button; !errors.Is(err, mqtt.ErrWithdrawn) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("button press after its window closed offline: %v, want ErrWithdrawn and DeadlineExceeded", err)
	}
	select {
	case err := <-alarm:
		t.Fatalf("alarm finished while the broker is away: %v", err)
	case err := <-subscribed:
		t.Fatalf("Subscribe returned while the broker is away: %v", err)
	default:
	}

	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, c, mqtt.Connected)
	if e.Server != b.URL() || e.SessionPresent || e.ClientID != "start-device" {
		t.Errorf("Connected event %+v, want server %s, no session present, client ID start-device", e, b.URL())
	}
	if err := c.WaitConnected(ctx); err != nil {
		t.Fatalf("WaitConnected once connected: %v", err)
	}
	if err := <-alarm; err != nil {
		t.Fatalf("alarm: %v", err)
	}
	if err := <-subscribed; err != nil {
		t.Fatalf("Subscribe made offline: %v", err)
	}
	if m := receive(t, monitor); m.Topic != "home/alarm" || string(m.Payload) != "broken" {
		t.Fatalf("monitor got %s=%s, want the alarm", m.Topic, m.Payload)
	}
	// The press never goes out: the next message after the alarm is this.
	if err := c.Publish(ctx, mqtt.Message{Topic: "home/end", QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, monitor); m.Topic != "home/end" {
		t.Fatalf("monitor got %s=%s, which was withdrawn", m.Topic, m.Payload)
	}
	if err := b.Publish("device/cmd", []byte("reboot"), 1, false); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, c); m.Topic != "device/cmd" {
		t.Fatalf("got %s, want the command on the subscription made offline", m.Topic)
	}
	st := c.Stats().Publishes[mqtt.AtLeastOnce]
	if st.Acknowledged != 2 || st.Withdrawn != 1 {
		t.Errorf("QoS 1 stats %+v, want 2 acknowledged, 1 withdrawn", st)
	}
}

// With backoff.Never and no broker, the client Start returned stops after
// its one attempt: GaveUp says why, WaitConnected returns that error
// (which Err returns too), and a publish waiting in the queue gets
// ErrClosed.
func TestStartNeverGivesUp(t *testing.T) {
	url := closedPort(t)
	c, err := mqtt.Start(mqtt.Config{Servers: []string{url}, ClientID: "start-never", Backoff: backoff.Never()})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer c.Close()
	queued := c.PublishAsync(testCtx(t), mqtt.Message{Topic: "t", QoS: mqtt.AtLeastOnce})
	err = c.WaitConnected(testCtx(t))
	if !errors.Is(err, mqtt.ErrGaveUp) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("WaitConnected: %v, want ErrGaveUp and the refused connection", err)
	}
	if err != c.Err() {
		t.Errorf("WaitConnected: %v; Err: %v; want the same error", err, c.Err())
	}
	if want := "cannot connect to " + url; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if e := waitEvent(t, c, mqtt.GaveUp); e.Err.Error() != err.Error() {
		t.Errorf("GaveUp event says %q, WaitConnected %q", e.Err, err)
	}
	if err := <-queued; !errors.Is(err, mqtt.ErrClosed) {
		t.Errorf("publish queued when the client gave up: %v, want ErrClosed", err)
	}
	if err := c.WaitConnected(testCtx(t)); err != c.Err() {
		t.Errorf("WaitConnected again: %v, want Err", err)
	}
}

// WaitConnected is about now: nil at once while connected, and after a
// loss it waits for the next connection. After Close it says ErrClosed.
func TestWaitConnectedFollowsTheConnection(t *testing.T) {
	b := mqtttest.NewBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "wait-now"})
	gone, cancel := context.WithCancel(testCtx(t))
	cancel()
	// Connected wins over an ended ctx.
	if err := c.WaitConnected(gone); err != nil {
		t.Fatalf("WaitConnected while connected: %v", err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, c, mqtt.ConnectionLost)
	if err := c.WaitConnected(gone); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitConnected after the loss: %v, want the ctx's error", err)
	}
	waiting := make(chan error, 1)
	go func() { waiting <- c.WaitConnected(testCtx(t)) }()
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := <-waiting; err != nil {
		t.Fatalf("WaitConnected across the reconnect: %v", err)
	}
	c.Close()
	if err := c.WaitConnected(testCtx(t)); err != mqtt.ErrClosed {
		t.Fatalf("WaitConnected after Close: %v, want ErrClosed", err)
	}
	if err := c.WaitConnected(nil); err == nil { // a nil ctx, as a user passed it
		t.Fatal("WaitConnected(nil): no error")
	}
}

// Start restores Config.Store before it returns: what an earlier client
// could not send goes out on the first connection of a client that was
// started while the broker was away. A store that holds another client's
// session is Start's error, and nothing starts.
func TestStartRestoresStore(t *testing.T) {
	ctx := testCtx(t)
	st, err := store.Open(filepath.Join(t.TempDir(), "session"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b := mqtttest.NewBroker(t)
	sub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "start-store-sub"})
	if err := sub.Subscribe(ctx, mqtt.Subscription{Filter: "s/#", QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	cfg := mqtt.Config{Servers: []string{b.URL()}, ClientID: "start-store", Store: st}

	first := start(t, cfg)
	kept := first.PublishAsync(ctx, mqtt.Message{Topic: "s/kept", Payload: []byte("1"), QoS: mqtt.AtLeastOnce})
	first.Close()
	if err := <-kept; !errors.Is(err, mqtt.ErrInStore) {
		t.Fatalf("publish when the client closed offline: %v, want ErrInStore", err)
	}

	if _, err := mqtt.Start(mqtt.Config{Servers: cfg.Servers, ClientID: "someone-else", Store: st}); err == nil ||
		!strings.Contains(err.Error(), `holds the session of client ID "start-store"`) {
		t.Fatalf("Start with another client's store: %v, want an error naming its owner", err)
	}

	again := start(t, cfg)
	later := again.PublishAsync(ctx, mqtt.Message{Topic: "s/later", Payload: []byte("2"), QoS: mqtt.AtLeastOnce})
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := <-later; err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"s/kept", "s/later"} {
		if m := receive(t, sub); m.Topic != want {
			t.Fatalf("got %s, want %s: the stored message goes first", m.Topic, want)
		}
	}
}

// Offline from the start, in fake time: the dialer refuses until the
// broker is "up", the press with a 1 s window is withdrawn at 1 s, the
// alarm goes out on the connection that the 5 s backoff makes at 5 s, and
// Connected and WaitConnected say so then.
func TestStartOfflineInFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var up atomic.Bool
		var dials atomic.Int32
		dialer := func(ctx context.Context, server string) (net.Conn, error) {
			dials.Add(1)
			if !up.Load() {
				return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
			}
			return ackingBroker(), nil
		}
		begin := time.Now()
		c, err := mqtt.Start(mqtt.Config{Servers: []string{"tcp://pipe:1883"}, ClientID: "fake-time",
			Dial: dialer, Backoff: backoff.Constant(5 * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx := t.Context()
		alarm := c.PublishAsync(ctx, mqtt.Message{Topic: "alarm", QoS: mqtt.AtLeastOnce})
		press, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		err = c.Publish(press, mqtt.Message{Topic: "button", QoS: mqtt.AtLeastOnce})
		if !errors.Is(err, mqtt.ErrWithdrawn) || time.Since(begin) != time.Second {
			t.Fatalf("press after %s: %v, want ErrWithdrawn at 1s", time.Since(begin), err)
		}
		up.Store(true) // the broker comes back; the next attempt is at 5 s
		if err := c.WaitConnected(ctx); err != nil || time.Since(begin) != 5*time.Second {
			t.Fatalf("WaitConnected after %s: %v, want nil at 5s", time.Since(begin), err)
		}
		if err := <-alarm; err != nil {
			t.Fatalf("alarm: %v", err)
		}
		var kinds []mqtt.EventKind
		for len(kinds) < 2 {
			kinds = append(kinds, (<-c.Events()).Kind)
		}
		if kinds[0] != mqtt.Reconnecting || kinds[1] != mqtt.Connected || dials.Load() != 2 {
			t.Fatalf("events %v after %d dials, want reconnecting, connected after 2", kinds, dials.Load())
		}
	})
}

// ackingBroker is the client's end of a net.Pipe to a broker that accepts
// the connection and acknowledges every QoS 1 PUBLISH.
func ackingBroker() net.Conn {
	client, broker := net.Pipe()
	go func() {
		defer broker.Close()
		br := bufio.NewReader(broker)
		for {
			p, err := codec.ReadPacket(br, 4, 0)
			if err != nil {
				return
			}
			var answer codec.Packet
			switch p := p.(type) {
			case *codec.Connect:
				answer = &codec.Connack{}
			case *codec.Publish:
				answer = &codec.Puback{PacketID: p.PacketID}
			case *codec.Pingreq:
				answer = &codec.Pingresp{}
			case *codec.Disconnect:
				return
			}
			if answer != nil {
				b, _ := answer.AppendTo(nil, 4)
				if _, err := broker.Write(b); err != nil {
					return
				}
			}
		}
	}()
	return client
}

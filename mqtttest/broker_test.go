package mqtttest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/robustmqtt/mqtt/mqtttest"
)

// forVersions runs f as a subtest for MQTT 3.1.1 and for MQTT 5.
func forVersions(t *testing.T, f func(t *testing.T, version byte)) {
	for _, version := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", version), func(t *testing.T) { f(t, version) })
	}
}

// leave makes a persistent session subscribed to filter at QoS 1, whose
// client then leaves without DISCONNECT; it returns once the broker knows.
func leave(t *testing.T, b *mqtttest.Broker, version byte, clientID, filter string) {
	t.Helper()
	sub, connack := connect(t, b.Addr(), version, clientID, true)
	if connack.SessionPresent {
		t.Fatal("session present on the first connection")
	}
	sub.subscribe(filter, 1)
	_ = sub.conn.Close()
	if err := b.WaitDisconnected(testCtx(t), clientID); err != nil {
		t.Fatal(err)
	}
}

func TestBrokerPublishSubscribe(t *testing.T) {
	forVersions(t, func(t *testing.T, version byte) {
		b := mqtttest.NewBroker(t)
		ctx := testCtx(t)
		sub, _ := connect(t, b.Addr(), version, "sub", false)
		sub.subscribe("a/+", 1)
		pub, _ := connect(t, b.Addr(), version, "pub", false)
		if err := b.WaitConnected(ctx, "pub"); err != nil {
			t.Fatal(err)
		}
		if got, want := b.Connected(), []string{"pub", "sub"}; !slices.Equal(got, want) {
			t.Errorf("Connected() = %q, want %q", got, want)
		}
		if got := b.Accepted(); got != 2 {
			t.Errorf("Accepted() = %d, want 2", got)
		}

		pub.publish("a/b", "hello", 1, 7)
		if m := sub.receive(); m.TopicName != "a/b" || string(m.Payload) != "hello" || m.FixedHeader.Qos != 1 {
			t.Errorf("received %q %q QoS %d", m.TopicName, m.Payload, m.FixedHeader.Qos)
		}
		if err := b.Publish("a/c", []byte("from the broker"), 1, false); err != nil {
			t.Fatal(err)
		}
		if m := sub.receive(); m.TopicName != "a/c" || string(m.Payload) != "from the broker" {
			t.Errorf("received %q %q", m.TopicName, m.Payload)
		}
	})
}

func TestBrokerURL(t *testing.T) {
	b := mqtttest.NewBroker(t)
	host, port, err := net.SplitHostPort(b.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr() = %q (%v), want 127.0.0.1 and a port", b.Addr(), err)
	}
	if b.URL() != "tcp://"+b.Addr() {
		t.Errorf("URL() = %q, Addr() = %q", b.URL(), b.Addr())
	}
	if b.Server() == nil {
		t.Error("Server() = nil")
	}
}

// Stop must look like a crash or an outage: connections end without a
// DISCONNECT (which mochi would send even to 3.1.1 clients) and the port
// refuses connections; Start brings back the same port.
func TestBrokerStopStart(t *testing.T) {
	b := mqtttest.NewBroker(t)
	ctx := testCtx(t)
	addr := b.Addr()
	c, _ := connect(t, addr, 4, "c", false)
	if err := b.WaitConnected(ctx, "c"); err != nil {
		t.Fatal(err)
	}

	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	c.expectEOF()
	if got := b.Connected(); len(got) != 0 {
		t.Errorf("Connected() after Stop = %q", got)
	}
	if _, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial a stopped broker: %v, want connection refused", err)
	}
	if err := b.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if b.Addr() != addr {
		t.Fatalf("Addr() = %q after Start, was %q", b.Addr(), addr)
	}
	connect(t, addr, 4, "c", false)
	if got := b.Accepted(); got != 2 {
		t.Errorf("Accepted() = %d, want 2", got)
	}
}

// The seed's promise: a persistent subscriber gets, when it comes back,
// what was published while it was away, across broker restarts.
func TestBrokerPersistentSessionSurvivesRestart(t *testing.T) {
	forVersions(t, func(t *testing.T, version byte) {
		b := mqtttest.NewBroker(t)
		ctx := testCtx(t)
		leave(t, b, version, "alarm-panel", "alarm/#")
		if err := b.Restart(); err != nil {
			t.Fatal(err)
		}

		pub, _ := connect(t, b.Addr(), version, "window", false)
		var want []string
		for i := range 10 {
			want = append(want, fmt.Sprintf("broken %d", i))
		}
		for i, p := range want {
			pub.publish("alarm/window", p, 1, uint16(i+1))
		}
		// Restart at once: mochi sends PUBACK before it routes the
		// message, so this checks that Stop waits for the routing.
		if err := b.Restart(); err != nil {
			t.Fatal(err)
		}
		if n := b.Inflight("alarm-panel"); n != len(want) {
			t.Fatalf("Inflight after restart = %d, want %d", n, len(want))
		}
		if !b.HasSession("alarm-panel") {
			t.Fatal("HasSession = false for a persistent session")
		}

		sub, connack := connect(t, b.Addr(), version, "alarm-panel", true)
		if !connack.SessionPresent {
			t.Fatal("session not present after restart")
		}
		var got []string
		for range want {
			m := sub.receive()
			if m.TopicName != "alarm/window" || m.FixedHeader.Qos != 1 {
				t.Errorf("received %q at QoS %d", m.TopicName, m.FixedHeader.Qos)
			}
			got = append(got, string(m.Payload))
		}
		// In order: mochi alone would mix up the messages of a second.
		if !slices.Equal(got, want) {
			t.Errorf("received %q, want %q", got, want)
		}
		if err := b.Wait(ctx, func() bool { return b.Inflight("alarm-panel") == 0 }); err != nil {
			t.Fatalf("PUBACKs not processed: %v", err)
		}

		pub, _ = connect(t, b.Addr(), version, "window", false)
		pub.publish("alarm/window", "live", 1, 9)
		if m := sub.receive(); string(m.Payload) != "live" {
			t.Errorf("received %q, want live", m.Payload)
		}
	})
}

// slowRouting makes mochi slow to queue a message for a subscriber, after
// it has sent the publisher its PUBACK.
type slowRouting struct{ mqtt.HookBase }

func (h *slowRouting) ID() string           { return "slow-routing" }
func (h *slowRouting) Provides(b byte) bool { return b == mqtt.OnQosComplete }

// OnQosComplete runs between mochi's PUBACK and its routing.
func (h *slowRouting) OnQosComplete(*mqtt.Client, packets.Packet) {
	time.Sleep(50 * time.Millisecond) // slow work, not a wait
}

// A restart right after a PUBACK must not lose the message mochi has
// acknowledged but not yet routed: Stop waits for the routing.
func TestBrokerStopWaitsForRouting(t *testing.T) {
	b := mqtttest.NewBroker(t)
	leave(t, b, 4, "sub", "t")
	if err := b.Server().AddHook(new(slowRouting), nil); err != nil {
		t.Fatal(err)
	}

	pub, _ := connect(t, b.Addr(), 4, "pub", false)
	pub.publish("t", "acknowledged", 1, 1)
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	if n := b.Inflight("sub"); n != 1 {
		t.Fatalf("Inflight right after Restart = %d, want 1", n)
	}
}

func TestBrokerCleanSessionEndsWithConnection(t *testing.T) {
	b := mqtttest.NewBroker(t)
	ctx := testCtx(t)
	sub, _ := connect(t, b.Addr(), 4, "sub", false)
	sub.subscribe("t", 1)
	if !b.HasSession("sub") {
		t.Fatal("HasSession = false while connected")
	}
	_ = sub.conn.Close()
	if err := b.WaitDisconnected(ctx, "sub"); err != nil {
		t.Fatal(err)
	}
	if b.HasSession("sub") {
		t.Fatal("clean session kept after disconnect")
	}
	if err := b.Publish("t", []byte("x"), 1, false); err != nil {
		t.Fatal(err)
	}
	if n := b.Inflight("sub"); n != 0 {
		t.Fatalf("Inflight = %d for a clean session that left", n)
	}
}

// WaitInflight is how a test knows a message for an offline subscriber is
// queued without restarting the broker.
func TestBrokerWaitInflight(t *testing.T) {
	b := mqtttest.NewBroker(t)
	ctx := testCtx(t)
	leave(t, b, 4, "sub", "t")
	pub, _ := connect(t, b.Addr(), 4, "pub", false)
	pub.publish("t", "1", 1, 1)
	pub.publish("t", "2", 1, 2)
	if err := b.WaitInflight(ctx, "sub", 2); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish("t", []byte("3"), 1, false); err != nil {
		t.Fatal(err)
	}
	if n := b.Inflight("sub"); n != 3 {
		t.Fatalf("Inflight after Broker.Publish = %d, want 3", n)
	}

	short, cancel := context.WithCancel(ctx)
	cancel()
	err := b.WaitInflight(short, "sub", 4)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitInflight with a cancelled ctx = %v, want context.Canceled", err)
	}

	sub, _ := connect(t, b.Addr(), 4, "sub", true)
	sub.receivePayloads("1", "2", "3")
}

func TestBrokerKick(t *testing.T) {
	b := mqtttest.NewBroker(t)
	ctx := testCtx(t)
	a, _ := connect(t, b.Addr(), 4, "a", true)
	a.subscribe("t", 1)
	c, _ := connect(t, b.Addr(), 5, "c", false)
	if err := b.WaitConnected(ctx, "c"); err != nil {
		t.Fatal(err)
	}

	b.Kick()
	a.expectEOF()
	c.expectEOF()
	if got := b.Connected(); len(got) != 0 {
		t.Fatalf("Connected() after Kick = %q", got)
	}

	_, connack := connect(t, b.Addr(), 4, "a", true)
	if !connack.SessionPresent {
		t.Error("persistent session lost by Kick")
	}
	if got := b.Accepted(); got != 3 {
		t.Errorf("Accepted() = %d, want 3", got)
	}
}

// Stop drops connections the way a network does, so the broker publishes
// the wills of the clients it drops.
func TestBrokerStopPublishesWills(t *testing.T) {
	b := mqtttest.NewBroker(t)
	watcher, _ := connect(t, b.Addr(), 4, "watcher", true)
	watcher.subscribe("will/#", 1)

	w := dialRaw(t, b.Addr(), 4)
	w.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: "w",
			Clean:            true,
			WillFlag:         true,
			WillTopic:        "will/w",
			WillPayload:      []byte("gone"),
			WillQos:          1,
		},
	})
	if ack := w.recv(); ack.FixedHeader.Type != packets.Connack {
		t.Fatalf("CONNACK expected, got type %d", ack.FixedHeader.Type)
	}

	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	watcher, _ = connect(t, b.Addr(), 4, "watcher", true)
	if m := watcher.receive(); m.TopicName != "will/w" || string(m.Payload) != "gone" {
		t.Errorf("received %q %q, want the will", m.TopicName, m.Payload)
	}
}

func TestBrokerClose(t *testing.T) {
	b, err := mqtttest.StartBroker()
	if err != nil {
		t.Fatal(err)
	}
	connect(t, b.Addr(), 4, "c", false)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Start(); !errors.Is(err, mqtttest.ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
	if err := b.Restart(); !errors.Is(err, mqtttest.ErrClosed) {
		t.Fatalf("Restart after Close = %v, want ErrClosed", err)
	}
	b.Kick()
	if err := b.Stop(); err != nil {
		t.Fatalf("Stop after Close = %v", err)
	}
	if _, err := net.Dial("tcp", b.Addr()); err == nil {
		t.Fatal("a closed broker accepted a connection")
	}
}

// syncBuffer is a bytes.Buffer safe for a logger used by many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func TestBrokerConfig(t *testing.T) {
	var log syncBuffer
	b := mqtttest.NewBrokerWith(t, mqtttest.BrokerConfig{
		Logger: slog.New(slog.NewTextHandler(&log, nil)),
		Configure: func(o *mqtt.Options) {
			o.Capabilities.ReceiveMaximum = 7
		},
	})
	_, connack := connect(t, b.Addr(), 5, "c", false)
	if got := connack.Properties.ReceiveMaximum; got != 7 {
		t.Errorf("CONNACK receive maximum = %d, want 7 from Configure", got)
	}
	if !bytes.Contains([]byte(log.String()), []byte("mochi mqtt")) {
		t.Errorf("nothing logged to BrokerConfig.Logger: %q", log.String())
	}
}

func TestBrokerConfigAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if _, err := mqtttest.StartBrokerWith(mqtttest.BrokerConfig{Addr: addr}); err == nil {
		t.Fatal("StartBrokerWith on a busy address succeeded")
	}
	_ = ln.Close()
	b := mqtttest.NewBrokerWith(t, mqtttest.BrokerConfig{Addr: addr})
	if b.Addr() != addr {
		t.Fatalf("Addr() = %q, want %q", b.Addr(), addr)
	}
	connect(t, addr, 4, "c", false)
}

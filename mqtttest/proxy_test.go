package mqtttest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt/mqtttest"
)

// newTarget starts a TCP server for a proxy to forward to and hands the
// test the server side of each connection it accepts.
func newTarget(t *testing.T) (addr string, accepted <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan net.Conn, 16)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		close(ch)
		for c := range ch {
			_ = c.Close()
		}
	})
	return ln.Addr().String(), ch
}

// pair connects a client through p to the target and returns both ends.
func pair(t *testing.T, p *mqtttest.Proxy, accepted <-chan net.Conn) (client, server net.Conn) {
	t.Helper()
	client, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	select {
	case server = <-accepted:
	case <-time.After(ioTimeout):
		t.Fatal("the proxy did not connect to the target")
	}
	t.Cleanup(func() { _ = server.Close() })
	return client, server
}

// send writes s to c.
func send(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
}

// expect reads len(want) bytes from c and compares them with want.
func expect(t *testing.T, c net.Conn, want string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
		t.Fatalf("read %q (%v), want %q", got, err, want)
	}
}

// expectEnd fails unless c ends without more data.
func expectEnd(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
	b, err := io.ReadAll(c)
	if len(b) > 0 || err != nil && !isReset(err) {
		t.Fatalf("end of connection expected, read %q, error %v", b, err)
	}
}

// expectRejected fails unless a connection to addr fails: the reset comes
// either before the dial has returned or at the first read.
func expectRejected(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		if !isReset(err) {
			t.Fatalf("dial %s: %v, want a reset", addr, err)
		}
		return
	}
	defer c.Close()
	expectEnd(t, c)
}

// expectOpen fails unless nothing arrives on c, and c stays open, for d.
func expectOpen(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	if n, err := c.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("open, silent connection expected, read %q, error %v", b[:n], err)
	}
}

// waitStats waits until cond holds for p's counters.
func waitStats(t *testing.T, p *mqtttest.Proxy, cond func(mqtttest.ProxyStats) bool) {
	t.Helper()
	if err := p.WaitStats(testCtx(t), cond); err != nil {
		t.Fatalf("%v; stats %+v", err, p.Stats())
	}
}

func TestProxyForwards(t *testing.T) {
	target, accepted := newTarget(t)
	p := mqtttest.NewProxy(t, target)
	if p.URL() != "tcp://"+p.Addr() {
		t.Errorf("URL() = %q, Addr() = %q", p.URL(), p.Addr())
	}
	client, server := pair(t, p, accepted)
	send(t, client, "ping")
	expect(t, server, "ping")
	send(t, server, "pong!")
	expect(t, client, "pong!")
	waitStats(t, p, func(s mqtttest.ProxyStats) bool {
		return s == mqtttest.ProxyStats{Accepted: 1, Active: 1, BytesUp: 4, BytesDown: 5}
	})

	_ = client.Close()
	expectEnd(t, server)
	waitStats(t, p, func(s mqtttest.ProxyStats) bool { return s.Active == 0 })
}

func TestProxyCut(t *testing.T) {
	target, accepted := newTarget(t)
	p := mqtttest.NewProxy(t, target)
	client, server := pair(t, p, accepted)
	client2, server2 := pair(t, p, accepted)
	waitStats(t, p, func(s mqtttest.ProxyStats) bool { return s.Active == 2 })

	p.Cut()
	if s := p.Stats(); s.Active != 0 {
		t.Errorf("Active = %d after Cut", s.Active)
	}
	for _, c := range []net.Conn{client, server, client2, server2} {
		expectEnd(t, c)
	}

	client, server = pair(t, p, accepted)
	send(t, client, "after the cut")
	expect(t, server, "after the cut")
}

// Blackhole is the half-dead link: nothing passes, not even the end of a
// connection, and nothing tells either side.
func TestProxyBlackhole(t *testing.T) {
	target, accepted := newTarget(t)
	p := mqtttest.NewProxy(t, target)
	client, server := pair(t, p, accepted)

	p.Blackhole(true)
	send(t, client, "lost")
	send(t, server, "gone")
	waitStats(t, p, func(s mqtttest.ProxyStats) bool { return s.Dropped == 8 })
	_ = client.Close()
	expectOpen(t, server, 200*time.Millisecond)

	p.Blackhole(false)
	expectEnd(t, server) // the close comes through, the data never does
	if s := p.Stats(); s.BytesUp != 0 || s.BytesDown != 0 {
		t.Errorf("bytes forwarded while black-holed: %+v", s)
	}

	client, server = pair(t, p, accepted)
	send(t, client, "back")
	expect(t, server, "back")
}

// The case Blackhole exists for: the broker gives up on a silent client
// after its keepalive, and the client hears nothing about it.
func TestProxyBlackholeKeepalive(t *testing.T) {
	b := mqtttest.NewBroker(t)
	p := mqtttest.NewProxy(t, b.Addr())
	ctx := testCtx(t)
	c := dialRaw(t, p.Addr(), 4)
	c.handshake("sensor", false, 1) // mochi drops it after 1 s of silence

	p.Blackhole(true)
	if err := b.WaitDisconnected(ctx, "sensor"); err != nil {
		t.Fatal(err)
	}
	c.expectSilence(200 * time.Millisecond)

	p.Blackhole(false)
	c.expectEOF()
}

func TestProxyLatency(t *testing.T) {
	target, accepted := newTarget(t)
	p := mqtttest.NewProxy(t, target)
	const d = 50 * time.Millisecond
	p.Latency(d)
	client, server := pair(t, p, accepted)

	start := time.Now()
	send(t, client, "ping")
	expect(t, server, "ping")
	send(t, server, "pong")
	expect(t, client, "pong")
	if rtt := time.Since(start); rtt < 2*d {
		t.Errorf("round trip took %v, want at least %v", rtt, 2*d)
	}

	// Many small writes keep their order.
	var want bytes.Buffer
	for i := range 200 {
		s := string(rune('a' + i%26))
		want.WriteString(s)
		send(t, client, s)
	}
	expect(t, server, want.String())

	p.Latency(0)
	send(t, client, "fast")
	expect(t, server, "fast")
}

// The end of a connection travels like data: a target that closes as soon
// as it reads a packet is seen to close a round trip after the packet was
// sent.
func TestProxyLatencyDelaysTheEnd(t *testing.T) {
	target, accepted := newTarget(t)
	p := mqtttest.NewProxy(t, target)
	const d = 50 * time.Millisecond
	p.Latency(d)
	client, server := pair(t, p, accepted)

	start := time.Now()
	send(t, client, "refused")
	expect(t, server, "refused")
	_ = server.Close()
	expectEnd(t, client)
	if took := time.Since(start); took < 2*d {
		t.Errorf("the end came %v after the packet, want at least %v", took, 2*d)
	}
}

// A whole MQTT exchange survives being chopped into one-byte writes.
func TestProxySplitWrites(t *testing.T) {
	b := mqtttest.NewBroker(t)
	p := mqtttest.NewProxy(t, b.Addr())
	p.SplitWrites(1)
	sub, _ := connect(t, p.Addr(), 5, "sub", false)
	sub.subscribe("t", 1)
	pub, _ := connect(t, p.Addr(), 5, "pub", false)
	pub.publish("t", "in pieces", 1, 1)
	if m := sub.receive(); string(m.Payload) != "in pieces" {
		t.Errorf("received %q", m.Payload)
	}
	p.SplitWrites(0)
	pub.publish("t", "whole", 1, 2)
	if m := sub.receive(); string(m.Payload) != "whole" {
		t.Errorf("received %q", m.Payload)
	}
}

func TestProxyRefuse(t *testing.T) {
	target, accepted := newTarget(t)
	p := mqtttest.NewProxy(t, target)
	kept, keptServer := pair(t, p, accepted)

	p.Refuse(true)
	expectRejected(t, p.Addr())
	waitStats(t, p, func(s mqtttest.ProxyStats) bool { return s.Refused == 1 && s.Accepted == 2 })
	select {
	case <-accepted:
		t.Fatal("a refused connection reached the target")
	default:
	}
	send(t, kept, "still here") // current connections are not affected
	expect(t, keptServer, "still here")

	p.Refuse(false)
	client, server := pair(t, p, accepted)
	send(t, client, "ok")
	expect(t, server, "ok")
}

func TestProxyTargetDown(t *testing.T) {
	b := mqtttest.NewBroker(t)
	p := mqtttest.NewProxy(t, b.Addr())
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	expectRejected(t, p.Addr())
	waitStats(t, p, func(s mqtttest.ProxyStats) bool { return s.Accepted == 1 && s.Active == 0 })

	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	connect(t, p.Addr(), 4, "c", false)
}

func TestProxyClose(t *testing.T) {
	target, accepted := newTarget(t)
	p, err := mqtttest.StartProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	client, server := pair(t, p, accepted)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	expectEnd(t, client)
	expectEnd(t, server)
	if _, err := net.Dial("tcp", p.Addr()); err == nil {
		t.Fatal("a closed proxy accepted a connection")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.WaitStats(ctx, func(mqtttest.ProxyStats) bool { return false }); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitStats with a cancelled ctx = %v", err)
	}
}

// Dial reaches the proxy after the handshake's time, as over a slow link,
// and gives up when its ctx ends first.
func TestProxyDialTakesTheHandshake(t *testing.T) {
	target, accepted := newTarget(t)
	p := mqtttest.NewProxy(t, target)
	const d = 50 * time.Millisecond
	start := time.Now()
	client, err := p.Dial(d)(t.Context(), p.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if took := time.Since(start); took < d {
		t.Errorf("the dial took %v, want at least %v", took, d)
	}
	var server net.Conn
	select {
	case server = <-accepted:
	case <-time.After(ioTimeout):
		t.Fatal("the proxy did not connect to the target")
	}
	defer server.Close()
	send(t, client, "through")
	expect(t, server, "through")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := p.Dial(time.Hour)(ctx, p.URL()); !errors.Is(err, context.Canceled) {
		t.Fatalf("a dial whose ctx ended: %v, want context.Canceled", err)
	}
}

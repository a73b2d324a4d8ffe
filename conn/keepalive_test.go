package conn_test

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
)

// sink reads and discards what the client writes (its PINGREQs), without
// answering, until the pipe closes: a broker that is busy sending.
func sink(nc net.Conn) {
	br := bufio.NewReader(nc)
	for {
		if _, err := codec.ReadPacket(br, codec.V311, 0); err != nil {
			return
		}
	}
}

// trickle writes the first n bytes of frame to nc, one byte every interval,
// in the background, until they are written, the pipe closes or the test
// ends. The returned channel is closed when it stops.
func trickle(t *testing.T, nc net.Conn, frame []byte, n int, every time.Duration) <-chan struct{} {
	sent, stop := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stop); <-sent })
	go func() {
		defer close(sent)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := range n {
			select {
			case <-tick.C:
			case <-stop:
				return
			}
			if _, err := nc.Write(frame[i : i+1]); err != nil {
				return
			}
		}
	}()
	return sent
}

// slowPublish is a 300-byte QoS 0 PUBLISH frame.
func slowPublish(t *testing.T) (*codec.Publish, []byte) {
	t.Helper()
	pub := &codec.Publish{Topic: "t", Payload: bytes.Repeat([]byte{'x'}, 294)}
	frame, err := pub.AppendTo(nil, codec.V311)
	if err != nil || len(frame) != 300 {
		t.Fatalf("PUBLISH frame: %d bytes, %v; want 300", len(frame), err)
	}
	return pub, frame
}

// Every byte received is proof of life, not only a whole frame: a 300-byte
// PUBLISH that takes 3 s to arrive at one byte per 10 ms, on a connection
// with a 1 s keepalive, is delivered, and the connection stays up (before,
// it was declared dead 1.25 s in, with the frame a third of the way).
// Silence, whole or in the middle of a frame, is still fatal within 1.5
// keepalive intervals of the last byte.
func TestKeepaliveCountsEveryByte(t *testing.T) {
	t.Run("slow frame", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			inbound := make(chan conn.Inbound, 1)
			c, p, _ := establish(t, codec.V311, 1, &codec.Connack{}, inbound)
			pub, frame := slowPublish(t)
			go sink(p.nc)
			start := time.Now()
			errs := run(c)
			sent := trickle(t, p.nc, frame, len(frame), 10*time.Millisecond)
			select {
			case in := <-inbound:
				got, ok := in.Packet.(*codec.Publish)
				if !ok || got.Topic != pub.Topic || !bytes.Equal(got.Payload, pub.Payload) {
					t.Fatalf("got %+v, want the 300-byte PUBLISH", in)
				}
				if d := time.Since(start); d != 3*time.Second {
					t.Fatalf("PUBLISH delivered after %s, want 3s (300 bytes, one per 10ms)", d)
				}
			case err := <-errs:
				t.Fatalf("connection ended %s in, while the PUBLISH was still arriving: %v", time.Since(start), err)
			}
			<-sent
			if err := c.Err(); err != nil {
				t.Fatalf("Err = %v after the PUBLISH, want a live connection", err)
			}
			c.Close()
			<-errs
			<-errs
		})
	})
	t.Run("silent link", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, p, _ := establish(t, codec.V311, 1, &codec.Connack{}, make(chan conn.Inbound))
			go sink(p.nc)
			start := time.Now()
			errs := run(c)
			err := <-errs
			if !errors.Is(err, conn.ErrKeepAliveTimeout) {
				t.Fatalf("loop ended with %v, want ErrKeepAliveTimeout", err)
			}
			// PINGREQ at 0.75s (1s less the quarter margin), dead half
			// an interval later.
			if d := time.Since(start); d != 1250*time.Millisecond {
				t.Fatalf("declared dead after %s, want 1.25s", d)
			}
			<-errs
		})
	})
	t.Run("silent mid-frame", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			inbound := make(chan conn.Inbound, 1)
			c, p, _ := establish(t, codec.V311, 1, &codec.Connack{}, inbound)
			_, frame := slowPublish(t)
			go sink(p.nc)
			errs := run(c)
			sent := trickle(t, p.nc, frame, 100, 10*time.Millisecond) // a third, then nothing
			<-sent
			last := time.Now()
			var err error
			select {
			case err = <-errs:
			case in := <-inbound:
				t.Fatalf("got %+v from a frame that never completed", in)
			}
			if !errors.Is(err, conn.ErrKeepAliveTimeout) {
				t.Fatalf("loop ended with %v, want ErrKeepAliveTimeout", err)
			}
			if d := time.Since(last); d > 1500*time.Millisecond {
				t.Fatalf("declared dead %s after the last byte, want at most 1.5s (1.5 keepalive)", d)
			}
			<-errs
		})
	})
}

// On a link slower than half the keepalive (a 2 s keepalive over a link
// whose round trip, as CONNECT/CONNACK measured it, is 1.5 s), the
// PINGRESP gets two round trips: one that comes 1.4 s after the PINGREQ
// keeps the connection, and silence is still fatal, two round trips after
// the PINGREQ.
func TestKeepaliveWaitsTwoRoundTripsOnASlowLink(t *testing.T) {
	const rtt = 1500 * time.Millisecond
	slowLink := func(t *testing.T) (*conn.Conn, *peer) {
		client, server := net.Pipe()
		t.Cleanup(func() { server.Close() })
		p := &peer{t: t, nc: server, br: bufio.NewReader(server), v: codec.V311}
		go func() {
			p.read()
			time.Sleep(rtt)
			p.write(&codec.Connack{})
		}()
		c, err := conn.Establish(t.Context(), client, "pipe", conn.Config{
			Connect: &codec.Connect{Version: codec.V311, ClientID: "c", CleanStart: true, KeepAlive: 2},
			Inbound: make(chan conn.Inbound),
		})
		if err != nil {
			t.Fatalf("Establish: %v", err)
		}
		return c, p
	}
	t.Run("late answer", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, p := slowLink(t)
			errs := run(c)
			if _, ok := p.read().(*codec.Pingreq); !ok {
				t.Fatal("want PINGREQ")
			}
			time.Sleep(1400 * time.Millisecond)
			p.write(&codec.Pingresp{})
			if _, ok := p.read().(*codec.Pingreq); !ok { // the next, after another quiet interval
				t.Fatal("want the next PINGREQ")
			}
			if err := c.Err(); err != nil {
				t.Fatalf("Err = %v after a PINGRESP 1.4 s late on a 1.5 s link, want a live connection", err)
			}
			c.Close()
			<-errs
			<-errs
		})
	})
	t.Run("silence", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, p := slowLink(t)
			errs := run(c)
			if _, ok := p.read().(*codec.Pingreq); !ok {
				t.Fatal("want PINGREQ")
			}
			sent := time.Now()
			go sink(p.nc)
			if err := <-errs; !errors.Is(err, conn.ErrKeepAliveTimeout) {
				t.Fatalf("loop ended with %v, want ErrKeepAliveTimeout", err)
			}
			if d := time.Since(sent); d != 2*rtt {
				t.Fatalf("declared dead %s after the PINGREQ, want %s (two round trips)", d, 2*rtt)
			}
			<-errs
		})
	})
}

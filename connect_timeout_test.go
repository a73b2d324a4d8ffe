package mqtt_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/codec"
)

// slowLinkDial is a Config.Dial to a broker at the far end of a slow link
// (on synctest's clock): each connection's CONNACK comes after the next
// of handshakes, and the broker then closes the connection after up (0:
// keeps it). It reports each dial on dials.
func slowLinkDial(t *testing.T, handshakes []time.Duration, up time.Duration, dials chan<- int) func(context.Context, string) (net.Conn, error) {
	n := 0
	return func(ctx context.Context, _ string) (net.Conn, error) {
		client, server := net.Pipe()
		d := handshakes[min(n, len(handshakes)-1)]
		n++
		dials <- n
		go func() {
			defer server.Close()
			if _, err := codec.ReadPacket(bufio.NewReader(server), codec.V311, 0); err != nil {
				return
			}
			// The link's delay, unless the client gives up first.
			_ = server.SetReadDeadline(time.Now().Add(d))
			if _, err := server.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
			_ = server.SetReadDeadline(time.Time{})
			if _, err := server.Write(frame(t, 4, &codec.Connack{})); err != nil {
				return // the client gave up on it
			}
			if up > 0 {
				_ = server.SetReadDeadline(time.Now().Add(up))
			}
			_, _ = io.Copy(io.Discard, server) // until the client closes, or up
		}()
		return client, nil
	}
}

// eventOf waits for the next event of kind k, as long as it takes on
// synctest's clock (a bubble that can never get it panics).
func eventOf(c *mqtt.Client, k mqtt.EventKind) mqtt.Event {
	for e := range c.Events() {
		if e.Kind == k {
			return e
		}
	}
	return mqtt.Event{}
}

// With the default ConnectTimeout, a link whose handshake takes longer
// than 10 s (a TLS connection over NB-IoT) still connects: an attempt that
// ran out of time gives the next twice as long, and the next connection
// after one that took 14 s gets 42 s. A ConnectTimeout that is set is kept
// for every attempt.
func TestDefaultConnectTimeoutAdaptsToASlowLink(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			dials := make(chan int, 16)
			begin := time.Now()
			c, err := mqtt.Start(mqtt.Config{Servers: []string{"tcp://slow.link:1883"}, ClientID: "nb-iot",
				Backoff: backoff.Constant(0), KeepAlive: -1,
				Dial: slowLinkDial(t, []time.Duration{14 * time.Second, 14 * time.Second, 30 * time.Second}, time.Minute, dials)})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			if err := c.WaitConnected(ctx); err != nil {
				t.Fatalf("not connected after %s, %d attempts: %v", time.Since(begin), c.Stats().Connections.Attempts, err)
			}
			if took, st := time.Since(begin), c.Stats().Connections; took != 24*time.Second || st.Attempts != 2 || st.Failed != 1 {
				t.Fatalf("connected after %s, %d attempts, %d failed; want 24s: one attempt cut at 10 s, then 14 s", took, st.Attempts, st.Failed)
			}
			eventOf(c, mqtt.ConnectionLost) // the broker closes it after a minute
			lost := time.Now()
			eventOf(c, mqtt.Connected)
			if took := time.Since(lost); took != 30*time.Second || len(dials) != 3 {
				t.Fatalf("reconnected after %s, %d dials; want a 30 s handshake in one attempt (42 s allowed after a 14 s one)", took, len(dials))
			}
		})
	})
	t.Run("set", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			dials := make(chan int, 16)
			c, err := mqtt.Start(mqtt.Config{Servers: []string{"tcp://slow.link:1883"}, ClientID: "nb-iot",
				ConnectTimeout: 10 * time.Second, Backoff: backoff.MaxAttempts(backoff.Constant(0), 3), KeepAlive: -1,
				Dial: slowLinkDial(t, []time.Duration{14 * time.Second}, 0, dials)})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			begin := time.Now()
			err = c.WaitConnected(t.Context())
			if !errors.Is(err, mqtt.ErrGaveUp) || !strings.Contains(err.Error(), "connect timeout of 10s") || time.Since(begin) != 40*time.Second {
				t.Fatalf("after %s: %v; want a give-up after 4 attempts of 10 s each", time.Since(begin), err)
			}
		})
	})
}

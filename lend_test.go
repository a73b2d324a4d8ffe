package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// A loop of synchronous publishes with a ctx that cannot end reads its
// own acknowledgements (the connection lends its socket to the caller,
// see conn.Await). Around it everything else still arrives: messages for
// the client's subscription between and during the calls, the SUBACK of
// a Subscribe made from another goroutine, the answers of publishes made
// alongside with PublishAsync, and the loop's own acknowledgements after
// the broker drops the connection while the caller reads.
//
// Both with a ctx that cannot end and with one that can (which a read
// deadline interrupts when it ends).
func TestSynchronousPublisherStillReadsEverythingElse(t *testing.T) {
	for _, tc := range []struct {
		v   byte
		ctx string
	}{{4, "background"}, {5, "background"}, {4, "cancelable"}, {5, "cancelable"}} {
		v := tc.v
		t.Run(fmt.Sprintf("v%d/%s", v, tc.ctx), func(t *testing.T) {
			callCtx := context.Background()
			if tc.ctx == "cancelable" {
				callCtx = t.Context() // can end, has no deadline
			}
			b := mqtttest.NewBroker(t)
			c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "lender", Version: v})
			other := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "other", Version: v})
			ctx := testCtx(t)
			if err := c.Subscribe(ctx, mqtt.Subscription{Filter: "in/#", QoS: mqtt.AtLeastOnce}); err != nil {
				t.Fatal(err)
			}
			const calls, every = 400, 40
			var async []<-chan error
			subscribed := make(chan error, calls/every)
			for i := range calls {
				qos := mqtt.QoS(1 + i%2)
				if err := c.Publish(callCtx, mqtt.Message{Topic: "out", Payload: []byte("x"), QoS: qos}); err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
				if i%every != every-1 {
					continue
				}
				// A message for the subscription, a Subscribe from another
				// goroutine, and a publish whose result the loop does not
				// wait for, every 40 calls.
				if err := other.Publish(ctx, mqtt.Message{Topic: fmt.Sprintf("in/%d", i), Payload: []byte("m"), QoS: mqtt.AtLeastOnce}); err != nil {
					t.Fatal(err)
				}
				go func() {
					subscribed <- c.Subscribe(ctx, mqtt.Subscription{Filter: fmt.Sprintf("more/%d", i), QoS: mqtt.AtLeastOnce})
				}()
				async = append(async, c.PublishAsync(ctx, mqtt.Message{Topic: "out", Payload: []byte("a"), QoS: mqtt.AtLeastOnce}))
				if i == calls/2-1 {
					b.Kick() // the next calls meet a dropped connection
				}
			}
			for range calls / every {
				receive(t, c)
			}
			for i := range calls / every {
				if err := <-subscribed; err != nil {
					t.Fatalf("Subscribe %d: %v", i, err)
				}
				if err := <-async[i]; err != nil {
					t.Fatalf("PublishAsync %d: %v", i, err)
				}
			}
			if s := c.Stats(); s.Inflight != 0 || s.Queued != 0 {
				t.Fatalf("Stats: %d in flight, %d queued after every publish ended", s.Inflight, s.Queued)
			}
		})
	}
}

// A synchronous publish whose ctx ends while the broker has not answered
// returns at once with ErrOutcomeUnknown, also when it was reading the
// socket itself: the read is interrupted, not the connection, whose late
// PUBACK the reader then reads, and the next publish goes on the same
// connection.
func TestPublishWhoseCtxEndsWhileItReadsReturns(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			sb := mqtttest.NewScriptedBroker(t)
			c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "interrupted", Version: v})
			sc := scripted(t, sb)
			msg := mqtt.Message{Topic: "out", Payload: []byte("x"), QoS: mqtt.AtLeastOnce}
			acked := func(ctx context.Context) {
				t.Helper()
				done := make(chan error, 1)
				go func() { done <- c.Publish(ctx, msg) }()
				p := nextOf[*codec.Publish](t, sc, v)
				send(t, sc, v, &codec.Puback{PacketID: p.PacketID})
				if err := <-done; err != nil {
					t.Fatalf("publish: %v", err)
				}
			}
			// The first acknowledgement makes the reader's state, the
			// second call asks for the socket: lent from then on.
			acked(t.Context())
			acked(t.Context())
			for i := range 5 {
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() { done <- c.Publish(ctx, msg) }()
				p := nextOf[*codec.Publish](t, sc, v)
				cancel()
				select {
				case err := <-done:
					if !errors.Is(err, mqtt.ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) {
						t.Fatalf("call %d: %v, want ErrOutcomeUnknown and context.Canceled", i, err)
					}
				case <-time.After(wait):
					t.Fatalf("call %d: Publish did not return after its ctx ended", i)
				}
				send(t, sc, v, &codec.Puback{PacketID: p.PacketID}) // late: the session completes the flow
				acked(t.Context())                                  // the socket is lent again after this one
			}
			if s := c.Stats(); s.Connections.Succeeded != 1 {
				t.Fatalf("%d connections, want 1: an interrupted read failed the connection", s.Connections.Succeeded)
			}
			if s := c.Stats(); s.Inflight != 0 {
				t.Fatalf("%d in flight after every PUBACK came", s.Inflight)
			}
		})
	}
}

package mqtt_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// A loop of synchronous publishes with a ctx that cannot end reads its
// own acknowledgements (the connection lends its socket to the caller,
// see conn.Await). Around it everything else still arrives: messages for
// the client's subscription between and during the calls, the SUBACK of
// a Subscribe made from another goroutine, the answers of publishes made
// alongside with PublishAsync, and the loop's own acknowledgements after
// the broker drops the connection while the caller reads.
func TestSynchronousPublisherStillReadsEverythingElse(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
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
				if err := c.Publish(context.Background(), mqtt.Message{Topic: "out", Payload: []byte("x"), QoS: qos}); err != nil {
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

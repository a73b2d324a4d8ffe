package mqtt_test

import (
	"testing"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// A QoS 0 Publish writes on the connection itself only when nothing
// accepted before it waits to be written: a sequential caller's QoS 0
// message never overtakes its own earlier QoS 1 message waiting for room
// in the window, nor one owed from before a reconnect.
func TestDirectPublishKeepsTheOrder(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "direct-order", MaxInflight: 1})
	sc := scripted(t, sb)
	ctx := testCtx(t)

	// Alone, it is written at once: its result needs no broker.
	if err := c.Publish(ctx, mqtt.Message{Topic: "zero/alone"}); err != nil {
		t.Fatal(err)
	}
	if p := nextOf[*codec.Publish](t, sc, 4); p.Topic != "zero/alone" {
		t.Fatalf("got %q", p.Topic)
	}

	a := c.PublishAsync(ctx, mqtt.Message{Topic: "one/a", QoS: 1})
	b := c.PublishAsync(ctx, mqtt.Message{Topic: "one/b", QoS: 1}) // waits: the window holds one
	pa := nextOf[*codec.Publish](t, sc, 4)
	if pa.Topic != "one/a" {
		t.Fatalf("first %q, want one/a", pa.Topic)
	}
	// A round trip through the session, so that it is done taking b in
	// (no longer in transit) before the QoS 0 Publish.
	unsub := make(chan error, 1)
	go func() { unsub <- c.Unsubscribe(ctx, "nothing") }()
	u := nextOf[*codec.Unsubscribe](t, sc, 4)
	send(t, sc, 4, &codec.Unsuback{PacketID: u.PacketID})
	if err := <-unsub; err != nil {
		t.Fatal(err)
	}
	zero := make(chan error, 1)
	go func() { zero <- c.Publish(ctx, mqtt.Message{Topic: "zero/after-b"}) }()
	send(t, sc, 4, &codec.Puback{PacketID: pa.PacketID})
	for _, want := range []string{"one/b", "zero/after-b"} {
		if p := nextOf[*codec.Publish](t, sc, 4); p.Topic != want {
			t.Fatalf("got %q, want %q: the QoS 0 message overtook the one queued before it", p.Topic, want)
		}
	}
	if err := resultOf(t, a); err != nil {
		t.Fatal(err)
	}
	if err := <-zero; err != nil {
		t.Fatal(err)
	}

	// Owed from before a reconnect: the QoS 1 message goes again first.
	sb.SetConnack(sessionPresent)
	sc.Close()
	waitEvent(t, c, mqtt.ConnectionLost)
	sc = scripted(t, sb)
	waitEvent(t, c, mqtt.Connected)
	if err := c.Publish(ctx, mqtt.Message{Topic: "zero/after-reconnect"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"one/b", "zero/after-reconnect"} {
		if p := nextOf[*codec.Publish](t, sc, 4); p.Topic != want {
			t.Fatalf("after the reconnect got %q, want %q", p.Topic, want)
		}
	}
	c.Close()
	<-b
}

// A SUBSCRIBE sent again takes a new packet identifier. mochi-mqtt v2.7
// refuses one that equals an identifier of its own messages in flight to
// the client, with 0x91 even in a 3.1.1 SUBACK, and sends those messages
// again on a new connection: the same identifier would be refused again,
// forever (found by the shared-subscription test). Refused so, it goes
// again on the same connection (it was a protocol error at 3.1.1, and the
// client reconnected); unanswered, on the next connection, also under a
// new identifier.
func TestSubscribeSentAgainTakesANewIdentifier(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "resub-id"})
	sc := scripted(t, sb)
	done := make(chan error, 1)
	go func() { done <- c.Subscribe(testCtx(t), mqtt.Subscription{Filter: "jobs", QoS: 1}) }()
	first := nextOf[*codec.Subscribe](t, sc, 4)
	if err := sc.Write([]byte{0x90, 0x03, byte(first.PacketID >> 8), byte(first.PacketID), 0x91}); err != nil {
		t.Fatal(err)
	}
	second := nextOf[*codec.Subscribe](t, sc, 4)
	if second.PacketID == first.PacketID {
		t.Fatalf("SUBSCRIBE sent again under the refused identifier %d", first.PacketID)
	}
	sc.Close()
	sc = scripted(t, sb)
	again := nextOf[*codec.Subscribe](t, sc, 4)
	if again.PacketID == second.PacketID {
		t.Fatalf("SUBSCRIBE sent again on a new connection under its identifier %d", second.PacketID)
	}
	send(t, sc, 4, &codec.Suback{PacketID: again.PacketID, ReasonCodes: []codec.ReasonCode{1}})
	if err := <-done; err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
}

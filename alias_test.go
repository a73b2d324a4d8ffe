package mqtt_test

import (
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
	"github.com/robustmqtt/mqtt/store"
)

// aliasOf is the Topic Alias of p, or 0.
func aliasOf(p *codec.Publish) uint16 {
	if p.Properties == nil || p.Properties.TopicAlias == nil {
		return 0
	}
	return *p.Properties.TopicAlias
}

// With Config.TopicAliases the client gives a repeated topic an alias,
// within the broker's Topic Alias Maximum [MQTT-3.2.2-17]: the topic with
// the alias the first time on a connection, the alias alone afterwards
// [MQTT-3.3.2-12]. Aliases end with the connection [MQTT-3.3.2-7]: a
// PUBLISH sent again after a reconnect (DUP) carries its topic, and so does
// the first new one to that topic. What the store keeps is the topic.
func TestTopicAliasesOutbound(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	two := uint16(2)
	sb.SetConnack(frame(t, 5, &codec.Connack{Properties: &codec.Properties{TopicAliasMaximum: &two}}))
	st := store.NewMemory()
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "aliases", Version: 5, TopicAliases: 10, Store: st})
	sc := scripted(t, sb)
	const topic = "building-7/floor-3/room-12/temperature"
	for i := range 3 {
		res := c.PublishAsync(testCtx(t), mqtt.Message{Topic: topic, Payload: []byte{byte(i)}, QoS: mqtt.AtLeastOnce})
		p := nextOf[*codec.Publish](t, sc, 5)
		wantTopic := ""
		if i == 0 {
			wantTopic = topic
		}
		if p.Topic != wantTopic || aliasOf(p) != 1 {
			t.Fatalf("publish %d went as %q alias %d, want %q alias 1", i, p.Topic, aliasOf(p), wantTopic)
		}
		if i < 2 {
			send(t, sc, 5, &codec.Puback{PacketID: p.PacketID})
			if err := <-res; err != nil {
				t.Fatal(err)
			}
		}
	}
	// The third is not acknowledged: after a reconnect it goes again.
	sb.SetConnack(frame(t, 5, &codec.Connack{SessionPresent: true, Properties: &codec.Properties{TopicAliasMaximum: &two}}))
	sc.Close()
	waitEvent(t, c, mqtt.ConnectionLost)
	sc = scripted(t, sb)
	again := nextOf[*codec.Publish](t, sc, 5)
	if !again.Dup || again.Topic != topic {
		t.Fatalf("sent again as %q alias %d DUP %v, want the topic, DUP", again.Topic, aliasOf(again), again.Dup)
	}
	if err := c.Publish(testCtx(t), mqtt.Message{Topic: topic, Payload: []byte("new")}); err != nil {
		t.Fatal(err)
	}
	if p := nextOf[*codec.Publish](t, sc, 5); p.Topic != "" || aliasOf(p) == 0 {
		t.Fatalf("the next publish went as %q alias %d, want the alias alone: the re-sent PUBLISH set it", p.Topic, aliasOf(p))
	}

	// Still unacknowledged when the client stops: the store keeps it with
	// its topic, and the next client sends it with its topic.
	c.Close()
	var stored []string
	for _, r := range storeRecords(t, st) {
		if strings.Contains(r, topic) {
			stored = append(stored, r)
		}
	}
	if len(stored) != 1 {
		t.Fatalf("%d records in the store hold the topic, want the unacknowledged publish", len(stored))
	}
	dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "aliases", Version: 5, TopicAliases: 10, Store: st})
	sc = scripted(t, sb)
	if p := nextOf[*codec.Publish](t, sc, 5); p.Topic != topic {
		t.Fatalf("the next client sent it as %q alias %d, want the topic", p.Topic, aliasOf(p))
	}
}

// storeRecords returns the records of st as strings.
func storeRecords(t *testing.T, st store.Store) []string {
	t.Helper()
	var out []string
	err := st.Load(func(key uint64, value []byte) error {
		out = append(out, string(value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Against the embedded broker: mochi-mqtt v2.7.9 takes topic aliases
// (up to 65535) but announces no Topic Alias Maximum in its CONNACK, so
// the client sends none [MQTT-3.2.2-18], whatever Config.TopicAliases
// says, and a subscriber receives every message under its topic. (The
// interop tests run the aliases against Mosquitto, which announces 10.)
func TestTopicAliasesEmbeddedBroker(t *testing.T) {
	b := mqtttest.NewBroker(t)
	sub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "sub", Version: 5})
	if err := sub.Subscribe(testCtx(t), mqtt.Subscription{Filter: "fleet/#", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	topics := []string{"fleet/truck-0042/engine/temperature", "fleet/truck-0042/engine/oil-pressure"}
	written := make(map[int]uint64)
	for _, aliases := range []int{0, 10} {
		pub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "pub", Version: 5, CleanStart: true, TopicAliases: aliases})
		before := pub.Stats().BytesWritten
		for i := range 20 {
			m := mqtt.Message{Topic: topics[i%2], Payload: []byte{byte(i)}, QoS: mqtt.AtLeastOnce}
			if err := pub.Publish(testCtx(t), m); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, sub); got.Topic != m.Topic || got.Payload[0] != byte(i) {
				t.Fatalf("aliases %d: received %q %v, want %q %v", aliases, got.Topic, got.Payload, m.Topic, m.Payload)
			}
		}
		// After Close: the count of a write is added when the write
		// returns, which can be after the PUBACK it brought was read.
		pub.Close()
		written[aliases] = pub.Stats().BytesWritten - before
	}
	if written[10] != written[0] {
		t.Fatalf("with TopicAliases %d bytes, without %d: the client used aliases the broker did not announce", written[10], written[0])
	}
}

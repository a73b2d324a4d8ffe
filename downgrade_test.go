package mqtt_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
	"github.com/robustmqtt/mqtt/store"
)

// RabbitMQ (every version, over MQTT 3.1.1, which has no Maximum QoS to
// announce) takes a QoS 2 PUBLISH as QoS 1 and answers it with PUBACK.
// The client took that for a protocol error: it ended the connection,
// sent the message again on the next one, got PUBACK again, and so on
// forever, with every publish behind it waiting and the subscribers
// getting a copy per connection. The PUBACK ends the publish: nil (the
// broker has the message, at least once), no PUBREL, the connection
// stays up and the next publishes go on it; the log says once per
// connection that the broker downgrades QoS 2; with a Store, the records
// of the publishes are gone once the client stops.
func TestBrokerAnswersQoS2WithPuback(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("version %d", v), func(t *testing.T) {
			t.Parallel()
			sb := mqtttest.NewScriptedBroker(t)
			sb.SetConnack(frame(t, v, &codec.Connack{}))
			var logs logCapture
			st := store.NewMemory()
			c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "downgrade", Version: v, Logger: logs.logger(), Store: st})
			records := st.Len()
			sc := scripted(t, sb)
			for i, qos := range []mqtt.QoS{mqtt.ExactlyOnce, mqtt.ExactlyOnce, mqtt.AtLeastOnce} {
				topic := fmt.Sprintf("alarm/window/%d", i)
				res := c.PublishAsync(t.Context(), mqtt.Message{Topic: topic, Payload: []byte("open"), QoS: qos})
				// The next frame is this PUBLISH, on the same connection:
				// no PUBREL went for the one before, nothing was sent
				// again.
				p := nextOf[*codec.Publish](t, sc, v)
				if p.Topic != topic || p.QoS != qos || p.Dup {
					t.Fatalf("PUBLISH to %q QoS %d DUP %v, want %q QoS %d sent once", p.Topic, p.QoS, p.Dup, topic, qos)
				}
				send(t, sc, v, &codec.Puback{PacketID: p.PacketID})
				if err := resultOf(t, res); err != nil {
					t.Fatalf("publish %d (QoS %d) answered with PUBACK: %v", i, qos, err)
				}
			}
			stats := c.Stats()
			if stats.Connections.Succeeded != 1 || stats.Connections.Lost.Protocol != 0 {
				t.Errorf("connections: %+v, want one, never lost", stats.Connections)
			}
			if got := stats.Publishes[2].Acknowledged; got != 2 {
				t.Errorf("QoS 2 publishes acknowledged: %d, want 2", got)
			}
			if n := strings.Count(logs.String(), "answered a QoS 2 PUBLISH with PUBACK"); n != 1 {
				t.Errorf("the downgrade logged %d times, want once:\n%s", n, logs.String())
			}
			go func() { _ = c.Disconnect(t.Context()) }()
			nextOf[*codec.Disconnect](t, sc, v)
			sc.Close()
			select {
			case <-c.Done():
			case <-testCtx(t).Done():
				t.Fatal("the client did not stop after its DISCONNECT")
			}
			if n := st.Len(); n != records {
				t.Errorf("%d records in the store after the client stopped, want %d as before the publishes", n, records)
			}
		})
	}
}

// A PUBACK for a QoS 2 publish already past its PUBREC (its PUBREL sent)
// ends no flow: it is still a protocol error, the connection ends, and
// the PUBREL goes again on the next one, where PUBCOMP ends the publish.
func TestPubackAfterPubrecIsAProtocolError(t *testing.T) {
	const v = 4
	sb := mqtttest.NewScriptedBroker(t)
	sb.SetConnack(frame(t, v, &codec.Connack{SessionPresent: true}))
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "late-puback", Version: v})
	sc := scripted(t, sb)
	res := c.PublishAsync(t.Context(), mqtt.Message{Topic: "alarm/door", Payload: []byte("open"), QoS: mqtt.ExactlyOnce})
	p := nextOf[*codec.Publish](t, sc, v)
	send(t, sc, v, &codec.Pubrec{PacketID: p.PacketID})
	nextOf[*codec.Pubrel](t, sc, v)
	send(t, sc, v, &codec.Puback{PacketID: p.PacketID})
	sc = scripted(t, sb) // the client ended the first connection
	if rel := nextOf[*codec.Pubrel](t, sc, v); rel.PacketID != p.PacketID {
		t.Fatalf("PUBREL %d sent again, want %d", rel.PacketID, p.PacketID)
	}
	send(t, sc, v, &codec.Pubcomp{PacketID: p.PacketID})
	if err := resultOf(t, res); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if n := c.Stats().Connections.Lost.Protocol; n != 1 {
		t.Errorf("connections lost to a protocol error: %d, want 1", n)
	}
}

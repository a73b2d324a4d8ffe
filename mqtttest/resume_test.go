package mqtttest_test

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/robustmqtt/mqtt/mqtttest"
)

// A QoS 2 PUBLISH sent again (DUP) because its PUBREC was lost is
// acknowledged as a success and delivered once. mochi alone answers an
// MQTT 5 client "packet identifier in use" (see brokerHook.OnPacketEncode).
func TestBrokerQoS2Duplicate(t *testing.T) {
	forVersions(t, func(t *testing.T, version byte) {
		b := mqtttest.NewBroker(t)
		// MQTT 5.0 re-sends only on a new connection [MQTT-4.4.0-1]; the
		// test re-sends on the same one, which is simpler and what mochi
		// sees either way.
		b.AllowViolations()
		sub, _ := connect(t, b.Addr(), version, "sub", false)
		sub.subscribe("t", 1)
		pub, _ := connect(t, b.Addr(), version, "pub", false)

		publish := packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2},
			TopicName:   "t",
			Payload:     []byte("once"),
			PacketID:    7,
		}
		pub.send(publish)
		pub.expect(packets.Pubrec, 7, 0)
		publish.FixedHeader.Dup = true // as if the PUBREC had been lost
		pub.send(publish)
		pub.expect(packets.Pubrec, 7, 0)
		pub.release(7)
		pub.publish("t", "next", 1, 8)
		sub.receivePayloads("once", "next")
	})
}

// When mochi fails to write the PUBACK or PUBREC of a client's message, it
// does not route the message but keeps the acknowledgement in the session,
// and would send it when the session resumes: the client would drop a
// message that went nowhere. The Broker drops those acknowledgements, and
// keeps the PUBREC of a QoS 2 message that was routed.
func TestBrokerResumeDropsUnroutedAcks(t *testing.T) {
	forVersions(t, func(t *testing.T, version byte) {
		b := mqtttest.NewBroker(t)
		ctx := testCtx(t)
		sub, _ := connect(t, b.Addr(), version, "sub", false)
		sub.subscribe("t", 1)

		pub, _ := connect(t, b.Addr(), version, "pub", true)
		pub.send(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2},
			TopicName:   "t",
			Payload:     []byte("routed"),
			PacketID:    9,
		})
		pub.expect(packets.Pubrec, 9, 0)
		_ = pub.conn.Close() // before the PUBREL
		if err := b.WaitDisconnected(ctx, "pub"); err != nil {
			t.Fatal(err)
		}
		// What mochi leaves after failing to write these acknowledgements.
		session, ok := b.Server().Clients.Get("pub")
		if !ok {
			t.Fatal("no session for pub")
		}
		session.State.Inflight.Set(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: 3})
		session.State.Inflight.Set(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: 4})

		pub, connack := connect(t, b.Addr(), version, "pub", true)
		if !connack.SessionPresent {
			t.Fatal("session not present")
		}
		pub.expect(packets.Pubrec, 9, 0) // resent: the message was routed
		pub.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
		pub.expect(packets.Pingresp, 0, 0) // and nothing for 3 and 4
		pub.release(9)
		pub.publish("t", "sent again", 1, 3)
		sub.receivePayloads("routed", "sent again")
	})
}

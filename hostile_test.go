package mqtt_test

import (
	"errors"
	"testing"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// Hostile input from the broker closes that connection with a
// *ProtocolError and the client reconnects: no panic, no unbounded
// allocation, no leak (goleak checks after every test).
func TestHostileBroker(t *testing.T) {
	cases := []struct {
		name  string
		v     byte
		bytes []byte
		code  codec.ReasonCode
	}{
		{"reserved flags on PUBACK", 4, []byte{0x41, 0x02, 0x00, 0x01}, codec.MalformedPacket},
		{"PUBLISH QoS 3", 4, []byte{0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01}, codec.MalformedPacket},
		{"remaining length of 5 bytes", 4, []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}, codec.MalformedPacket},
		{"absurd length, 256 MB", 4, []byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}, codec.PacketTooLarge},
		{"topic length past the frame", 4, []byte{0x30, 0x04, 0x01, 0x2C, 'a', 'b'}, codec.MalformedPacket},
		{"invalid UTF-8 topic", 4, []byte{0x30, 0x04, 0x00, 0x02, 0xC3, 0x28}, codec.MalformedPacket},
		{"packet type 0", 4, []byte{0x00, 0x00}, codec.MalformedPacket},
		{"PUBACK for nothing", 4, []byte{0x40, 0x02, 0x00, 0x07}, codec.ProtocolError},
		{"PUBREC for nothing", 4, []byte{0x50, 0x02, 0x00, 0x07}, codec.ProtocolError},
		{"PUBCOMP for nothing", 4, []byte{0x70, 0x02, 0x00, 0x07}, codec.ProtocolError},
		{"SUBACK for nothing", 4, []byte{0x90, 0x03, 0x00, 0x07, 0x00}, codec.ProtocolError},
		{"UNSUBACK for nothing", 4, []byte{0xB0, 0x02, 0x00, 0x07}, codec.ProtocolError},
		{"second CONNACK", 4, []byte{0x20, 0x02, 0x00, 0x00}, codec.ProtocolError},
		{"SUBSCRIBE from the broker", 4, []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00}, codec.ProtocolError},
		{"PUBLISH QoS 1 with packet id 0", 4, []byte{0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00}, codec.ProtocolError},
		{"v5 reason code in a 3.1.1 PUBACK", 4, []byte{0x40, 0x03, 0x00, 0x07, 0x10}, codec.MalformedPacket},
		{"v5 duplicate property", 5, []byte{0x30, 0x0E, 0x00, 0x01, 't', 0x0A, 0x02, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00}, codec.ProtocolError},
		{"v5 property not allowed in PUBLISH", 5, []byte{0x30, 0x09, 0x00, 0x01, 't', 0x05, 0x11, 0x00, 0x00, 0x00, 0x01}, codec.MalformedPacket},
		{"v5 unknown topic alias", 5, []byte{0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x05}, codec.TopicAliasInvalid},
		{"v5 AUTH unasked", 5, []byte{0xF0, 0x02, 0x18, 0x00}, codec.ProtocolError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb := mqtttest.NewScriptedBroker(t)
			c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "victim", Version: tc.v})
			sc := scripted(t, sb)
			waitEvent(t, c, mqtt.Connected)
			if err := sc.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			e := waitEvent(t, c, mqtt.ConnectionLost)
			var pe *mqtt.ProtocolError
			if !errors.As(e.Err, &pe) {
				t.Fatalf("ConnectionLost error = %v, want a *ProtocolError", e.Err)
			}
			if pe.Code != tc.code {
				t.Errorf("ProtocolError code = %s, want %s (%v)", pe.Code, tc.code, pe)
			}
			t.Logf("%v", pe)
			// It comes back, and works.
			sc = scripted(t, sb)
			waitEvent(t, c, mqtt.Connected)
			r := c.PublishAsync(t.Context(), mqtt.Message{Topic: "still/alive", QoS: 1})
			p := nextOf[*codec.Publish](t, sc, tc.v)
			send(t, sc, tc.v, &codec.Puback{PacketID: p.PacketID})
			if err := <-r; err != nil {
				t.Fatalf("publish after reconnect: %v", err)
			}
		})
	}
}

// An MQTT 5 client tells the broker why it is closing the connection.
func TestHostileBrokerToldWhy(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "tells", Version: 5})
	sc := scripted(t, sb)
	waitEvent(t, c, mqtt.Connected)
	send(t, sc, 5, &codec.Puback{PacketID: 99})
	d := nextOf[*codec.Disconnect](t, sc, 5)
	if d.ReasonCode != codec.ProtocolError {
		t.Fatalf("DISCONNECT reason %s, want protocol error", d.ReasonCode)
	}
}

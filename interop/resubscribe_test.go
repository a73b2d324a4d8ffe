package interop_test

import (
	"testing"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// A client bug TestSessionExpiry found against Mosquitto, pinned down frame
// by frame with a scripted broker: when the broker lost the session, the
// client must subscribe again with one SUBSCRIBE. It sends the same
// SUBSCRIBE twice, with the same packet identifier (once to re-subscribe,
// once more as an "unfinished flight"), then takes the broker's second
// SUBACK for a protocol error and drops the connection.
func TestResubscribeSendsOneSubscribe(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			sb := mqtttest.NewScriptedBroker(t)
			c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "resub", Version: v.version})
			sc := accept(t, sb)
			done := make(chan error, 1)
			go func() { done <- c.Subscribe(testCtx(t), mqtt.Subscription{Filter: "a/#", QoS: mqtt.AtLeastOnce}) }()
			s := readSubscribe(t, sc, v.version)
			write(t, sc, v.version, &codec.Suback{PacketID: s.PacketID, ReasonCodes: []codec.ReasonCode{1}})
			if err := <-done; err != nil {
				t.Fatal(err)
			}

			// The next connection's CONNACK says no session.
			sc.Close()
			sc = accept(t, sb)
			s = readSubscribe(t, sc, v.version)
			write(t, sc, v.version, &codec.Suback{PacketID: s.PacketID, ReasonCodes: []codec.ReasonCode{1}},
				&codec.Pubrel{PacketID: 0xBEEF})
			// The client answers the PUBREL with PUBCOMP in the order it reads
			// frames: anything it sent before that is a frame too many.
			switch p := read(t, sc, v.version).(type) {
			case *codec.Pubcomp:
			case *codec.Subscribe:
				t.Fatalf("the client sent SUBSCRIBE %d twice after the session was lost (second: %+v)", s.PacketID, p)
			default:
				t.Fatalf("the client sent %T (%+v), want PUBCOMP", p, p)
			}
		})
	}
}

// accept accepts the next connection on a scripted broker.
func accept(t *testing.T, sb *mqtttest.ScriptedBroker) *mqtttest.ScriptedConn {
	t.Helper()
	sc, err := sb.Accept(testCtx(t))
	if err != nil {
		t.Fatalf("scripted broker: no connection: %v", err)
	}
	return sc
}

// write writes packets on a scripted connection, in one write.
func write(t *testing.T, sc *mqtttest.ScriptedConn, version byte, ps ...codec.Packet) {
	t.Helper()
	var b []byte
	for _, p := range ps {
		var err error
		if b, err = p.AppendTo(b, version); err != nil {
			t.Fatalf("encode %T: %v", p, err)
		}
	}
	if err := sc.Write(b); err != nil {
		t.Fatalf("scripted write: %v", err)
	}
}

// read reads and decodes the client's next frame.
func read(t *testing.T, sc *mqtttest.ScriptedConn, version byte) codec.Packet {
	t.Helper()
	b, err := sc.ReadFrame(testCtx(t))
	if err != nil {
		t.Fatalf("scripted read: %v", err)
	}
	p, _, err := codec.Decode(b, version, 0)
	if err != nil {
		t.Fatalf("decode the client's frame % x: %v", b, err)
	}
	return p
}

// readSubscribe reads the client's next frame, which must be a SUBSCRIBE.
func readSubscribe(t *testing.T, sc *mqtttest.ScriptedConn, version byte) *codec.Subscribe {
	t.Helper()
	p := read(t, sc, version)
	s, ok := p.(*codec.Subscribe)
	if !ok {
		t.Fatalf("client sent %T (%+v), want SUBSCRIBE", p, p)
	}
	return s
}

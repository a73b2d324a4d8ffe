package interop_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// A client that lost its connection before it saw the PUBREC of a QoS 2
// PUBLISH sends the PUBLISH again (DUP set, same packet identifier) on the
// next connection. The broker already has it and, until the PUBREL, must
// acknowledge it with PUBREC again [MQTT-4.3.3-10]: a success, not an
// error, which the client would report as a refusal of a message the broker
// has. Mosquitto does. mochi-mqtt v2.7.9 answers 0x91, "packet identifier
// in use" (server.go, processPublish), and the embedded broker of mqtttest
// turns that into a success.
func TestQoS2ResendAfterLostPubrec(t *testing.T) {
	brokers := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"mosquitto", func(t *testing.T) string { return mosquitto.New(t, "").Addr() }},
		{"embedded", func(t *testing.T) string { return mqtttest.NewBroker(t).Addr() }},
	}
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			addr := b.addr(t)
			expiry := uint32(300)
			connect := &codec.Connect{Version: 5, ClientID: "resend", KeepAlive: 30,
				Properties: &codec.Properties{SessionExpiryInterval: &expiry}}
			pubs := []*codec.Publish{
				{Topic: "resend", Payload: []byte("a"), QoS: 2, PacketID: 7},
				{Topic: "resend", Payload: []byte("b"), QoS: 2, PacketID: 8},
			}

			c, r := rawConnect(t, addr, connect)
			rawWrite(t, c, pubs[0], pubs[1])
			for _, p := range rawReadUntilPong(t, c, r) {
				if rec, ok := p.(*codec.Pubrec); !ok || rec.ReasonCode.IsError() {
					t.Fatalf("first PUBLISH answered with %T %+v, want PUBREC", p, p)
				}
			}
			c.Close() // before the PUBRELs: the PUBRECs were lost, as far as the client knows

			// Both again, in one write, as a client re-sends its flights.
			c, r = rawConnect(t, addr, connect)
			pubs[0].Dup, pubs[1].Dup = true, true
			rawWrite(t, c, pubs[0], pubs[1])
			got := rawReadUntilPong(t, c, r)
			for _, p := range got {
				if rec, ok := p.(*codec.Pubrec); !ok || rec.ReasonCode.IsError() {
					t.Errorf("after the re-sent PUBLISHes the broker sent %T %+v, want only successful PUBRECs", p, p)
				}
			}
			if len(got) < 2 {
				t.Errorf("the broker answered %d of the 2 re-sent PUBLISHes", len(got))
			}
		})
	}
}

// rawConnect dials addr, sends connect and reads the CONNACK, which must
// accept it.
func rawConnect(t *testing.T, addr string, connect *codec.Connect) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	rawWrite(t, c, connect)
	if ack, ok := rawRead(t, c, r).(*codec.Connack); !ok || ack.ReasonCode.IsError() {
		t.Fatalf("CONNECT answered with %+v", ack)
	}
	return c, r
}

// rawWrite writes packets in one write.
func rawWrite(t *testing.T, c net.Conn, ps ...codec.Packet) {
	t.Helper()
	var b []byte
	for _, p := range ps {
		var err error
		if b, err = p.AppendTo(b, 5); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// rawReadUntilPong sends PINGREQ and returns what the broker sent before
// the PINGRESP: the answers to everything written before.
func rawReadUntilPong(t *testing.T, c net.Conn, r *bufio.Reader) []codec.Packet {
	t.Helper()
	rawWrite(t, c, &codec.Pingreq{})
	var got []codec.Packet
	for {
		p := rawRead(t, c, r)
		if _, ok := p.(*codec.Pingresp); ok {
			return got
		}
		got = append(got, p)
	}
}

func rawRead(t *testing.T, c net.Conn, r *bufio.Reader) codec.Packet {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(wait))
	p, err := codec.ReadPacket(r, 5, 0)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return p
}

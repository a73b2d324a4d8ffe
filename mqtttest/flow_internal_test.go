package mqtttest

import (
	"bytes"
	"net"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// recordConn is the socket under a flowConn: it records what is written.
type recordConn struct {
	net.Conn // nil: only Write is used
	buf      bytes.Buffer
}

func (c *recordConn) Write(p []byte) (int, error) { return c.buf.Write(p) }

// take returns what was written since the last take.
func (c *recordConn) take() []byte {
	b := bytes.Clone(c.buf.Bytes())
	c.buf.Reset()
	return b
}

// frame encodes an MQTT 5 packet as mochi writes it.
func frame(t *testing.T, pk packets.Packet) []byte {
	t.Helper()
	pk.ProtocolVersion = 5
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(&buf)
	case packets.Pingresp:
		err = pk.PingrespEncode(&buf)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func publish(t *testing.T, qos byte, id uint16, payload []byte) []byte {
	return frame(t, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   "a/b",
		PacketID:    id,
		Payload:     payload,
	})
}

// flowConn passes every frame but the QoS 1/2 PUBLISHes beyond the limit,
// keeps those in order, also when a frame is split across writes or its
// length takes more than one byte, and writes them as places free up.
func TestFlowConn(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 300) // a two-byte remaining length
	p1, p2, p3, p4 := publish(t, 1, 1, nil), publish(t, 2, 2, big), publish(t, 1, 3, big), publish(t, 1, 4, nil)
	q0 := publish(t, 0, 0, big)
	rel := frame(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 9})
	ping := frame(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingresp}})
	cat := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	write := func(c *flowConn, p []byte) {
		t.Helper()
		if n, err := c.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(p))
		}
	}

	sock := &recordConn{}
	c := newFlowConn(sock)
	c.setLimit(2)
	write(c, cat(p1, p2, p3, q0, rel))
	if got, want := sock.take(), cat(p1, p2, q0, rel); !bytes.Equal(got, want) {
		t.Fatalf("written %x, want %x (p3 kept)", got, want)
	}
	// p4 split in two writes, after p3: kept behind it.
	write(c, p4[:3])
	write(c, cat(p4[3:], ping))
	if got := sock.take(); !bytes.Equal(got, ping) {
		t.Fatalf("written %x, want the PINGRESP alone", got)
	}
	for _, step := range []struct {
		completed uint16
		want      []byte
	}{
		{9, nil},  // not a message sent to the client
		{1, p3},   // frees a place: the oldest kept goes
		{1, nil},  // completed twice
		{3, p4},   // p2 and p4 now in flight
		{2, nil},  // nothing left to send
		{77, nil}, // unknown
		{4, nil},  // all done
	} {
		if err := c.completed(step.completed); err != nil {
			t.Fatal(err)
		}
		if got := sock.take(); !bytes.Equal(got, step.want) {
			t.Fatalf("after completing %d: written %x, want %x", step.completed, got, step.want)
		}
	}
	// With places free again, messages pass at once.
	write(c, cat(p1, p2))
	if got, want := sock.take(), cat(p1, p2); !bytes.Equal(got, want) {
		t.Fatalf("written %x, want %x", got, want)
	}

	// No limit (MQTT 3.1.1, or no Receive Maximum): everything passes.
	sock = &recordConn{}
	c = newFlowConn(sock)
	all := cat(p1, p2, p3, p4, q0)
	write(c, all)
	if got := sock.take(); !bytes.Equal(got, all) {
		t.Fatalf("without a limit: written %x, want %x", got, all)
	}
}

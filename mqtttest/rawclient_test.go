package mqtttest_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// rawClient is a minimal MQTT client for testing mqtttest itself, built on
// mochi's packets package: it writes the packets a test gives it and decodes
// what comes back, with no session logic of its own.
type rawClient struct {
	t       testing.TB
	conn    net.Conn
	r       *bufio.Reader
	version byte
}

// ioTimeout bounds every read of a test; it only fires when a test fails.
const ioTimeout = 10 * time.Second

// testCtx returns a context that ends with a generous deadline.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), ioTimeout)
	t.Cleanup(cancel)
	return ctx
}

// dialRaw opens a TCP connection to addr; it is closed at the end of the test.
func dialRaw(t testing.TB, addr string, version byte) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawClient{t: t, conn: conn, r: bufio.NewReader(conn), version: version}
}

// connect dials addr and completes CONNECT/CONNACK. A persistent session is
// clean session false in 3.1.1, clean start false with a session expiry in 5.
func connect(t testing.TB, addr string, version byte, clientID string, persistent bool) (*rawClient, packets.Packet) {
	t.Helper()
	c := dialRaw(t, addr, version)
	connack := c.handshake(clientID, persistent, 0)
	return c, connack
}

// handshake sends CONNECT and returns the CONNACK, failing the test unless
// it accepts the connection.
func (c *rawClient) handshake(clientID string, persistent bool, keepalive uint16) packets.Packet {
	c.t.Helper()
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: c.version,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			ClientIdentifier: clientID,
			Clean:            !persistent,
			Keepalive:        keepalive,
		},
	}
	if c.version == 5 && persistent {
		pk.Properties.SessionExpiryInterval = 300
		pk.Properties.SessionExpiryIntervalFlag = true
	}
	c.send(pk)
	connack := c.recv()
	if connack.FixedHeader.Type != packets.Connack || connack.ReasonCode != 0 {
		c.t.Fatalf("CONNACK expected, got type %d reason %#x", connack.FixedHeader.Type, connack.ReasonCode)
	}
	return connack
}

// encode returns the bytes of pk.
func encode(t testing.TB, pk packets.Packet) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Pubrec:
		err = pk.PubrecEncode(&buf)
	case packets.Pubcomp:
		err = pk.PubcompEncode(&buf)
	case packets.Pubrel:
		pk.FixedHeader.Qos = 1 // [MQTT-3.6.1-1]
		err = pk.PubrelEncode(&buf)
	case packets.Subscribe:
		pk.FixedHeader.Qos = 1 // [MQTT-3.8.1-1]
		err = pk.SubscribeEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		t.Fatalf("rawClient cannot encode packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatalf("encode packet type %d: %v", pk.FixedHeader.Type, err)
	}
	return buf.Bytes()
}

func (c *rawClient) send(pk packets.Packet) {
	c.t.Helper()
	pk.ProtocolVersion = c.version
	if _, err := c.conn.Write(encode(c.t, pk)); err != nil {
		c.t.Fatalf("write packet type %d: %v", pk.FixedHeader.Type, err)
	}
}

// recv reads and decodes the next packet.
func (c *rawClient) recv() packets.Packet {
	c.t.Helper()
	pk, err := c.read(ioTimeout)
	if err != nil {
		c.t.Fatalf("read packet: %v", err)
	}
	return pk
}

// read reads and decodes the next packet, waiting at most d.
func (c *rawClient) read(d time.Duration) (packets.Packet, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	var pk packets.Packet
	first, err := c.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(first); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		return pk, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	pk.ProtocolVersion = c.version
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubrel:
		err = pk.PubrelDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Pingresp:
	default:
		err = errors.New("rawClient cannot decode this packet type")
	}
	return pk, err
}

// subscribe subscribes to filter and waits for the SUBACK.
func (c *rawClient) subscribe(filter string, qos byte) {
	c.t.Helper()
	c.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe},
		PacketID:    1,
		Filters:     packets.Subscriptions{{Filter: filter, Qos: qos}},
	})
	ack := c.recv()
	if ack.FixedHeader.Type != packets.Suback || len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] != qos {
		c.t.Fatalf("SUBACK granting QoS %d expected, got type %d codes %v", qos, ack.FixedHeader.Type, ack.ReasonCodes)
	}
}

// publish publishes a message; at QoS 1 it waits for the PUBACK.
func (c *rawClient) publish(topic, payload string, qos byte, id uint16) {
	c.t.Helper()
	c.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		Payload:     []byte(payload),
		PacketID:    id,
	})
	if qos == 0 {
		return
	}
	ack := c.recv()
	if ack.FixedHeader.Type != packets.Puback || ack.PacketID != id {
		c.t.Fatalf("PUBACK %d expected, got type %d id %d", id, ack.FixedHeader.Type, ack.PacketID)
	}
}

// expect reads the next packet and fails unless it has this type, packet
// identifier and reason code.
func (c *rawClient) expect(typ byte, id uint16, reason byte) packets.Packet {
	c.t.Helper()
	pk := c.recv()
	if pk.FixedHeader.Type != typ || pk.PacketID != id || pk.ReasonCode != reason {
		c.t.Fatalf("packet type %d id %d reason %#x expected, got type %d id %d reason %#x",
			typ, id, reason, pk.FixedHeader.Type, pk.PacketID, pk.ReasonCode)
	}
	return pk
}

// receive reads a PUBLISH, acknowledges it if QoS 1, and returns it.
func (c *rawClient) receive() packets.Packet {
	c.t.Helper()
	pk := c.recv()
	if pk.FixedHeader.Type != packets.Publish {
		c.t.Fatalf("PUBLISH expected, got type %d", pk.FixedHeader.Type)
	}
	pk.Payload = append([]byte(nil), pk.Payload...)
	if pk.FixedHeader.Qos == 1 {
		c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
	}
	return pk
}

// receivePayloads receives len(want) messages, acknowledging them, and
// fails unless their payloads are want, in order.
func (c *rawClient) receivePayloads(want ...string) {
	c.t.Helper()
	for _, w := range want {
		if m := c.receive(); string(m.Payload) != w {
			c.t.Fatalf("received %q, want %q", m.Payload, w)
		}
	}
}

// release sends the PUBREL of a QoS 2 message and waits for its PUBCOMP.
func (c *rawClient) release(id uint16) {
	c.t.Helper()
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel}, PacketID: id})
	c.expect(packets.Pubcomp, id, 0)
}

// expectEOF fails unless the peer closed the connection without sending
// anything more. (Over WebSocket, the end of the TCP connection without a
// close frame is an error that wraps io.EOF.)
func (c *rawClient) expectEOF() {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	b, err := io.ReadAll(c.r)
	if len(b) > 0 || err != nil && !isReset(err) && !errors.Is(err, io.EOF) {
		c.t.Fatalf("end of connection expected, read %x, error %v", b, err)
	}
}

// expectSilence fails unless nothing arrives, and the connection stays
// open, for d. It is how a test shows that something does not happen.
func (c *rawClient) expectSilence(d time.Duration) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	b, err := c.r.ReadByte()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		c.t.Fatalf("silence expected, read %#x, error %v", b, err)
	}
}

// isReset reports whether err is a connection reset: how a peer that
// closed without reading everything may end a connection.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET)
}

package conn_test

// Tests for rows of the conformance matrix (docs/conformance.md) that
// belong to one connection.

import (
	"bufio"
	"net"
	"sync"
	"testing"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
)

// slowCloseConn records what is written on it, in order, and holds Close
// until the writer has tried its write, as a slow scheduler may between
// Fail's DISCONNECT and its closing of the socket: a write in that gap
// reaches the peer.
type slowCloseConn struct {
	net.Conn
	mu           sync.Mutex
	writes       [][]byte
	disconnected chan struct{} // closed once a DISCONNECT was written
	discOnce     sync.Once
	tried        chan struct{} // closed once the writer tried its batch
}

func (c *slowCloseConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, append([]byte(nil), b...))
	c.mu.Unlock()
	n, err := c.Conn.Write(b)
	if len(b) > 0 && codec.PacketType(b[0]>>4) == codec.TypeDisconnect {
		c.discOnce.Do(func() { close(c.disconnected) })
	}
	return n, err
}

func (c *slowCloseConn) Close() error {
	<-c.tried
	return c.Conn.Close()
}

// failOnClaim fails the connection, as a reader that found a protocol
// error would, while the writer holds a batch it has already claimed.
type failOnClaim struct {
	c    *conn.Conn
	wire *slowCloseConn
}

func (f *failOnClaim) Claim() bool {
	go f.c.Fail(&conn.ProtocolError{Code: codec.ProtocolError, Reason: "test"})
	<-f.wire.disconnected
	return true
}

func (f *failOnClaim) Written(error) { close(f.wire.tried) }

// [MQTT-3.14.4-1]: nothing follows the DISCONNECT that Fail writes for a
// protocol error on an MQTT 5 connection, not even a batch the writer had
// taken and claimed before it.
func TestNothingWrittenAfterFailDisconnect(t *testing.T) {
	client, server := net.Pipe()
	wire := &slowCloseConn{Conn: client, disconnected: make(chan struct{}), tried: make(chan struct{})}
	p := &peer{t: t, nc: server, br: bufio.NewReader(server), v: codec.V5}
	go func() {
		p.read()
		p.write(&codec.Connack{})
	}()
	c, err := conn.Establish(t.Context(), wire, "pipe", conn.Config{
		Connect: &codec.Connect{Version: codec.V5, ClientID: "c", CleanStart: true},
		Inbound: make(chan conn.Inbound),
	})
	if err != nil {
		t.Fatal(err)
	}
	// The broker reads everything until the connection ends.
	var got []codec.Packet
	read := make(chan struct{})
	go func() {
		defer close(read)
		for {
			pk, err := codec.ReadPacket(p.br, codec.V5, 0)
			if err != nil {
				return
			}
			got = append(got, pk)
		}
	}()
	c.Send(conn.Frame{Packet: &codec.Publish{Topic: "late", QoS: 1, PacketID: 1}, Track: &failOnClaim{c: c, wire: wire}})
	err = c.WriteLoop(t.Context())
	if _, ok := err.(*conn.ProtocolError); !ok {
		t.Fatalf("WriteLoop: %v, want the *ProtocolError it failed with", err)
	}
	<-c.Done()
	server.Close()
	<-read
	if len(got) != 1 || got[0].Type() != codec.TypeDisconnect {
		var types []codec.PacketType
		for _, pk := range got {
			types = append(types, pk.Type())
		}
		t.Fatalf("the broker read %v, want the DISCONNECT alone", types)
	}
	wire.mu.Lock()
	defer wire.mu.Unlock()
	if n := len(wire.writes); n != 2 { // CONNECT, DISCONNECT
		t.Fatalf("%d writes on the socket, want CONNECT and DISCONNECT only", n)
	}
}

package mqtttest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// connectFrame returns the bytes of a CONNECT in the given version.
func connectFrame(t *testing.T, version byte) []byte {
	t.Helper()
	name := "MQTT"
	if version == 3 {
		name = "MQIsdp"
	}
	return encode(t, packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: version,
		Connect: packets.ConnectParams{
			ProtocolName:     []byte(name),
			ClientIdentifier: "scripted",
			Clean:            true,
		},
	})
}

// accept waits for the scripted broker's next connection.
func accept(t *testing.T, s *mqtttest.ScriptedBroker) *mqtttest.ScriptedConn {
	t.Helper()
	c, err := s.Accept(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// scriptedSession starts a scripted broker and connects a client to it.
func scriptedSession(t *testing.T, version byte) (*mqtttest.ScriptedBroker, *rawClient, *mqtttest.ScriptedConn) {
	t.Helper()
	s := mqtttest.NewScriptedBroker(t)
	client := dialRaw(t, s.Addr(), version)
	client.handshake("c", false, 0)
	return s, client, accept(t, s)
}

func TestScriptedDefaultConnack(t *testing.T) {
	tests := []struct {
		version byte
		connack string
	}{
		{3, "\x20\x02\x00\x00"},
		{4, "\x20\x02\x00\x00"},
		{5, "\x20\x03\x00\x00\x00"},
	}
	s := mqtttest.NewScriptedBroker(t)
	if s.URL() != "tcp://"+s.Addr() {
		t.Errorf("URL() = %q, Addr() = %q", s.URL(), s.Addr())
	}
	for _, tt := range tests {
		client, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		connect := connectFrame(t, tt.version)
		if _, err := client.Write(connect); err != nil {
			t.Fatal(err)
		}
		expect(t, client, tt.connack)
		c := accept(t, s)
		if !bytes.Equal(c.Connect(), connect) {
			t.Errorf("v%d: Connect() = %x, want %x", tt.version, c.Connect(), connect)
		}
	}
}

func TestScriptedSetConnack(t *testing.T) {
	s := mqtttest.NewScriptedBroker(t)
	dial := func() net.Conn {
		t.Helper()
		client, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Close() })
		if _, err := client.Write(connectFrame(t, 4)); err != nil {
			t.Fatal(err)
		}
		return client
	}

	s.SetConnack([]byte{0x20, 0x02, 0x01, 0x05}) // session present, not authorized
	expect(t, dial(), "\x20\x02\x01\x05")
	accept(t, s)

	s.SetConnack([]byte{}) // no answer at all
	silent := dial()
	accept(t, s) // handed over all the same
	expectOpen(t, silent, 100*time.Millisecond)

	s.SetConnack(nil)
	expect(t, dial(), "\x20\x02\x00\x00")
	accept(t, s)
}

func TestScriptedConversation(t *testing.T) {
	_, client, c := scriptedSession(t, 4)
	ctx := testCtx(t)

	client.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe},
		PacketID:    1,
		Filters:     packets.Subscriptions{{Filter: "a/#", Qos: 1}},
	})
	client.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	subscribe, err := c.ReadFrame(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := "\x82\x08\x00\x01\x00\x03a/#\x01"; string(subscribe) != want {
		t.Errorf("first frame %x, want SUBSCRIBE %x", subscribe, want)
	}
	ping, err := c.ReadFrame(ctx)
	if err != nil || string(ping) != "\xc0\x00" {
		t.Errorf("second frame %x (%v), want PINGREQ c000", ping, err)
	}

	// The test decides what the client gets: here a PUBLISH with an absurd
	// remaining length.
	hostile := []byte{0x30, 0xff, 0xff, 0xff, 0x7f, 0x00}
	if err := c.Write(hostile); err != nil {
		t.Fatal(err)
	}
	expect(t, client.conn, string(hostile))

	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if _, err := c.ReadFrame(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ReadFrame with nothing sent = %v, want a deadline error", err)
	}

	_ = client.conn.Close()
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("Done not closed after the client left")
	}
	_, err = c.ReadFrame(ctx)
	if !errors.Is(err, mqtttest.ErrClosed) || !errors.Is(err, io.EOF) {
		t.Fatalf("ReadFrame after the client left = %v, want ErrClosed and EOF", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// Frames the client sends before the broker's reader catches up, and a
// frame split across writes, come out whole and in order.
func TestScriptedReadFrameSplit(t *testing.T) {
	_, client, c := scriptedSession(t, 5)
	ctx := testCtx(t)
	big := bytes.Repeat([]byte("x"), 300) // a two-byte remaining length
	publish := encode(t, packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish},
		ProtocolVersion: 5,
		TopicName:       "t",
		Payload:         big,
	})
	for i := range publish {
		if _, err := client.conn.Write(publish[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.ReadFrame(ctx)
	if err != nil || !bytes.Equal(got, publish) {
		t.Fatalf("ReadFrame = %x (%v), want %x", got, err, publish)
	}
}

func TestScriptedClientMisbehaves(t *testing.T) {
	s := mqtttest.NewScriptedBroker(t)
	s.AllowViolations() // the misbehaviour is the point
	ctx := testCtx(t)

	// A first frame that is not a CONNECT: closed, never handed over.
	notConnect := dialRaw(t, s.Addr(), 4)
	notConnect.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	notConnect.expectEOF()
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if c, err := s.Accept(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Accept = %v, %v; want no connection", c, err)
	}

	// A remaining length of more than four bytes ends the connection.
	client := dialRaw(t, s.Addr(), 4)
	client.handshake("c", false, 0)
	c := accept(t, s)
	if _, err := client.conn.Write([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("a malformed length did not end the connection")
	}
	if _, err := c.ReadFrame(ctx); !errors.Is(err, mqtttest.ErrClosed) {
		t.Fatalf("ReadFrame = %v, want ErrClosed", err)
	}
}

func TestScriptedClose(t *testing.T) {
	s, err := mqtttest.StartScriptedBroker()
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	accepted := dialRaw(t, s.Addr(), 4)
	accepted.handshake("a", false, 0)
	c := accept(t, s)
	waiting := dialRaw(t, s.Addr(), 4) // still before its CONNECT
	queued := dialRaw(t, s.Addr(), 4)  // connected, never accepted
	queued.handshake("q", false, 0)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	<-c.Done()
	accepted.expectEOF()
	waiting.expectEOF()
	queued.expectEOF()
	if _, err := s.Accept(ctx); !errors.Is(err, mqtttest.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close of a connection already closed: %v", err)
	}
}

// Accept hands connections out in the order they arrived, not the order
// their CONNACKs were written: a client that reconnects at once after a
// refused CONNACK must not overtake the refused connection (a takeover
// test took one for the other, 2 runs in 150). Here the first connection
// sends its CONNECT only after the second was answered.
func TestScriptedAcceptKeepsArrivalOrder(t *testing.T) {
	s := mqtttest.NewScriptedBroker(t)
	f := frames{t, 4}
	first := dialBad(t, s.Addr(), 4)  // connected first,
	second := dialBad(t, s.Addr(), 4) // then this one,
	second.write(f.connect("second", 0, true))
	second.readUntil(codec.TypeConnack) // answered first,
	first.write(f.connect("first", 0, true))
	first.readUntil(codec.TypeConnack)
	for _, want := range []string{"first", "second"} {
		sc, err := s.Accept(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		p, _, err := codec.Decode(sc.Connect(), codec.V311, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.(*codec.Connect).ClientID; got != want {
			t.Fatalf("Accept returned %q, want %q: connections out of their arrival order", got, want)
		}
	}
}

// After the client's DISCONNECT the scripted broker closes the connection,
// as brokers do: ReadFrame returns the DISCONNECT, then the end, and the
// client reads the end of the stream. With KeepOpenAfterDisconnect it
// reads on, so that a test sees what the client sends after it.
func TestScriptedClosesAfterDisconnect(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprint("keep=", keep), func(t *testing.T) {
			ctx := testCtx(t)
			s := mqtttest.NewScriptedBroker(t)
			s.AllowViolations() // a PINGREQ after DISCONNECT, on purpose
			s.KeepOpenAfterDisconnect(keep)
			client := dialRaw(t, s.Addr(), 4)
			client.handshake("c", false, 0)
			c := accept(t, s)
			if _, err := client.conn.Write([]byte{0xE0, 0x00}); err != nil {
				t.Fatal(err)
			}
			if f, err := c.ReadFrame(ctx); err != nil || string(f) != "\xe0\x00" {
				t.Fatalf("ReadFrame = %x, %v, want the DISCONNECT", f, err)
			}
			if !keep {
				_, err := c.ReadFrame(ctx)
				if !errors.Is(err, mqtttest.ErrClosed) || !errors.Is(err, io.EOF) {
					t.Fatalf("ReadFrame after DISCONNECT = %v, want ErrClosed and EOF", err)
				}
				client.conn.SetReadDeadline(time.Now().Add(ioTimeout))
				if n, err := client.r.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
					t.Fatalf("the client read %d bytes (%v), want the end of the stream", n, err)
				}
				return
			}
			if _, err := client.conn.Write([]byte{0xC0, 0x00}); err != nil {
				t.Fatal(err)
			}
			if f, err := c.ReadFrame(ctx); err != nil || string(f) != "\xc0\x00" {
				t.Fatalf("ReadFrame = %x, %v, want the PINGREQ sent after DISCONNECT", f, err)
			}
		})
	}
}

package conn_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
)

// peer is the broker's end of a net.Pipe, driven by a test.
type peer struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
	v  byte
}

func (p *peer) read() codec.Packet {
	p.t.Helper()
	pk, err := codec.ReadPacket(p.br, p.v, 0)
	if err != nil {
		p.t.Fatalf("peer read: %v", err)
	}
	return pk
}

func (p *peer) write(pks ...codec.Packet) {
	p.t.Helper()
	var b []byte
	for _, pk := range pks {
		var err error
		if b, err = pk.AppendTo(b, p.v); err != nil {
			p.t.Fatalf("peer encode %T: %v", pk, err)
		}
	}
	if _, err := p.nc.Write(b); err != nil {
		p.t.Fatalf("peer write: %v", err)
	}
}

// countingConn counts Write calls, to see coalescing.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// establish connects a Conn to a peer over net.Pipe; the peer answers the
// CONNECT with connack.
func establish(t *testing.T, v byte, keepAlive uint16, connack *codec.Connack, inbound chan conn.Inbound) (*conn.Conn, *peer, *countingConn) {
	t.Helper()
	client, server := net.Pipe()
	cc := &countingConn{Conn: client}
	p := &peer{t: t, nc: server, br: bufio.NewReader(server), v: v}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, ok := p.read().(*codec.Connect); !ok {
			t.Error("first frame is not CONNECT")
			return
		}
		p.write(connack)
	}()
	c, err := conn.Establish(t.Context(), cc, "pipe", conn.Config{
		Connect: &codec.Connect{Version: v, ClientID: "c", KeepAlive: keepAlive, CleanStart: true},
		Inbound: inbound,
	})
	<-done
	if err != nil {
		t.Fatalf("Establish: %v", err)
	}
	t.Cleanup(func() { server.Close() })
	return c, p, cc
}

// run starts both loops and returns a channel with their errors.
func run(c *conn.Conn) <-chan error {
	errs := make(chan error, 2)
	ctx := context.Background()
	go func() { errs <- c.ReadLoop(ctx) }()
	go func() { errs <- c.WriteLoop(ctx) }()
	return errs
}

// The keepalive schedule, exactly: PINGREQ a margin before the interval,
// and failure half an interval after an unanswered one.
func TestKeepaliveSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, p, _ := establish(t, codec.V311, 4, &codec.Connack{}, make(chan conn.Inbound))
		start := time.Now()
		errs := run(c)
		if _, ok := p.read().(*codec.Pingreq); !ok {
			t.Fatal("want PINGREQ")
		}
		if got := time.Since(start); got != 3*time.Second {
			t.Fatalf("first PINGREQ after %s, want 3s (4s keepalive less the 1s margin)", got)
		}
		p.write(&codec.Pingresp{})
		if _, ok := p.read().(*codec.Pingreq); !ok {
			t.Fatal("want a second PINGREQ")
		}
		if got := time.Since(start); got != 6*time.Second {
			t.Fatalf("second PINGREQ after %s, want 6s", got)
		}
		// No answer: dead half a keepalive (2s) later.
		err := <-errs
		if !errors.Is(err, conn.ErrKeepAliveTimeout) {
			t.Fatalf("loop ended with %v, want ErrKeepAliveTimeout", err)
		}
		if got := time.Since(start); got != 8*time.Second {
			t.Fatalf("declared dead after %s, want 8s", got)
		}
		<-errs
		if !errors.Is(c.Err(), conn.ErrKeepAliveTimeout) {
			t.Fatalf("Err = %v", c.Err())
		}
	})
}

// Traffic from the broker does not stop pings when the client writes
// nothing (the client must still send within the interval), and an MQTT 5
// Server Keep Alive replaces the client's interval.
func TestServerKeepAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ska := uint16(8)
		c, p, _ := establish(t, codec.V5, 60, &codec.Connack{Properties: &codec.Properties{ServerKeepAlive: &ska}}, make(chan conn.Inbound))
		if c.KeepAlive() != 8*time.Second {
			t.Fatalf("KeepAlive = %s, want the server's 8s", c.KeepAlive())
		}
		start := time.Now()
		errs := run(c)
		if _, ok := p.read().(*codec.Pingreq); !ok {
			t.Fatal("want PINGREQ")
		}
		if got := time.Since(start); got != 7*time.Second {
			t.Fatalf("PINGREQ after %s, want 7s", got)
		}
		c.Close()
		<-errs
		<-errs
	})
}

// Everything queued while the writer was busy goes out in one write.
func TestWritesCoalesce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, p, cc := establish(t, codec.V311, 0, &codec.Connack{}, make(chan conn.Inbound))
		before := cc.writes.Load()
		for i := range 100 {
			c.Send(conn.Frame{Packet: &codec.Publish{Topic: "t", Payload: []byte{byte(i)}, QoS: 1, PacketID: uint16(i + 1)}})
		}
		errs := run(c)
		for i := range 100 {
			pk, ok := p.read().(*codec.Publish)
			if !ok || pk.PacketID != uint16(i+1) {
				t.Fatalf("frame %d: %+v", i, pk)
			}
		}
		if got := cc.writes.Load() - before; got != 1 {
			t.Fatalf("%d writes for 100 queued frames, want 1", got)
		}
		c.Close()
		<-errs
		<-errs
	})
}

// tracker records what the writer did with a frame.
type tracker struct {
	allow   bool
	mu      sync.Mutex
	claimed bool
	written chan error
}

func (tr *tracker) Claim() bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.claimed = tr.allow
	return tr.allow
}

func (tr *tracker) Written(err error) { tr.written <- err }

// A withdrawn frame is skipped; a claimed one is reported once written;
// what the writer never took comes back from Drain.
func TestTrackersAndDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, p, _ := establish(t, codec.V311, 0, &codec.Connack{}, make(chan conn.Inbound))
		skip := &tracker{allow: false, written: make(chan error, 1)}
		keep := &tracker{allow: true, written: make(chan error, 1)}
		c.Send(conn.Frame{Packet: &codec.Publish{Topic: "withdrawn"}, Track: skip})
		c.Send(conn.Frame{Packet: &codec.Publish{Topic: "kept"}, Track: keep})
		errs := run(c)
		if pk := p.read().(*codec.Publish); pk.Topic != "kept" {
			t.Fatalf("wrote %q, want only kept", pk.Topic)
		}
		if err := <-keep.written; err != nil {
			t.Fatalf("Written(%v)", err)
		}
		if len(skip.written) != 0 {
			t.Fatal("a withdrawn frame was reported written")
		}
		c.Close()
		<-errs
		<-errs
		if c.Send(conn.Frame{Packet: &codec.Pingreq{}}) {
			t.Fatal("Send accepted a frame after the connection ended")
		}
	})
	// Drain after failure returns what was never taken, in order.
	synctest.Test(t, func(t *testing.T) {
		c, _, _ := establish(t, codec.V311, 0, &codec.Connack{}, make(chan conn.Inbound))
		for _, topic := range []string{"a", "b", "c"} {
			c.Send(conn.Frame{Packet: &codec.Publish{Topic: topic}})
		}
		c.Close()
		var got []string
		for _, f := range c.Drain() {
			got = append(got, f.Packet.(*codec.Publish).Topic)
		}
		if strings.Join(got, ",") != "a,b,c" {
			t.Fatalf("Drain = %v, want a,b,c", got)
		}
	})
}

// Frames a server may not send end the connection with a *ProtocolError;
// an MQTT 5 DISCONNECT with a *DisconnectError.
func TestReaderScreensServerFrames(t *testing.T) {
	cases := []struct {
		name string
		v    byte
		send codec.Packet
		code codec.ReasonCode
	}{
		{"second CONNACK", codec.V311, &codec.Connack{}, codec.ProtocolError},
		{"SUBSCRIBE from server", codec.V311, &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "a"}}}, codec.ProtocolError},
		{"PINGREQ from server", codec.V311, &codec.Pingreq{}, codec.ProtocolError},
		{"AUTH unasked", codec.V5, &codec.Auth{ReasonCode: codec.ContinueAuthentication, Properties: &codec.Properties{AuthenticationMethod: "x"}}, codec.ProtocolError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, p, _ := establish(t, tc.v, 0, &codec.Connack{}, make(chan conn.Inbound))
				errs := run(c)
				p.write(tc.send)
				err := <-errs
				var pe *conn.ProtocolError
				if !errors.As(err, &pe) || pe.Code != tc.code {
					t.Fatalf("loop ended with %v, want a *ProtocolError %s", err, tc.code)
				}
				<-errs
			})
		})
	}
	t.Run("DISCONNECT v5", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			c, p, _ := establish(t, codec.V5, 0, &codec.Connack{}, make(chan conn.Inbound))
			errs := run(c)
			p.write(&codec.Disconnect{ReasonCode: codec.ServerMoved, Properties: &codec.Properties{ServerReference: "tcp://127.0.0.1:2"}})
			err := <-errs
			var de *conn.DisconnectError
			if !errors.As(err, &de) || de.ReasonCode != codec.ServerMoved || de.ServerReference != "tcp://127.0.0.1:2" {
				t.Fatalf("loop ended with %v, want a *DisconnectError ServerMoved", err)
			}
			<-errs
		})
	})
}

// A frame larger than MaxPacketSize is refused from its header.
func TestMaxPacketSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := net.Pipe()
		defer server.Close()
		p := &peer{t: t, nc: server, br: bufio.NewReader(server), v: codec.V311}
		go func() {
			p.read()
			p.write(&codec.Connack{})
			// Claims 268,435,455 bytes; only the header is ever sent.
			server.Write([]byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F})
		}()
		c, err := conn.Establish(t.Context(), client, "pipe", conn.Config{
			Connect:       &codec.Connect{Version: codec.V311, ClientID: "c", CleanStart: true},
			MaxPacketSize: 1024,
			Inbound:       make(chan conn.Inbound),
		})
		if err != nil {
			t.Fatal(err)
		}
		err = c.ReadLoop(context.Background())
		var pe *conn.ProtocolError
		if !errors.As(err, &pe) || pe.Code != codec.PacketTooLarge {
			t.Fatalf("ReadLoop = %v, want a *ProtocolError PacketTooLarge", err)
		}
	})
}

// The handshake: refusals are typed, a wrong first packet is a protocol
// error, silence ends with ctx.
func TestHandshake(t *testing.T) {
	try := func(t *testing.T, v byte, answer []byte, ctx context.Context) error {
		client, server := net.Pipe()
		defer server.Close()
		go func() {
			br := bufio.NewReader(server)
			if _, err := codec.ReadPacket(br, v, 0); err != nil {
				return
			}
			if answer != nil {
				server.Write(answer)
			}
		}()
		_, err := conn.Establish(ctx, client, "pipe", conn.Config{
			Connect: &codec.Connect{Version: v, ClientID: "c", CleanStart: true},
		})
		return err
	}
	synctest.Test(t, func(t *testing.T) {
		var ce *conn.ConnectError
		err := try(t, codec.V311, []byte{0x20, 0x02, 0x00, 0x04}, t.Context())
		if !errors.As(err, &ce) || ce.ReasonCode != codec.BadUserNameOrPassword {
			t.Fatalf("3.1.1 return code 4: %v, want *ConnectError BadUserNameOrPassword", err)
		}
		err = try(t, codec.V5, []byte{0x20, 0x03, 0x00, 0x8A, 0x00}, t.Context())
		if !errors.As(err, &ce) || ce.ReasonCode != codec.Banned {
			t.Fatalf("v5 0x8A: %v, want *ConnectError Banned", err)
		}
		var pe *conn.ProtocolError
		err = try(t, codec.V311, []byte{0xD0, 0x00}, t.Context()) // PINGRESP first
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "expected CONNACK") {
			t.Fatalf("PINGRESP first: %v, want a *ProtocolError", err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		start := time.Now()
		err = try(t, codec.V311, nil, ctx)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 5*time.Second {
			t.Fatalf("silent broker: %v after %s, want DeadlineExceeded after 5s", err, time.Since(start))
		}
	})
}

func TestParseServer(t *testing.T) {
	good := map[string]string{
		"tcp://127.0.0.1":       "127.0.0.1:1883",
		"mqtt://127.0.0.1:1884": "127.0.0.1:1884",
		"tls://[::1]":           "[::1]:8883",
		"MQTTS://localhost":     "localhost:8883",
	}
	for in, host := range good {
		u, err := conn.ParseServer(in)
		if err != nil || u.Host != host {
			t.Errorf("ParseServer(%q) = %v, %v; want host %s", in, u, err, host)
		}
	}
	bad := map[string]string{
		"127.0.0.1:1883":        "no scheme",
		"http://127.0.0.1":      "unknown scheme",
		"tcp://":                "no host",
		"tcp://127.0.0.1:99999": "bad port",
		"tcp://127.0.0.1:port":  "invalid port",
	}
	for in, want := range bad {
		if _, err := conn.ParseServer(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseServer(%q) = %v, want an error saying %q", in, err, want)
		}
	}
}

// A plain acknowledgement arrives without a decoded packet (no allocation);
// any other form is decoded as usual.
func TestPlainAcks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inbound := make(chan conn.Inbound, 8)
		c, p, _ := establish(t, codec.V5, 0, &codec.Connack{}, inbound)
		errs := run(c)
		p.write(&codec.Puback{PacketID: 7}, &codec.Pubrec{PacketID: 8}, &codec.Pubcomp{PacketID: 9},
			&codec.Puback{PacketID: 10, ReasonCode: codec.NotAuthorized})
		for _, want := range []struct {
			t  codec.PacketType
			id uint16
		}{{codec.TypePuback, 7}, {codec.TypePubrec, 8}, {codec.TypePubcomp, 9}} {
			in := <-inbound
			if in.Packet != nil || in.Ack != want.t || in.ID != want.id || in.Conn != c {
				t.Fatalf("got %+v, want a plain %s for %d", in, want.t, want.id)
			}
		}
		in := <-inbound
		if pk, ok := in.Packet.(*codec.Puback); !ok || pk.ReasonCode != codec.NotAuthorized || pk.PacketID != 10 {
			t.Fatalf("got %+v, want the decoded PUBACK 10 with its reason code", in)
		}
		c.Close()
		<-errs
		<-errs
	})
}

// An MQTT 3.1.1 broker answers an MQTT 5 CONNECT with the 3.1.1 CONNACK
// 20 02 00 01 (return code 1, unacceptable protocol version): that is a
// refusal that says what to do, not a protocol error. Other 2-byte CONNACKs
// to an MQTT 5 CONNECT (the v5 CONNACK has at least 3: flags, reason,
// property length) are decoded as before.
func TestHandshakeV311Broker(t *testing.T) {
	const hint = "the broker does not speak MQTT 5 (it answered with an MQTT 3.1.1 CONNACK refusing protocol level 5); use Version 4"
	// try sends a CONNECT of version v and returns what Establish made of
	// answer; then the broker closes the pipe, or, if hold, keeps it open.
	try := func(ctx context.Context, v byte, answer []byte, hold bool) error {
		client, server := net.Pipe()
		defer server.Close()
		go func() {
			if _, err := codec.ReadPacket(bufio.NewReader(server), v, 0); err != nil {
				return
			}
			server.Write(answer)
			if !hold {
				server.Close()
			}
		}()
		_, err := conn.Establish(ctx, client, "pipe", conn.Config{
			Connect: &codec.Connect{Version: v, ClientID: "c", CleanStart: true},
		})
		return err
	}
	synctest.Test(t, func(t *testing.T) {
		var ce *conn.ConnectError
		var pe *conn.ProtocolError
		err := try(t.Context(), codec.V5, []byte{0x20, 0x02, 0x00, 0x01}, true)
		if !errors.As(err, &ce) || ce.ReasonCode != codec.UnsupportedProtocolVersion || ce.Hint != hint ||
			!strings.Contains(err.Error(), hint) || errors.As(err, &pe) {
			t.Fatalf("v5 CONNECT, 3.1.1 CONNACK 20 02 00 01: %v; want a *ConnectError UnsupportedProtocolVersion saying %q", err, hint)
		}
		// The same bytes to a 3.1.1 CONNECT, and a genuine v5 refusal of
		// the protocol version: plain refusals, no hint.
		for _, tc := range []struct {
			v      byte
			answer []byte
		}{
			{codec.V311, []byte{0x20, 0x02, 0x00, 0x01}},
			{codec.V5, []byte{0x20, 0x03, 0x00, 0x84, 0x00}},
		} {
			err := try(t.Context(), tc.v, tc.answer, true)
			if !errors.As(err, &ce) || ce.ReasonCode != codec.UnsupportedProtocolVersion || ce.Hint != "" {
				t.Errorf("version %d, CONNACK % X: %v; want a *ConnectError UnsupportedProtocolVersion without a hint", tc.v, tc.answer, err)
			}
		}
		// Other 2-byte CONNACKs to a v5 CONNECT: protocol errors, as before.
		for _, tc := range []struct {
			answer []byte
			code   codec.ReasonCode
		}{
			{[]byte{0x20, 0x02, 0x00, 0x00}, codec.MalformedPacket}, // no property length
			{[]byte{0x20, 0x02, 0x00, 0x05}, codec.ProtocolError},   // 0x05 is no v5 CONNACK reason
			{[]byte{0x20, 0x02, 0x01, 0x01}, codec.ProtocolError},   // session present: not a 3.1.1 refusal either
		} {
			err := try(t.Context(), codec.V5, tc.answer, true)
			if !errors.As(err, &pe) || pe.Code != tc.code || errors.As(err, &ce) {
				t.Errorf("v5 CONNECT, CONNACK % X: %v; want a *ProtocolError %s", tc.answer, err, tc.code)
			}
		}
		// A CONNACK cut short is a read error; silence ends with ctx.
		for _, answer := range [][]byte{{0x20}, {0x20, 0x02}, {0x20, 0x02, 0x00}} {
			err := try(t.Context(), codec.V5, answer, false)
			if !errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ce) || errors.As(err, &pe) {
				t.Errorf("v5 CONNECT, % X then close: %v; want unexpected EOF", answer, err)
			}
		}
		// Closed without an answer: some brokers of MQTT 3.1.1 alone do so
		// to an MQTT 5 CONNECT, and the error says what to try.
		const closedHint = "use Version 4"
		if err := try(t.Context(), codec.V5, nil, false); !errors.Is(err, conn.ErrServerClosed) || !strings.Contains(err.Error(), closedHint) {
			t.Errorf("v5 CONNECT, closed without an answer: %v; want ErrServerClosed saying %q", err, closedHint)
		}
		if err := try(t.Context(), codec.V311, nil, false); !errors.Is(err, conn.ErrServerClosed) || strings.Contains(err.Error(), closedHint) {
			t.Errorf("3.1.1 CONNECT, closed without an answer: %v; want ErrServerClosed without the hint", err)
		}
		for _, answer := range [][]byte{nil, {0x20, 0x02, 0x00}} {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			start := time.Now()
			err := try(ctx, codec.V5, answer, true)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 5*time.Second {
				t.Errorf("v5 CONNECT, % X then silence: %v after %s, want DeadlineExceeded after 5s", answer, err, time.Since(start))
			}
		}
	})
}

// Without a dial to time (Establish), RoundTrip is the time from writing
// CONNECT to reading CONNACK.
func TestRoundTripOfTheHandshake(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := net.Pipe()
		defer server.Close()
		p := &peer{t: t, nc: server, br: bufio.NewReader(server), v: codec.V311}
		const rtt = 1500 * time.Millisecond
		go func() {
			p.read()
			time.Sleep(rtt) // the link and the broker, on synctest's clock
			p.write(&codec.Connack{})
		}()
		c, err := conn.Establish(t.Context(), client, "pipe", conn.Config{
			Connect: &codec.Connect{Version: codec.V311, ClientID: "c", CleanStart: true},
			Inbound: make(chan conn.Inbound),
		})
		if err != nil {
			t.Fatalf("Establish: %v", err)
		}
		defer c.Close()
		if got := c.RoundTrip(); got != rtt {
			t.Fatalf("RoundTrip() = %v, want %v", got, rtt)
		}
	})
}

// Through Open, RoundTrip is the smaller of the dial and CONNECT/CONNACK:
// a broker slow to accept (1.5 s) on a link whose handshake took 200 ms
// has a 200 ms round trip; a dial slower than the CONNACK, the CONNACK's.
func TestRoundTripIsTheLinks(t *testing.T) {
	for _, tc := range []struct {
		dial, connack, want time.Duration
	}{
		{200 * time.Millisecond, 1500 * time.Millisecond, 200 * time.Millisecond},
		{3 * time.Second, 700 * time.Millisecond, 700 * time.Millisecond},
	} {
		synctest.Test(t, func(t *testing.T) {
			client, server := net.Pipe()
			defer server.Close()
			p := &peer{t: t, nc: server, br: bufio.NewReader(server), v: codec.V311}
			go func() {
				p.read()
				time.Sleep(tc.connack)
				p.write(&codec.Connack{})
			}()
			c, err := conn.Open(t.Context(), "tcp://slow.link:1883", conn.Config{
				Connect: &codec.Connect{Version: codec.V311, ClientID: "c", CleanStart: true},
				Inbound: make(chan conn.Inbound),
				Dial: func(context.Context, string) (net.Conn, error) {
					time.Sleep(tc.dial) // the link's handshake, on synctest's clock
					return client, nil
				},
			})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer c.Close()
			if got := c.RoundTrip(); got != tc.want {
				t.Fatalf("dial %s, CONNACK after %s: RoundTrip() = %v, want %v", tc.dial, tc.connack, got, tc.want)
			}
		})
	}
}

// The built-in dial times its TCP handshake: over loopback to a broker
// that takes 300 ms to accept the CONNECT, RoundTrip is the handshake's
// (well under the CONNACK's 300 ms), not the broker's.
func TestRoundTripTimesTheTCPHandshake(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const slow = 300 * time.Millisecond
	served := make(chan struct{})
	go func() {
		defer close(served)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		p := &peer{t: t, nc: nc, br: bufio.NewReader(nc), v: codec.V311}
		p.read()
		accept := time.NewTimer(slow) // the broker's own delay
		<-accept.C
		p.write(&codec.Connack{})
		_, _ = io.Copy(io.Discard, nc)
	}()
	c, err := conn.Open(t.Context(), "tcp://"+ln.Addr().String(), conn.Config{
		Connect: &codec.Connect{Version: codec.V311, ClientID: "c", CleanStart: true},
		Inbound: make(chan conn.Inbound),
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got := c.RoundTrip(); got >= slow {
		t.Errorf("RoundTrip() = %v: the broker's delay, not the TCP handshake's", got)
	}
	c.Close()
	<-served
}

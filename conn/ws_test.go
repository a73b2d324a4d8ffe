package conn_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
)

// wsPeer is a broker behind a WebSocket endpoint, scripted message by
// message, so that a test chooses where message boundaries fall.
type wsPeer struct {
	t   *testing.T
	ws  *websocket.Conn
	req *http.Request
}

// serveWS starts an HTTP server on loopback that upgrades every request to
// WebSocket (the subprotocol "mqtt" if offered) and runs script on it. It
// returns "ws://127.0.0.1:port". script runs on the server's goroutine, so
// it reports with t.Error, not t.Fatal.
func serveWS(t *testing.T, script func(p *wsPeer)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"mqtt"}})
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		defer ws.CloseNow()
		script(&wsPeer{t: t, ws: ws, req: r})
	}))
	t.Cleanup(srv.Close)
	return "ws://" + srv.Listener.Addr().String()
}

// send writes each of msgs as one binary message.
func (p *wsPeer) send(msgs ...[]byte) bool {
	for _, m := range msgs {
		if err := p.ws.Write(p.t.Context(), websocket.MessageBinary, m); err != nil {
			p.t.Errorf("peer write: %v", err)
			return false
		}
	}
	return true
}

// recv reads one message, which must be binary.
func (p *wsPeer) recv() ([]byte, bool) {
	typ, b, err := p.ws.Read(p.t.Context())
	if err != nil {
		p.t.Errorf("peer read: %v", err)
		return nil, false
	}
	if typ != websocket.MessageBinary {
		p.t.Errorf("the client sent a %v message, want binary", typ)
		return nil, false
	}
	return b, true
}

// handshake reads the client's CONNECT, which must come as one message,
// and answers it with a CONNACK split across two messages.
func (p *wsPeer) handshake() bool {
	b, ok := p.recv()
	if !ok {
		return false
	}
	if pk, n, err := codec.Decode(b, codec.V311, 0); err != nil || n != len(b) {
		p.t.Errorf("the first message is not one whole frame: %v (%d of %d bytes)", err, n, len(b))
		return false
	} else if _, ok := pk.(*codec.Connect); !ok {
		p.t.Errorf("the first frame is %T, want CONNECT", pk)
		return false
	}
	ack := encode(p.t, &codec.Connack{})
	return p.send(ack[:1], ack[1:])
}

// encode appends the 3.1.1 frames of pks.
func encode(t *testing.T, pks ...codec.Packet) []byte {
	var b []byte
	for _, pk := range pks {
		var err error
		if b, err = pk.AppendTo(b, codec.V311); err != nil {
			t.Errorf("encode %T: %v", pk, err)
		}
	}
	return b
}

// openWS opens a 3.1.1 connection to server; its loops are not running.
func openWS(t *testing.T, server string, inbound chan conn.Inbound) (*conn.Conn, error) {
	return conn.Open(t.Context(), server, conn.Config{
		Connect:        &codec.Connect{Version: codec.V311, ClientID: "ws", CleanStart: true},
		ConnectTimeout: 10 * time.Second,
		Inbound:        inbound,
	})
}

// MQTT frames and WebSocket messages are independent: a frame may span
// messages, a message may hold several frames and end inside one, an empty
// message is nothing; each write of the client is one binary message.
func TestWebSocketFraming(t *testing.T) {
	pubs := []*codec.Publish{
		{Topic: "a", Payload: []byte("one")},
		{Topic: "a", Payload: []byte("two"), QoS: 1, PacketID: 1},
		{Topic: "a", Payload: []byte("three")},
	}
	sent := make(chan []byte, 1)
	server := serveWS(t, func(p *wsPeer) {
		if got := p.ws.Subprotocol(); got != "mqtt" {
			t.Errorf("subprotocol %q, want mqtt", got)
		}
		if !p.handshake() {
			return
		}
		b := encode(t, pubs[0], pubs[1], pubs[2])
		cut := len(b) - 3
		if !p.send(b[:cut], nil, b[cut:]) {
			return
		}
		if m, ok := p.recv(); ok {
			sent <- m
		}
		p.ws.Close(websocket.StatusNormalClosure, "")
	})
	inbound := make(chan conn.Inbound, len(pubs))
	c, err := openWS(t, server, inbound)
	if err != nil {
		t.Fatal(err)
	}
	errs := run(c)
	for i, want := range pubs {
		in := <-inbound
		got, ok := in.Packet.(*codec.Publish)
		if !ok || got.Topic != want.Topic || string(got.Payload) != string(want.Payload) || got.PacketID != want.PacketID {
			t.Fatalf("frame %d: %+v, want %+v", i, in.Packet, want)
		}
	}
	c.Send(conn.Frame{Packet: &codec.Puback{PacketID: 1}})
	if got, want := <-sent, encode(t, &codec.Puback{PacketID: 1}); string(got) != string(want) {
		t.Fatalf("the client's message is % x, want the PUBACK % x", got, want)
	}
	// A close frame with status 1000 is the end of the stream.
	if err := <-errs; !errors.Is(err, conn.ErrServerClosed) {
		t.Fatalf("after the server's close: %v, want ErrServerClosed", err)
	}
	<-errs
}

// The URL's path and query go into the upgrade request; no path means
// DefaultWebSocketPath; user information becomes HTTP Basic authentication.
func TestWebSocketURL(t *testing.T) {
	type request struct{ path, query, user, password string }
	got := make(chan request, 1)
	server := serveWS(t, func(p *wsPeer) {
		user, password, _ := p.req.BasicAuth()
		got <- request{p.req.URL.Path, p.req.URL.RawQuery, user, password}
		p.handshake()
	})
	host := strings.TrimPrefix(server, "ws://")
	for _, tc := range []struct {
		url  string
		want request
	}{
		{"ws://" + host, request{path: "/mqtt"}},
		{"WS://" + host + "/", request{path: "/"}},
		{"ws://" + host + "/brokers/one?token=x%20y", request{path: "/brokers/one", query: "token=x%20y"}},
		{"ws://dev:s3cret@" + host + "/mqtt", request{path: "/mqtt", user: "dev", password: "s3cret"}},
	} {
		c, err := openWS(t, tc.url, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		c.Close()
		if r := <-got; r != tc.want {
			t.Errorf("%s: the server saw %+v, want %+v", tc.url, r, tc.want)
		}
	}
}

func TestParseWebSocketServer(t *testing.T) {
	for in, want := range map[string]string{
		"ws://127.0.0.1":            "ws://127.0.0.1:80/mqtt",
		"wss://[::1]":               "wss://[::1]:443/mqtt",
		"ws://localhost:8080/":      "ws://localhost:8080/",
		"WSS://localhost/a/b?c=d":   "wss://localhost:443/a/b?c=d",
		"ws://u:p@localhost:9/mqtt": "ws://u:p@localhost:9/mqtt",
	} {
		u, err := conn.ParseServer(in)
		if err != nil || u.String() != want {
			t.Errorf("ParseServer(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	_, err := conn.ParseServer("http://127.0.0.1")
	for _, scheme := range []string{"tcp", "mqtt", "tls", "ssl", "mqtts", "ws", "wss"} {
		if err == nil || !strings.Contains(err.Error(), scheme+"://") {
			t.Errorf("the unknown-scheme error %q does not list %s://", err, scheme)
		}
	}
}

// What a WebSocket server may do wrong, and the errors that say so.
func TestWebSocketFailures(t *testing.T) {
	t.Run("not a WebSocket endpoint", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(srv.Close)
		server := "ws://" + srv.Listener.Addr().String() + "/mqtt"
		_, err := openWS(t, server, nil)
		if err == nil || !strings.Contains(err.Error(), server) || !strings.Contains(err.Error(), "404") {
			t.Fatalf("Open = %v, want an error naming %s and the HTTP 404", err, server)
		}
		t.Log(err)
	})
	for _, tc := range []struct {
		name   string
		after  func(p *wsPeer) // what the server does after CONNACK
		wantIn string          // in the error
		wantIs error           // errors.Is, if set
	}{
		{"text message", func(p *wsPeer) {
			p.ws.Write(t.Context(), websocket.MessageText, []byte("hello"))
			p.ws.Read(t.Context()) // until the client goes
		}, "MessageText", nil},
		{"close with a reason", func(p *wsPeer) {
			p.ws.Close(websocket.StatusPolicyViolation, "go away")
		}, "go away", nil},
		{"dropped", func(p *wsPeer) {
			p.ws.CloseNow() // TCP closed, no close frame
		}, "", conn.ErrServerClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server := serveWS(t, func(p *wsPeer) {
				if p.handshake() {
					tc.after(p)
				}
			})
			c, err := openWS(t, server, make(chan conn.Inbound))
			if err != nil {
				t.Fatal(err)
			}
			errs := run(c)
			err = <-errs
			<-errs
			if err == nil || !strings.Contains(err.Error(), tc.wantIn) || tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Fatalf("the connection ended with %v, want an error saying %q (errors.Is %v)", err, tc.wantIn, tc.wantIs)
			}
			t.Log(err)
		})
	}
}

// The dial's ctx bounds the upgrade and the CONNACK, not the connection; a
// Close returns at once even when the server has stopped answering (no
// WebSocket closing handshake to wait for).
func TestWebSocketContextAndClose(t *testing.T) {
	silent := func(after func(p *wsPeer) bool) string {
		return serveWS(t, func(p *wsPeer) {
			if after(p) {
				<-t.Context().Done() // silent until the test ends
			}
		})
	}
	// A TCP server that never answers the upgrade request.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err == nil {
			accepted <- nc
		}
		close(accepted)
	}()
	t.Cleanup(func() {
		ln.Close()
		for nc := range accepted {
			nc.Close()
		}
	})
	for name, server := range map[string]string{
		"no answer to the upgrade": "ws://" + ln.Addr().String(),
		"no CONNACK":               silent(func(*wsPeer) bool { return true }),
	} {
		start := time.Now()
		_, err := conn.Open(t.Context(), server, conn.Config{
			Connect:        &codec.Connect{Version: codec.V311, ClientID: "ws", CleanStart: true},
			ConnectTimeout: 100 * time.Millisecond,
		})
		if err == nil || !strings.Contains(err.Error(), "connect timeout") || time.Since(start) > 5*time.Second {
			t.Fatalf("%s: %v after %s, want the connect timeout", name, err, time.Since(start))
		}
		t.Logf("%s: %v", name, err)
	}

	server := silent(func(p *wsPeer) bool { return p.handshake() })
	ctx, cancel := context.WithCancel(t.Context())
	inbound := make(chan conn.Inbound)
	c, err := conn.Open(ctx, server, conn.Config{
		Connect:        &codec.Connect{Version: codec.V311, ClientID: "ws", CleanStart: true},
		ConnectTimeout: time.Second,
		Inbound:        inbound,
	})
	cancel() // as Open's own ConnectTimeout ctx ends when it returns
	if err != nil {
		t.Fatal(err)
	}
	errs := run(c)
	ok := make(chan bool, 1)
	c.Send(conn.Frame{Packet: &codec.Pingreq{}, Track: trackFunc(func(err error) { ok <- err == nil })})
	if !<-ok {
		t.Fatal("a write failed after the dial's ctx ended")
	}
	start := time.Now()
	c.Close()
	<-errs
	<-errs
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %s with a silent server", d)
	}
}

// trackFunc is a Tracker that claims every frame and reports its write.
type trackFunc func(err error)

func (trackFunc) Claim() bool         { return true }
func (f trackFunc) Written(err error) { f(err) }

// However a broker ends a WebSocket connection, with a close frame of any
// status or by dropping the TCP connection under it, it is the broker's
// end (ErrServerClosed), as a TCP broker's close is: the session counts it
// when it looks for a PUBLISH the broker refuses by closing. A close
// frame's status and reason are in the message.
func TestWebSocketBrokerCloses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		end   func(p *wsPeer)
		words []string
	}{
		{"normal closure", func(p *wsPeer) { p.ws.Close(websocket.StatusNormalClosure, "bye") }, nil},
		{"going away", func(p *wsPeer) { p.ws.Close(websocket.StatusGoingAway, "") }, nil},
		{"policy violation", func(p *wsPeer) { p.ws.Close(websocket.StatusPolicyViolation, "QoS 2 not allowed") },
			[]string{"1008", "QoS 2 not allowed"}},
		{"internal error", func(p *wsPeer) { p.ws.Close(websocket.StatusInternalError, "") }, []string{"1011"}},
		{"no close frame", func(p *wsPeer) { p.ws.CloseNow() }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server := serveWS(t, func(p *wsPeer) {
				if p.handshake() {
					tc.end(p)
				}
			})
			c, err := openWS(t, server, make(chan conn.Inbound, 1))
			if err != nil {
				t.Fatal(err)
			}
			errs := run(c)
			err = <-errs
			<-errs
			if !errors.Is(err, conn.ErrServerClosed) {
				t.Fatalf("the connection ended with %v, want ErrServerClosed", err)
			}
			for _, w := range tc.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
		})
	}
}

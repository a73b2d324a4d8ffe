package mqtttest_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/robustmqtt/mqtt/mqtttest"
)

// dialURL opens a raw client connection to a broker's URL, in its
// transport: tcp://, tls:// (verified with roots), ws:// or wss://, with
// the given WebSocket subprotocols. The connection is closed at the end of
// the test.
func dialURL(t *testing.T, server string, roots *x509.CertPool, version byte, subprotocols ...string) (*rawClient, error) {
	t.Helper()
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	tlsConfig := &tls.Config{RootCAs: roots}
	var nc net.Conn
	switch u.Scheme {
	case "tcp":
		nc, err = net.Dial("tcp", u.Host)
	case "tls":
		nc, err = tls.Dial("tcp", u.Host, tlsConfig)
	case "ws", "wss":
		tr := &http.Transport{TLSClientConfig: tlsConfig}
		defer tr.CloseIdleConnections()
		var ws *websocket.Conn
		ws, _, err = websocket.Dial(t.Context(), server, &websocket.DialOptions{
			HTTPClient:   &http.Client{Transport: tr},
			Subprotocols: subprotocols,
		})
		if err == nil {
			nc = websocket.NetConn(t.Context(), ws, websocket.MessageBinary)
			t.Cleanup(func() { ws.CloseNow() })
		}
	default:
		t.Fatalf("dialURL: scheme %q", u.Scheme)
	}
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &rawClient{t: t, conn: nc, r: bufio.NewReader(nc), version: version}, nil
}

// The broker serves TLS, WebSocket and WebSocket over TLS, and its outages
// work the same over each: Kick and Stop end the connections, Stop refuses
// new ones, and after Start a persistent session resumes with what was
// published meanwhile.
func TestBrokerTransports(t *testing.T) {
	ca := mqtttest.NewCA(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1")}}
	for _, tc := range []struct {
		scheme string
		cfg    mqtttest.BrokerConfig
	}{
		{"tls", mqtttest.BrokerConfig{TLS: serverTLS}},
		{"ws", mqtttest.BrokerConfig{WebSocket: true}},
		{"wss", mqtttest.BrokerConfig{TLS: serverTLS, WebSocket: true}},
	} {
		t.Run(tc.scheme, func(t *testing.T) {
			forVersions(t, func(t *testing.T, version byte) {
				b := mqtttest.NewBrokerWith(t, tc.cfg)
				if !strings.HasPrefix(b.URL(), tc.scheme+"://"+b.Addr()) {
					t.Fatalf("URL() = %s, want %s://%s...", b.URL(), tc.scheme, b.Addr())
				}
				ctx := testCtx(t)
				dial := func() *rawClient {
					t.Helper()
					c, err := dialURL(t, b.URL(), ca.Pool(), version, "mqtt")
					if err != nil {
						t.Fatal(err)
					}
					return c
				}
				connect := func(clientID string) (*rawClient, bool) {
					t.Helper()
					c := dial()
					return c, c.handshake(clientID, true, 0).SessionPresent
				}

				sub, _ := connect("sub")
				sub.subscribe("t/#", 1)
				pub, _ := connect("pub")
				pub.publish("t/1", "before", 1, 1)
				sub.receivePayloads("before")
				// Its PUBACK processed, so that the session does not send it again.
				if err := b.Wait(ctx, func() bool { return b.Inflight("sub") == 0 }); err != nil {
					t.Fatal(err)
				}

				b.Kick()
				sub.expectEOF()
				pub.expectEOF()
				if err := b.WaitDisconnected(ctx, "sub"); err != nil {
					t.Fatal(err)
				}

				if err := b.Stop(); err != nil {
					t.Fatal(err)
				}
				if _, err := dialURL(t, b.URL(), ca.Pool(), version, "mqtt"); err == nil {
					t.Fatal("the stopped broker accepted a connection")
				}
				if err := b.Publish("t/2", []byte("while away"), 1, false); err != nil {
					t.Fatal(err)
				}
				if err := b.Start(); err != nil {
					t.Fatal(err)
				}
				sub, present := connect("sub")
				if !present {
					t.Fatal("the session did not survive Stop and Start")
				}
				sub.receivePayloads("while away")

				if err := b.Restart(); err != nil {
					t.Fatal(err)
				}
				sub.expectEOF()
				if got := b.Accepted(); got != 3 {
					t.Errorf("Accepted() = %d, want 3", got)
				}
			})
		})
	}
}

// The WebSocket listener serves any path, and refuses a client that does
// not offer the subprotocol "mqtt".
func TestBrokerWebSocketHandshake(t *testing.T) {
	b := mqtttest.NewBrokerWith(t, mqtttest.BrokerConfig{WebSocket: true})
	c, err := dialURL(t, "ws://"+b.Addr()+"/any/path?x=1", nil, 4, "mqttv3.1", "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	c.handshake("any-path", false, 0)

	_, err = dialURL(t, b.URL(), nil, 4)
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("without the subprotocol: %v, want the upgrade refused with HTTP 400", err)
	}
}

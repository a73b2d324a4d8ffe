package conn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/coder/websocket"
)

// DefaultWebSocketPath is the path of a ws:// or wss:// server URL that has
// none: "ws://broker.example" dials "ws://broker.example:80/mqtt". It is the
// path EMQX, HiveMQ and AWS IoT serve; Mosquitto and mochi-mqtt accept any
// path. A URL with a path, even "/", is dialed as written.
const DefaultWebSocketPath = "/mqtt"

// webSocketSubprotocol is the subprotocol MQTT over WebSocket asks for
// [MQTT-6.0.0-3].
const webSocketSubprotocol = "mqtt"

// dialWebSocket opens an MQTT over WebSocket connection (ws://, wss://): an
// HTTP/1.1 upgrade to server's URL asking for the subprotocol "mqtt", after
// which the MQTT byte stream travels in binary messages [MQTT-6.0.0-1]. Every
// write is one message, and reads ignore message boundaries, so a frame may
// span messages and a message may hold several frames [MQTT-6.0.0-2].
//
// ctx bounds the upgrade only; the connection lives until it is closed.
// No HTTP proxy is used. User information in the URL (user:password@) is
// sent as HTTP Basic authentication, as net/http does. An HTTP redirect
// is not followed: the upgrade fails with an error that names both URLs.
func dialWebSocket(ctx context.Context, server *url.URL, tlsConfig *tls.Config) (net.Conn, error) {
	// A transport of its own: no proxy, no HTTP/2 (the upgrade is
	// HTTP/1.1), the TLS rules of tls://.
	tr := &http.Transport{DialContext: func(dctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := tcpDialer(ctx).DialContext(dctx, network, addr)
		connected(ctx, nc) // ctx carries the timer, if any
		return nc, err
	}}
	if server.Scheme == "wss" {
		tr.TLSClientConfig = clientTLS(tlsConfig, server)
	}
	// The upgraded connection has left the transport; anything else it
	// holds (a connection a refused upgrade left idle) goes now.
	defer tr.CloseIdleConnections()
	ws, resp, err := websocket.Dial(ctx, server.String(), &websocket.DialOptions{
		HTTPClient: &http.Client{
			Transport: tr,
			// net/http would follow a redirect anywhere, wss:// to
			// ws:// included, and the CONNECT with its password would
			// then cross the network in clear (issue "No downgrade, no
			// leak"). The broker's address is the user's to choose.
			CheckRedirect: func(req *http.Request, _ []*http.Request) error {
				// The Location as the server wrote it: websocket has
				// turned ws:// into http:// in req.URL by now.
				to := req.URL.String()
				if req.Response != nil && req.Response.Header.Get("Location") != "" {
					to = req.Response.Header.Get("Location")
				}
				return &webSocketRedirectError{to: RedactServer(to)}
			},
		},
		Subprotocols: []string{webSocketSubprotocol},
	})
	if err != nil {
		if ctx.Err() != nil {
			// net/http's error repeats the ctx's cause; Open adds it.
			return nil, fmt.Errorf("conn: dial %s: the WebSocket upgrade did not finish: %w", server.Redacted(), ctx.Err())
		}
		if re, ok := errors.AsType[*webSocketRedirectError](err); ok {
			return nil, fmt.Errorf("conn: dial %s: the server redirected the WebSocket upgrade to %s, and the client does not follow WebSocket redirects",
				server.Redacted(), re.to)
		}
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("conn: dial %s: the server answered the WebSocket upgrade with HTTP %q (is this the broker's WebSocket endpoint? check the URL's port and path): %w",
				server.Redacted(), resp.Status, err)
		}
		return nil, dialError(server, err)
	}
	// An empty subprotocol is let through although [MQTT-6.0.0-4] wants
	// "mqtt" echoed: some brokers omit it. The library refuses any other.
	return &webSocketConn{
		Conn: websocket.NetConn(context.Background(), ws, websocket.MessageBinary),
		ws:   ws,
	}, nil
}

// webSocketConn is a WebSocket as a byte stream. websocket.NetConn does the
// streaming (message boundaries vanish on read; each Write is one message);
// this wrapper changes its Close, which runs the WebSocket closing
// handshake: up to 5 s to send the close frame and 5 s more for the peer's
// answer, so a dead broker would hold the closing connection, and the
// client's reconnect, for 10 s. MQTT has its own goodbye (DISCONNECT),
// written before Close.
type webSocketConn struct {
	net.Conn
	ws *websocket.Conn
}

// Close closes the TCP connection without the WebSocket closing handshake,
// which unblocks any pending Read or Write.
func (c *webSocketConn) Close() error {
	err := c.ws.CloseNow()
	c.Conn.Close() // stops NetConn's deadline timers; returns at once now
	return err
}

// webSocketRedirectError is what CheckRedirect answers an HTTP redirect of
// the upgrade with, so that dialWebSocket can tell it from other failures
// and say it in its own words.
type webSocketRedirectError struct {
	to string // the redirect's target, redacted
}

func (e *webSocketRedirectError) Error() string {
	return "WebSocket redirect to " + e.to + " not followed"
}

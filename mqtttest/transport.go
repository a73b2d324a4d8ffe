package mqtttest

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/coder/websocket"
)

// listener wraps a TCP listener of the broker in the transport its
// configuration asks for: TLS, WebSocket, or both (wss).
func (b *Broker) listener(ln net.Listener) net.Listener {
	if b.tls != nil {
		ln = tls.NewListener(ln, b.tls)
	}
	if b.webSocket {
		ln = newWSListener(ln, b.srv.Log)
	}
	return ln
}

// wsListener serves MQTT over WebSocket on a listener: an HTTP server
// upgrades every request, for any path, that offers the subprotocol "mqtt",
// and Accept returns the upgraded connections as byte streams.
type wsListener struct {
	ln       net.Listener
	srv      *http.Server
	conns    chan net.Conn // upgraded connections, handed to Accept
	closing  chan struct{} // closed by Close
	served   chan struct{} // closed once srv.Serve has returned
	stopOnce sync.Once
}

func newWSListener(ln net.Listener, log *slog.Logger) *wsListener {
	l := &wsListener{
		ln:      ln,
		conns:   make(chan net.Conn),
		closing: make(chan struct{}),
		served:  make(chan struct{}),
	}
	l.srv = &http.Server{
		Handler: http.HandlerFunc(l.upgrade),
		// Failed TLS handshakes and the like go to mochi's log.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(l.served)
		_ = l.srv.Serve(ln)
	}()
	return l
}

// upgrade turns one HTTP request into an MQTT connection for Accept.
func (l *wsListener) upgrade(w http.ResponseWriter, r *http.Request) {
	if !offersMQTT(r) {
		// [MQTT-6.0.0-3]: the client must offer "mqtt". Refusing a client
		// that does not keeps tests honest about it.
		http.Error(w, `mqtttest: MQTT over WebSocket needs the subprotocol "mqtt" (Sec-WebSocket-Protocol)`, http.StatusBadRequest)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{"mqtt"},
		// Browsers send an Origin header; a test broker lets any in.
		InsecureSkipVerify: true,
	})
	if err != nil {
		return // Accept has answered the request with the reason
	}
	// The connection outlives the request, so not r.Context().
	nc := &wsConn{Conn: websocket.NetConn(context.Background(), ws, websocket.MessageBinary), ws: ws}
	select {
	case l.conns <- nc:
	case <-l.closing:
		nc.Close()
	}
}

// offersMQTT reports whether the upgrade request offers the subprotocol
// "mqtt".
func offersMQTT(r *http.Request) bool {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "mqtt") {
				return true
			}
		}
	}
	return false
}

// Accept returns the next upgraded connection.
func (l *wsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closing:
		return nil, net.ErrClosed
	}
}

// Close stops the HTTP server, which closes the listener and every request
// not upgraded yet, and returns once it has stopped. Connections already
// upgraded stay open: the broker drops them.
func (l *wsListener) Close() error {
	var err error
	l.stopOnce.Do(func() {
		close(l.closing)
		err = l.srv.Close()
		<-l.served
	})
	return err
}

func (l *wsListener) Addr() net.Addr { return l.ln.Addr() }

// wsConn is a WebSocket as a byte stream for mochi. Close drops the TCP
// connection at once, as Stop and Kick mean to: websocket.NetConn's Close
// would run the WebSocket closing handshake, for up to 10 s.
type wsConn struct {
	net.Conn
	ws *websocket.Conn
}

func (c *wsConn) Close() error {
	err := c.ws.CloseNow()
	c.Conn.Close() // stops NetConn's timers; returns at once now
	return err
}

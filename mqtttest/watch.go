package mqtttest

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// watch is an endpoint's protocol monitoring: a Monitor on each connection
// it serves (see tap), the violations they found, and the test to fail.
type watch struct {
	endpoint string        // "broker", "proxy", "scripted broker"
	addr     func() string // the endpoint's address, for reports
	book     sessionBook
	conns    atomic.Int64 // connections tapped, to number them
	allowed  atomic.Bool  // AllowViolations was called

	mu    sync.Mutex
	t     testing.TB // nil for the Start... constructors
	found []Violation
}

// maxKept bounds the violations an endpoint keeps, for a program that
// runs one for long without a test to fail.
const maxKept = 100

func newWatch(endpoint string, addr func() string) *watch {
	return &watch{endpoint: endpoint, addr: addr}
}

// attach makes violations fail t, those found so far included.
func (w *watch) attach(t testing.TB) {
	w.mu.Lock()
	w.t = t
	found := slices.Clone(w.found)
	w.mu.Unlock()
	for _, v := range found {
		w.fail(t, v)
	}
}

// report records v and fails the test, if any and not allowed.
func (w *watch) report(v Violation) {
	w.mu.Lock()
	if len(w.found) < maxKept {
		w.found = append(w.found, v)
	}
	t := w.t
	w.mu.Unlock()
	if t != nil {
		w.fail(t, v)
	}
}

func (w *watch) fail(t testing.TB, v Violation) {
	if w.allowed.Load() {
		return
	}
	t.Errorf("mqtttest: the client broke the MQTT protocol on the %s's connection: %s\n"+
		"\t(for a test that sends bad frames on purpose, call AllowViolations on the %s)", w.endpoint, v, w.endpoint)
}

// violations returns what was found.
func (w *watch) violations() []Violation {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.found)
}

// proxiedAddrs holds the local addresses of the connections every Proxy
// of this process has open to its targets. An endpoint leaves such a
// connection alone: the Proxy in front checks it, on the bytes the client
// really sent, before faults such as Blackhole cut holes into them.
var proxiedAddrs sync.Map // "127.0.0.1:port" → struct{}

// tapConn is a client's connection as an endpoint serves it: the bytes
// read from it are the client's, those written to it the server's. It
// feeds both to the connection's Monitor, the server's before they are
// written, so that the Monitor sees a frame of the server before the
// client can answer it.
//
// Whether the connection is monitored is decided when its first bytes
// arrive: not if it comes from a Proxy of this process (see proxiedAddrs),
// nor, for a Proxy (probe), if it does not carry bare MQTT (TLS, HTTP for
// WebSocket), which the endpoint behind the proxy then checks itself.
type tapConn struct {
	net.Conn
	w         *watch
	probe     bool   // the first bytes may not be MQTT at all
	onForeign func() // called, with probe, when they are not

	decided bool                    // owned by the reading goroutine
	mon     atomic.Pointer[Monitor] // nil: not monitored
	wmu     sync.Mutex              // keeps the Monitor's view of the writes in write order
}

// tap wraps a connection the endpoint accepted.
func (w *watch) tap(c net.Conn) *tapConn {
	return &tapConn{Conn: c, w: w}
}

// decide starts monitoring the connection, or not, on its first bytes.
func (c *tapConn) decide(first []byte) {
	c.decided = true
	if _, ok := proxiedAddrs.Load(c.Conn.RemoteAddr().String()); ok {
		return
	}
	if c.probe && !looksLikeMQTT(first) {
		if c.onForeign != nil {
			c.onForeign()
		}
		return
	}
	n := c.w.conns.Add(1)
	name := fmt.Sprintf("%s %s, connection %d from %s", c.w.endpoint, c.w.addr(), n, c.Conn.RemoteAddr())
	m := newMonitor(name, c.w.report, &c.w.book)
	m.tapped = true
	c.mon.Store(m)
}

// looksLikeMQTT reports whether the first bytes a Proxy forwards start a
// CONNECT. Anything else (a TLS handshake, an HTTP request for WebSocket,
// or bytes of a test of the Proxy itself) is not the Proxy's to judge: if
// it is MQTT, the endpoint behind the Proxy judges it.
func looksLikeMQTT(first []byte) bool {
	return first[0] == 0x10
}

func (c *tapConn) Read(p []byte) (int, error) {
	if c.decided && c.mon.Load() == nil {
		return c.Conn.Read(p)
	}
	start := time.Now()
	n, err := c.Conn.Read(p)
	if !c.decided && n > 0 {
		c.decide(p[:n])
	}
	if m := c.mon.Load(); m != nil {
		m.clientBytes(p[:n], start, time.Now())
		if err != nil {
			m.end()
		}
	}
	return n, err
}

func (c *tapConn) Write(p []byte) (int, error) {
	m := c.mon.Load()
	if m == nil {
		return c.Conn.Write(p)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	m.serverBytes(p)
	return c.Conn.Write(p)
}

// hole tells the Monitor that bytes from the server were dropped on the
// way to the client.
func (c *tapConn) hole() {
	if m := c.mon.Load(); m != nil {
		m.lose()
	}
}

// end stops the Monitor, which checks the client's final silence. Call it
// when the connection has ended, before the endpoint's Close returns.
func (c *tapConn) end() {
	if m := c.mon.Load(); m != nil {
		m.end()
	}
}

// untap returns the connection under a tapConn.
func untap(c net.Conn) net.Conn {
	if tc, ok := c.(*tapConn); ok {
		return tc.Conn
	}
	return c
}

// AllowViolations stops the protocol monitor from failing the test for
// what the clients of this broker do: for a test whose client breaks the
// protocol on purpose. The monitor still checks, and Violations returns
// what it finds.
func (b *Broker) AllowViolations() { b.watch.allowed.Store(true) }

// Violations returns the breaches of the protocol that the clients of this
// broker committed so far, oldest first (at most 100, and ten per
// connection). A broker made by NewBroker also fails its test with each,
// unless AllowViolations was called; one made by StartBroker has no test,
// and this is the only way to see them. See the package documentation.
func (b *Broker) Violations() []Violation { return b.watch.violations() }

// AllowViolations stops the protocol monitor from failing the test for
// what the clients of this proxy do; see Broker.AllowViolations.
func (p *Proxy) AllowViolations() { p.watch.allowed.Store(true) }

// Violations returns the breaches of the protocol that the clients of this
// proxy committed so far; see Broker.Violations.
func (p *Proxy) Violations() []Violation { return p.watch.violations() }

// AllowViolations stops the protocol monitor from failing the test for
// what the clients of this scripted broker do; see Broker.AllowViolations.
func (s *ScriptedBroker) AllowViolations() { s.watch.allowed.Store(true) }

// Violations returns the breaches of the protocol that the clients of this
// scripted broker committed so far; see Broker.Violations.
func (s *ScriptedBroker) Violations() []Violation { return s.watch.violations() }

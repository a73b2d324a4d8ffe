package mqtttest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// listenerID is the name mochi records as every client's listener.
const listenerID = "mqtttest"

// BrokerConfig changes how StartBrokerWith and NewBrokerWith build a Broker.
// The zero value is what StartBroker and NewBroker use.
type BrokerConfig struct {
	// Addr is the TCP address to listen on. Default "127.0.0.1:0": a free
	// loopback port, chosen at start and kept across Stop and Start.
	Addr string

	// Logger receives mochi's own log, and replaces any Options.Logger set
	// by Configure. Default: discarded.
	Logger *slog.Logger

	// TLS, when set, makes the broker serve TLS with this configuration:
	// its Certificates, and ClientAuth with ClientCAs for mutual TLS (see
	// CA for certificates made up in the test). URL then returns a tls://
	// URL, or wss:// with WebSocket. The configuration is cloned at start.
	TLS *tls.Config

	// WebSocket makes the broker serve MQTT over WebSocket instead of bare
	// TCP: an HTTP server on the port upgrades a request for any path that
	// offers the subprotocol "mqtt" (one that does not gets HTTP 400), and
	// the MQTT stream travels in binary messages. URL then returns
	// "ws://127.0.0.1:port/mqtt", or wss:// with TLS.
	WebSocket bool

	// Configure, when set, is called with the options mochi's server is
	// created from, after Options.Capabilities has been filled with mochi's
	// defaults: set a small MaximumInflight, ReceiveMaximum or
	// MaximumPacketSize there to test flow control. Leave Options.Listeners,
	// Hooks and InlineClient alone: the Broker manages them.
	Configure func(*mqtt.Options)
}

// Broker is an embedded MQTT broker (mochi-mqtt v2) on a loopback TCP port,
// for tests that need a real broker and an outage of it. It speaks MQTT over
// TCP, TLS, WebSocket or WebSocket over TLS, as its BrokerConfig says; Stop,
// Start, Restart and Kick work the same for each.
//
// The broker keeps its state in memory for its whole life: Stop closes the
// port and drops every connection, Start listens on the same port again, and
// in between the sessions of clients that connected with a persistent session
// (MQTT 3.1.1 clean session false, MQTT 5 a non-zero session expiry) keep
// their subscriptions and their queued and unacknowledged QoS 1 and 2
// messages, as a broker with persistent storage would after a restart.
// Clean sessions end when their connection does.
//
// Every client is allowed to connect, publish and subscribe. The broker
// works around the bugs of mochi v2.7.9 that lose, stall, reorder or
// misreport messages; the package documentation lists them.
//
// Its methods are safe for concurrent use. Stop, Start, Restart, Kick and
// Close run one at a time.
type Broker struct {
	srv       *mqtt.Server
	addr      string      // where it listens, fixed at start
	tls       *tls.Config // nil: no TLS
	webSocket bool

	accepted atomic.Int64
	changed  signal // broadcast on every broker event; see Wait
	watch    *watch // the protocol monitor of the clients' connections

	// ops serializes Start, Stop, Kick and Close. They hold it while they wait
	// for connection goroutines, so no hook may take it.
	ops    sync.Mutex
	acc    *acceptor // nil while stopped
	closed bool

	// gate keeps routing and session takeovers apart, book what resuming a
	// session needs; see brokerHook.
	gate      routeGate
	book      book
	publishMu sync.Mutex // serializes Publish: routes counts by client

	// mu guards conns and routes. Hooks take it from mochi's goroutines.
	mu     sync.Mutex
	conns  map[net.Conn]*brokerConn
	routes map[*mqtt.Client]int // routings each client has entered the gate for
}

// brokerConn is one accepted TCP connection. Its fields are guarded by
// Broker.mu.
type brokerConn struct {
	client   *mqtt.Client  // set when mochi has parsed the CONNECT
	clientID string        // set once the CONNACK is sent
	takeover bool          // the connection holds the gate for a takeover
	dupQos2  uint16        // packet identifier of the QoS 2 PUBLISH just read, if DUP
	tap      *tapConn      // the connection under the flowConn, monitored
	done     chan struct{} // closed once mochi has finished with the connection
}

// StartBroker starts a Broker on a free loopback port, for use outside tests.
// The caller must Close it.
func StartBroker() (*Broker, error) {
	return StartBrokerWith(BrokerConfig{})
}

// StartBrokerWith starts a Broker configured by cfg. The caller must Close it.
func StartBrokerWith(cfg BrokerConfig) (*Broker, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := &mqtt.Options{Capabilities: mqtt.NewDefaultServerCapabilities()}
	// mochi v2.7.9 copies a PUBLISH's User Properties into its PUBACK and
	// writes reason code 0x01 there, which PUBACK does not allow: a
	// compliant client then reconnects for ever.
	opts.Capabilities.Compatibilities.NoInheritedPropertiesOnAck = true
	if cfg.Configure != nil {
		cfg.Configure(opts)
	}
	opts.Logger = logger
	opts.InlineClient = true // for Broker.Publish
	opts.Listeners = nil     // we accept connections ourselves
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}

	b := &Broker{
		srv:       mqtt.New(opts),
		tls:       cfg.TLS.Clone(),
		webSocket: cfg.WebSocket,
		conns:     make(map[net.Conn]*brokerConn),
		routes:    make(map[*mqtt.Client]int),
	}
	b.watch = newWatch("broker", b.Addr)
	if err := b.srv.AddHook(&brokerHook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("mqtttest: start broker: add hook: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mqtttest: start broker: %w", err)
	}
	if err := b.srv.Serve(); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("mqtttest: start broker: %w", err)
	}
	b.addr = ln.Addr().String()
	b.serve(ln)
	return b, nil
}

// NewBroker starts a Broker on a free loopback port and closes it when the
// test and its subtests have finished (t.Cleanup), even if the test fails
// midway. It calls t.Fatal if the broker cannot start.
func NewBroker(t testing.TB) *Broker {
	t.Helper()
	return NewBrokerWith(t, BrokerConfig{})
}

// NewBrokerWith is NewBroker with a configuration.
func NewBrokerWith(t testing.TB, cfg BrokerConfig) *Broker {
	t.Helper()
	b, err := StartBrokerWith(cfg)
	if err == nil {
		b.watch.attach(t)
	}
	return closeAtCleanup(t, b, err)
}

// URL returns the broker's address as a server URL: "tcp://127.0.0.1:port",
// or with BrokerConfig.TLS "tls://127.0.0.1:port", with WebSocket
// "ws://127.0.0.1:port/mqtt", with both "wss://127.0.0.1:port/mqtt".
func (b *Broker) URL() string {
	switch {
	case b.webSocket && b.tls != nil:
		return "wss://" + b.addr + "/mqtt"
	case b.webSocket:
		return "ws://" + b.addr + "/mqtt"
	case b.tls != nil:
		return "tls://" + b.addr
	}
	return "tcp://" + b.addr
}

// Addr returns the broker's address, "127.0.0.1:port". It does not change
// across Stop and Start.
func (b *Broker) Addr() string { return b.addr }

// Server returns the mochi server, for inspecting its state (Clients, Topics,
// Info). Do not Close it or change its listeners: use the Broker's methods.
func (b *Broker) Server() *mqtt.Server { return b.srv }

// Stop closes the broker's port, so that new connections are refused, and
// drops every client connection the way a crash or a network outage would:
// the sockets are closed without an MQTT DISCONNECT, and mochi publishes the
// wills of the dropped clients. The broker's sessions stay in memory.
//
// Stop returns once mochi has finished with every dropped connection,
// including routing any PUBLISH it had already acknowledged: a message whose
// PUBACK a client received before Stop is queued for its subscribers when
// Stop returns. Stopping a stopped broker does nothing.
func (b *Broker) Stop() error {
	b.ops.Lock()
	defer b.ops.Unlock()
	return b.stopLocked()
}

func (b *Broker) stopLocked() error {
	if b.acc == nil {
		return nil
	}
	err := b.acc.stop() // from here on no connection is added to conns
	b.acc = nil
	b.dropConns()
	if err != nil {
		return fmt.Errorf("mqtttest: stop broker: %w", err)
	}
	return nil
}

// Start listens again on the same address, with the same sessions,
// subscriptions, retained and queued messages as before Stop. Starting a
// running broker does nothing. After Close, Start returns an error wrapping
// ErrClosed.
//
// If another socket took the port meanwhile (an outgoing connection may be
// given it), Start retries for two seconds before it gives up.
func (b *Broker) Start() error {
	b.ops.Lock()
	defer b.ops.Unlock()
	if b.closed {
		return fmt.Errorf("%w: a closed broker cannot start again; start a new one", ErrClosed)
	}
	if b.acc != nil {
		return nil
	}
	ln, err := listenAgain(b.addr)
	if err != nil {
		return fmt.Errorf("mqtttest: start broker again on %s: %w", b.addr, err)
	}
	b.serve(ln)
	return nil
}

// listenAgain listens on addr, retrying for a while if the port is in use.
func listenAgain(addr string) (net.Listener, error) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(10 * time.Millisecond) // nothing to wait on: the port is someone else's
	}
}

// Restart is Stop followed by Start: an outage well under a millisecond
// (about 0.3 ms with ten clients to drop), after which the broker has the
// state it had before.
func (b *Broker) Restart() error {
	if err := b.Stop(); err != nil {
		return err
	}
	return b.Start()
}

// Kick drops every current client connection, as Stop does, but keeps
// listening, so the clients can reconnect at once. Connections accepted
// while Kick runs may survive it. It returns once mochi has finished with the
// dropped connections.
func (b *Broker) Kick() {
	b.ops.Lock()
	defer b.ops.Unlock()
	b.dropConns()
}

// Close stops the broker for good and releases everything it holds: after
// Close returns no goroutine of it remains. Close is idempotent.
func (b *Broker) Close() error {
	b.ops.Lock()
	defer b.ops.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	err := b.stopLocked()
	// The listener is already gone, so mochi's own shutdown sends nothing to
	// anyone; it stops mochi's housekeeping goroutine and the hooks.
	if cerr := b.srv.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("mqtttest: close broker: %w", cerr)
	}
	return err
}

// serve starts accepting connections on ln, a TCP listener, in the
// broker's transport. Called with ops held.
func (b *Broker) serve(ln net.Listener) {
	b.acc = startAcceptor(b.listener(ln), func(c net.Conn) {
		b.accepted.Add(1)
		// mochi writes to the flowConn, which writes to the tap: the
		// monitor sees the frames as they go out, held ones too, and
		// the MQTT bytes, under TLS and WebSocket.
		tc := b.watch.tap(c)
		c = newFlowConn(tc)
		bc := &brokerConn{tap: tc, done: make(chan struct{})}
		b.mu.Lock()
		b.conns[c] = bc
		b.mu.Unlock()
		go b.handle(c, bc)
	})
}

// handle runs mochi's side of one connection: CONNECT, session, packets,
// until the connection ends and mochi has cleaned up after it.
func (b *Broker) handle(c net.Conn, bc *brokerConn) {
	defer func() {
		// mochi may leave early, on an error, between the hooks that take
		// the gate and those that give it back.
		b.endTakeover(bc)
		b.mu.Lock()
		delete(b.conns, c)
		client := bc.client
		n := b.routes[client]
		delete(b.routes, client)
		b.mu.Unlock()
		if n > 0 {
			b.gate.leave()
		}
		bc.tap.end()
		close(bc.done)
		b.changed.broadcast()
	}()
	err := b.srv.EstablishConnection(listenerID, c)
	b.srv.Log.Debug("mqtttest: connection ended", "remote", c.RemoteAddr().String(), "error", err)
}

// dropConns closes every current connection and waits until mochi has
// finished with each. Called with ops held.
func (b *Broker) dropConns() {
	b.mu.Lock()
	conns := make(map[net.Conn]*brokerConn, len(b.conns))
	for c, bc := range b.conns {
		conns[c] = bc
	}
	b.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
	for _, bc := range conns {
		<-bc.done
	}
}

package mqtttest

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy is a TCP proxy on a loopback port that forwards every connection it
// accepts to a target address and injects network faults on command: cut
// every connection, black-hole the traffic, delay it, chop it into small
// writes, or refuse new connections.
//
// Point the client under test at Proxy.URL instead of the broker's. Each
// accepted connection gets its own connection to the target, dialed at
// accept time; if that dial fails, the client's connection is reset, as
// with Refuse.
//
// The fault settings apply to every connection, current and future, from
// the moment they are set. Its methods are safe for concurrent use.
type Proxy struct {
	target string
	acc    *acceptor

	blackhole atomic.Bool
	refuse    atomic.Bool
	latency   atomic.Int64 // time.Duration
	split     atomic.Int64

	accepted, refused           atomic.Int64
	bytesUp, bytesDown, dropped atomic.Int64
	changed                     signal // stats or blackhole changed
	watch                       *watch // the protocol monitor of the clients' connections

	wg sync.WaitGroup // link goroutines

	mu     sync.Mutex // guards links and closed
	links  map[*link]struct{}
	closed bool
}

// ProxyStats are a Proxy's counters. Up is the direction from the client to
// the target, Down from the target to the client.
type ProxyStats struct {
	Accepted  int64 // connections accepted, refused ones included
	Refused   int64 // connections reset at once because of Refuse
	Active    int   // connections open now
	BytesUp   int64 // bytes delivered to the target
	BytesDown int64 // bytes delivered to the clients
	Dropped   int64 // bytes discarded because of Blackhole, both directions
}

// StartProxy starts a Proxy on a free loopback port in front of target
// ("host:port"), for use outside tests. The caller must Close it.
func StartProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("mqtttest: start proxy: %w", err)
	}
	p := &Proxy{target: target, links: make(map[*link]struct{})}
	p.watch = newWatch("proxy", p.Addr)
	p.acc = startAcceptor(ln, p.handle)
	return p, nil
}

// NewProxy starts a Proxy in front of target and closes it when the test
// and its subtests have finished (t.Cleanup), even if the test fails midway.
// It calls t.Fatal if the proxy cannot start.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := StartProxy(target)
	if err == nil {
		p.watch.attach(t)
	}
	return closeAtCleanup(t, p, err)
}

// URL returns the proxy's address as a server URL, "tcp://127.0.0.1:port".
func (p *Proxy) URL() string { return "tcp://" + p.Addr() }

// Addr returns the proxy's address, "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.acc.addr() }

// Cut closes every current connection on both sides at once, as a broker
// crash or a NAT timeout does: each peer reads end of file. New connections
// are accepted as before. Cut returns once the connections are closed and
// counted out of Stats.Active.
//
// Cut acts on the connections the proxy has accepted: a client whose dial
// has just returned may not be among them yet. To cut a connection you just
// made, first wait for it with WaitStats (Active).
func (p *Proxy) Cut() {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close()
	}
	for _, l := range links {
		<-l.exited
	}
}

// Blackhole, while on, keeps every connection open but forwards nothing in
// either direction: the half-dead link of a Wi-Fi that went away. The proxy
// still reads, so the sender's writes succeed and TCP reports nothing; bytes
// read while it is on are discarded (counted in Stats.Dropped), and new
// connections are accepted and dialed but carry nothing. A peer that closes
// its side is not reported to the other side either, until Blackhole is
// turned off. Only a timeout, such as MQTT's keepalive, can notice.
//
// Turning it off forwards again what arrives from then on. The discarded
// bytes are lost, so a connection that carried traffic meanwhile now has a
// hole in its byte stream; a connection whose peer closed meanwhile is
// closed.
func (p *Proxy) Blackhole(on bool) {
	p.blackhole.Store(on)
	p.changed.broadcast()
}

// Latency delays every chunk of data by d in each direction (so a round trip
// takes at least 2*d more), keeping its order, and so the end of either
// side: a broker that closes the connection as soon as it reads a packet is
// seen to close it 2*d after the client sent the packet, as over a slow
// link. It applies to data read from now on; 0 turns it off.
func (p *Proxy) Latency(d time.Duration) {
	p.latency.Store(int64(max(d, 0)))
}

// Dial returns a Config.Dial (mqtt and conn) that reaches the proxy as
// over a link whose TCP handshake takes handshake: the proxy accepts at
// once, on loopback, while a real slow link's handshake takes a round
// trip, as its data does (Latency). Set both, handshake to twice the
// latency, for a slow link; Latency alone is a fast link to a slow broker.
// The dial gives up when its ctx ends.
func (p *Proxy) Dial(handshake time.Duration) func(ctx context.Context, server string) (net.Conn, error) {
	return func(ctx context.Context, _ string) (net.Conn, error) {
		t := time.NewTimer(handshake)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", p.Addr())
	}
}

// SplitWrites makes the proxy forward data in writes of at most n bytes each,
// so the receiver sees frames arrive in pieces; n <= 0 turns it off.
// Whether the receiver also reads them in pieces is up to its TCP stack:
// pieces written back to back may arrive together.
func (p *Proxy) SplitWrites(n int) {
	p.split.Store(int64(max(n, 0)))
}

// Refuse, while on, makes the proxy reset every new connection as soon as it
// has accepted it, before reading or forwarding anything. The client sees
// its connect fail without a CONNACK: usually its TCP dial succeeds and its
// first read or write fails (connection reset, or end of file); sometimes,
// the reset arriving first, the dial itself fails with a reset. Current
// connections are not affected. For a port that refuses the TCP connect
// itself (connection refused), use Broker.Stop.
func (p *Proxy) Refuse(on bool) {
	p.refuse.Store(on)
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() ProxyStats {
	p.mu.Lock()
	active := len(p.links)
	p.mu.Unlock()
	return ProxyStats{
		Accepted:  p.accepted.Load(),
		Refused:   p.refused.Load(),
		Active:    active,
		BytesUp:   p.bytesUp.Load(),
		BytesDown: p.bytesDown.Load(),
		Dropped:   p.dropped.Load(),
	}
}

// WaitStats blocks until cond returns true for the proxy's counters, or ctx
// ends. cond is called now and after every change of the counters.
func (p *Proxy) WaitStats(ctx context.Context, cond func(ProxyStats) bool) error {
	if err := p.changed.until(ctx, func() bool { return cond(p.Stats()) }); err != nil {
		return fmt.Errorf("mqtttest: wait for proxy stats: %w", err)
	}
	return nil
}

// Close stops accepting, closes every connection and returns once every
// goroutine of the proxy has exited. Close is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.acc.stop() // no link is added from here on
	p.Cut()
	p.wg.Wait()
	if err != nil {
		return fmt.Errorf("mqtttest: close proxy: %w", err)
	}
	return nil
}

// handle starts forwarding a connection the proxy accepted.
func (p *Proxy) handle(c net.Conn) {
	p.accepted.Add(1)
	if p.refuse.Load() {
		reset(c)
		p.refused.Add(1)
		p.changed.broadcast()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	// The monitor sees the bytes the client sends as they arrive, and
	// those it receives as they go out (after Latency and Blackhole).
	tc := p.watch.tap(c)
	tc.probe = true
	l := &link{p: p, client: tc, tap: tc, cancel: cancel, done: make(chan struct{}), exited: make(chan struct{})}
	tc.onForeign = l.unregister // TLS or WebSocket: the endpoint behind checks it
	p.mu.Lock()
	p.links[l] = struct{}{}
	p.mu.Unlock()
	p.changed.broadcast()
	p.wg.Add(1)
	go l.run(ctx)
}

// reset closes c with an RST instead of a FIN.
func reset(c net.Conn) {
	if tc, ok := untap(c).(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// link is one proxied connection: the client's and the one to the target.
type link struct {
	p      *Proxy
	client net.Conn
	tap    *tapConn           // client, monitored
	upAddr string             // local address of the connection to the target, in proxiedAddrs
	cancel context.CancelFunc // stops the dial to the target
	done   chan struct{}      // closed by close
	exited chan struct{}      // closed when run has returned

	mu       sync.Mutex
	upstream net.Conn // nil until dialed
	closed   bool
}

// close closes both connections; the pumps then stop. Idempotent.
func (l *link) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	l.cancel()
	close(l.done)
	_ = l.client.Close()
	if l.upstream != nil {
		_ = l.upstream.Close()
	}
}

func (l *link) run(ctx context.Context) {
	defer func() {
		l.close()
		l.unregister()
		l.tap.end()
		l.p.mu.Lock()
		delete(l.p.links, l)
		l.p.mu.Unlock()
		close(l.exited)
		l.p.changed.broadcast()
		l.p.wg.Done()
	}()
	var d net.Dialer
	up, err := d.DialContext(ctx, "tcp", l.p.target)
	if err != nil {
		reset(l.client) // what the client would see from a port that refuses
		return
	}
	l.mu.Lock()
	if l.closed { // cut while dialing
		l.mu.Unlock()
		_ = up.Close()
		return
	}
	l.upstream = up
	l.mu.Unlock()
	// Before a byte goes through: the endpoint behind, if one of this
	// package, looks when the first arrives.
	l.upAddr = up.LocalAddr().String()
	proxiedAddrs.Store(l.upAddr, struct{}{})

	var wg sync.WaitGroup
	wg.Go(func() { l.pump(l.client, up, &l.p.bytesUp) })
	wg.Go(func() { l.pump(up, l.client, &l.p.bytesDown) })
	wg.Wait()
}

// chunk is data read from one side, due to be written to the other; or,
// with end set, the end of that side, due to close the link.
type chunk struct {
	data []byte
	due  time.Time
	end  bool
}

// pump forwards src to dst until either side fails or the link is closed,
// then closes the link. A reader goroutine queues chunks and the writer
// delays each by the latency in force when it was read, so that latency
// delays the data without limiting its throughput.
func (l *link) pump(src, dst net.Conn, delivered *atomic.Int64) {
	queue := make(chan chunk, 64)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		l.read(src, queue)
	}()
	// Every return below happens with the link closed, so src is closed
	// and read returns.
	defer func() { <-readDone }()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		var c chunk
		var ok bool
		select {
		case c, ok = <-queue:
		case <-l.done:
			return
		}
		if wait := time.Until(c.due); ok && wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-l.done:
				return
			}
		}
		if !ok || c.end { // src ended (after the latency, as data would)
			l.closeUnlessBlackholed()
			return
		}
		if l.p.blackhole.Load() { // turned on while the chunk waited
			if dst == l.client {
				l.tap.hole()
			}
			l.p.dropped.Add(int64(len(c.data)))
			l.p.changed.broadcast()
			continue
		}
		err := writeSplit(dst, c.data, int(l.p.split.Load()), func(n int) {
			delivered.Add(int64(n))
			l.p.changed.broadcast()
		})
		if err != nil {
			l.close()
			return
		}
	}
}

// read reads src into queue until src fails, then closes queue. It returns
// at the latest when the link is closed, which closes src.
func (l *link) read(src net.Conn, queue chan<- chunk) {
	defer close(queue)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if l.p.blackhole.Load() {
				if src != l.client {
					l.tap.hole()
				}
				l.p.dropped.Add(int64(n))
				l.p.changed.broadcast()
			} else {
				c := chunk{data: append([]byte(nil), buf[:n]...)}
				if d := time.Duration(l.p.latency.Load()); d > 0 {
					c.due = time.Now().Add(d)
				}
				select {
				case queue <- c:
				case <-l.done:
					return
				}
			}
		}
		if err != nil {
			if d := time.Duration(l.p.latency.Load()); d > 0 {
				select {
				case queue <- chunk{end: true, due: time.Now().Add(d)}:
				case <-l.done:
				}
			}
			return
		}
	}
}

// closeUnlessBlackholed closes the link once the proxy is not black-holing:
// while it is, one side's end must not reach the other.
func (l *link) closeUnlessBlackholed() {
	for {
		ch := l.p.changed.wait()
		if !l.p.blackhole.Load() {
			l.close()
			return
		}
		select {
		case <-ch:
		case <-l.done:
			return
		}
	}
}

// writeSplit writes b to w in writes of at most n bytes (all at once if
// n <= 0), calling wrote after each successful write.
func writeSplit(w io.Writer, b []byte, n int, wrote func(int)) error {
	for len(b) > 0 {
		piece := b
		if n > 0 && len(piece) > n {
			piece = piece[:n]
		}
		k, err := w.Write(piece)
		if k > 0 {
			wrote(k)
		}
		if err != nil {
			return err
		}
		b = b[k:]
	}
	return nil
}

// unregister removes the link's connection to the target from
// proxiedAddrs. Idempotent.
func (l *link) unregister() {
	if l.upAddr != "" {
		proxiedAddrs.Delete(l.upAddr)
	}
}

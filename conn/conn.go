package conn

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/robustmqtt/mqtt/codec"
)

// readBufferSize is the size of the buffered reader under the decoder: a
// burst of a thousand acknowledgements costs one read system call; larger
// frames are read through. An idle connection holds none (see idle.go).
const readBufferSize = 4 << 10

// disconnectWriteBudget bounds how long a failing connection may spend on a
// best-effort MQTT 5 DISCONNECT that tells the broker why it is being cut.
const disconnectWriteBudget = 10 * time.Millisecond

// Config says how to open a connection.
type Config struct {
	// Connect is the CONNECT packet to send. Its Version (codec.V311 or
	// codec.V5) is the protocol level of the whole connection, and its
	// KeepAlive (seconds) the keepalive interval unless an MQTT 5 broker
	// sets Server Keep Alive. Required.
	Connect *codec.Connect

	// ConnectTimeout bounds the dial and the CONNECT/CONNACK exchange
	// together. Zero means no bound other than the ctx given to Open.
	ConnectTimeout time.Duration

	// MaxPacketSize is the largest frame accepted from the broker, in
	// bytes; a larger one fails the connection with a *ProtocolError
	// before anything is allocated for it. Zero means the protocol maximum.
	MaxPacketSize int

	// TLS configures tls://, ssl://, mqtts:// and wss:// servers. It is
	// cloned, never changed; when its ServerName is empty the URL's host
	// is used. Nil means the system roots and the server name from the URL.
	TLS *tls.Config

	// Inbound receives every frame the reader decodes after CONNACK,
	// except PINGRESP, which the connection consumes itself. The reader
	// blocks on it until the receiver takes the frame or the connection
	// fails, so the receiver must keep draining it. Required before
	// ReadLoop runs.
	Inbound chan<- Inbound
	// Inline, if not nil, is offered the acknowledgements (PUBACK,
	// PUBREC, PUBCOMP) on the reader's goroutine before the channel: all
	// those one read brought that follow each other, up to MaxAckBatch,
	// in order; but only while every frame this connection sent through
	// Inbound has been reported handled with Conn.Taken, so that frames
	// are handled in order. It returns how many of them, from the first,
	// it handled; the others go through Inbound. It must not block or
	// keep acks.
	Inline func(c *Conn, acks []Ack) int
	// MayLend, if not nil (and Inline is not), lets the reader goroutine
	// lend the socket to a caller that waits for an acknowledgement (see
	// Await): it reports whether nothing else waits for an answer from
	// the broker, which nobody would read while the socket is lent. It
	// is called with the send queue's lock held and must only read.
	MayLend func() bool

	// OnFail, if not nil, is called once when the connection fails (Err
	// reports why by then), on the goroutine that failed it. It must not
	// block: it tells the owner to look, which saves the owner waiting on
	// Done.
	OnFail func()

	// Counters, if not nil, count the bytes read and written.
	Counters *Counters

	// Dial, if not nil, opens the byte stream to server instead of the
	// built-in dialer (tcp, tls, ws, wss): a proxy, a Unix socket, an
	// in-memory pipe for tests. The stream it returns is used as it is
	// (TLS, if wanted, is its job); ConnectTimeout still bounds it.
	Dial func(ctx context.Context, server string) (net.Conn, error)

	// Auth continues the MQTT 5 enhanced authentication that Connect
	// starts with an Authentication Method (section 4.12): it answers the
	// broker's AUTH challenges before CONNACK and checks the CONNACK's
	// Authentication Data. Required when Connect has an Authentication
	// Method, and only then.
	Auth Authenticator

	// TopicAliases (MQTT 5) is how many Topic Aliases the writer may give
	// the topics of outbound PUBLISH packets, within the broker's Topic
	// Alias Maximum (CONNACK). The writer chooses them as it encodes
	// (free aliases first, then the most recently used topics keep
	// theirs): a topic goes whole, with its alias, the first time on the
	// connection, and as the alias alone afterwards. The packets queued
	// are not changed. Zero: none.
	TopicAliases int

	// Linger is how long an exchange whose ctx ends after its CONNECT
	// was written goes on, so that the connection ends with DISCONNECT
	// rather than a cut: it waits for the CONNACK, answers one that
	// accepts the connection with DISCONNECT (Normal disconnection), and
	// waits for the broker to close the connection, all within Linger
	// from the moment ctx ended (Open's connect timeout is not the
	// caller's stop: it cuts at once). A broker that took the CONNECT
	// holds the client connected, and cut off, it publishes the Will.
	// Open still returns ctx's error. Zero: the exchange is cut at once.
	Linger time.Duration
	// LingerFor, if set, is called as ctx ends, and what it returns is
	// the Linger: a caller whose stops differ (a graceful one may wait
	// longer than a quick one) says at that instant which one it is.
	LingerFor func() time.Duration

	// link is how long Open's dial took, for RoundTrip; Establish alone
	// has none.
	link linkTime
	// timeout is the cause of Open's connect timeout, which is not a stop
	// by the caller (see Linger).
	timeout error
}

// Inbound is one frame from the broker, with the connection it came on, so
// that a receiver serving several connections over time can tell a late
// frame from a dead connection apart from a current one.
//
// A plain acknowledgement, the 4-byte PUBACK, PUBREC or PUBCOMP that
// carries nothing but a packet identifier (success, no properties), comes
// without a decoded packet so that it costs no allocation: Packet is nil,
// Ack its type and ID its identifier.
type Inbound struct {
	// Refused, when not nil, is a PUBLISH the decoder refused as beyond
	// this client's limits (Code ImplementationSpecificError, with its QoS
	// and PacketID): valid, read whole, not delivered. The receiver
	// answers it with a refusal in PUBACK or PUBREC, so that the broker
	// does not send it again on every connection.
	Refused *codec.Error

	Conn   *Conn
	Packet codec.Packet
	Ack    codec.PacketType // TypePuback, TypePubrec or TypePubcomp when Packet is nil
	ID     uint16
}

// An Ack is a plain acknowledgement: a PUBACK, PUBREC or PUBCOMP of two
// bytes, the packet identifier alone (MQTT 5: Success, no properties).
type Ack struct {
	Type codec.PacketType
	ID   uint16
}

// MaxAckBatch is how many acknowledgements at most are offered to
// Config.Inline at once: the session is held for as long as it takes to
// handle them.
const MaxAckBatch = 32

// Frame is one packet queued for the writer.
type Frame struct {
	Packet codec.Packet
	// Track, if not nil, follows the packet through the writer: Claim is
	// called just before the packet is encoded (false skips it: it was
	// withdrawn), and Written once the write that carried it has finished
	// (nil) or failed, or with an error wrapping ErrUnencodable if it
	// could not be encoded. Written is called at most once per Frame
	// queued, and never for a frame that Drain returned, Claim skipped or
	// Unclaim took back (see [Unclaimer]): after Written, the writer
	// holds nothing of the frame (the session counts on it to reuse a
	// publish's memory).
	Track Tracker
}

// Tracker follows one queued packet; see [Frame]. Its methods are called
// on the writer goroutine and must not block.
type Tracker interface {
	// Claim reports whether the packet may still be written. After it has
	// returned true the packet counts as sent, whatever happens next.
	Claim() bool
	// Written reports the outcome of the write that carried the packet.
	Written(err error)
}

// An Unclaimer is a Tracker whose claim can be taken back. When the
// connection fails after Claim and before the write that was to carry the
// packet began, so that not a byte of it left, the writer calls Unclaim
// instead of Written. If Unclaim reports true, the packet counts as never
// sent again, and its frame goes back to the queue, for Drain; if false
// (the packet had been claimed before, say on an earlier connection, so
// it may have been sent then), the claim stands and Written follows as
// for any Tracker. Unclaim is called on the writer goroutine, right
// after the Claim it takes back, and must not block.
type Unclaimer interface {
	Tracker
	Unclaim() bool
}

// Conn is one MQTT connection, established by [Open]. Its fields are
// grouped by the goroutine that owns them.
type Conn struct {
	// Set by Open; read-only afterwards.
	server    string
	nc        net.Conn
	br        *bufio.Reader // pooled; see idle.go
	keepAlive time.Duration
	maxPacket int
	inbound   chan<- Inbound
	inline    func(*Conn, []Ack) int
	onFail    func()
	mayLend   func() bool
	rs        *readState   // made by the reader on the first acknowledgement; see lend.go
	pendingIn atomic.Int32 // frames sent through inbound and not yet Taken
	// connectWritten: the handshake began writing CONNECT (see
	// ConnectMayHaveArrived).
	connectWritten bool
	version        byte
	// closed: no more frames are accepted or taken (guarded by mu, with
	// the send queue below; here, it packs with the fields above).
	closed bool
	// interruptible: a read deadline interrupts a read and nothing else
	// (TCP, TLS), so a caller may read with a ctx that can end (see
	// Interrupt).
	interruptible bool
	connack       *codec.Connack
	// roundTrip is the link's round trip as measured (see RoundTrip).
	roundTrip time.Duration
	epoch     time.Time // origin of the liveness clocks below
	// authMethod is the CONNECT's Authentication Method; "" for none.
	authMethod string

	// Owned by the reader (see idle.go).
	idle  bool    // no frame expected soon: wait without a buffer
	first [1]byte // the byte an idle wait reads
	// stalled is set while the reader holds a frame it cannot hand on:
	// the link is not silent then, the client is not reading (keepalive).
	// The writer reads it.
	stalled atomic.Bool
	pre     prefixReader // hands first back to br

	// Failure: err is set once, then dead is closed (set err, then close).
	failOnce sync.Once
	err      error
	dead     chan struct{}

	// The send queue, guarded by mu. The writer swaps it out whole.
	mu    sync.Mutex
	queue []Frame       // see also closed
	kick  chan struct{} // 1-buffered: "the queue is not empty"
	// drained is signalled (1-buffered) when the writer took the queue,
	// for a reader waiting on maxQueuedFrames; made by the first such
	// reader (guarded by mu).
	drained chan struct{}
	// flushMu is held by the writer while it flushes, so that Drain sees
	// the frames a flush put back unwritten.
	flushMu sync.Mutex
	queued  atomic.Int32 // len(queue), for the reader without the lock
	// saidGoodbye is set, under flushMu, once a DISCONNECT was encoded:
	// nothing follows it, not even a PINGREQ [MQTT-3.14.4-1]; what is
	// queued after it stays for Drain.
	saidGoodbye atomic.Bool
	// nowBuf is WriteNow's encode buffer, guarded by flushMu.
	nowBuf []byte
	fs     flushState // guarded by flushMu

	// wmu serialises writes on nc between the writer and the best-effort
	// DISCONNECT of a failing connection.
	wmu sync.Mutex

	// Liveness clocks in nanoseconds since epoch. lastRead is when a read
	// from the socket last returned bytes (stored by whoever reads: the
	// handshake, then the reader; see liveReader); lastWrite is when the
	// writer last wrote. The writer reads both.
	lastRead  atomic.Int64
	lastWrite atomic.Int64
}

// Open dials server, sends cfg.Connect and waits for the CONNACK. A refusal
// is a *ConnectError; an unexpected or malformed answer a *ProtocolError;
// no answer within cfg.ConnectTimeout an error saying so. On success the
// connection is established and its loops are not running yet: run
// [Conn.ReadLoop] and [Conn.WriteLoop] next, or [Conn.Close] it.
func Open(ctx context.Context, server string, cfg Config) (*Conn, error) {
	if cfg.Connect == nil {
		return nil, errors.New("conn: Open needs a CONNECT packet (Config.Connect is nil)")
	}
	u, err := ParseServer(server)
	if err != nil {
		return nil, err
	}
	if cfg.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		cfg.timeout = fmt.Errorf("conn: no CONNACK from %s within the connect timeout of %s", u.Redacted(), cfg.ConnectTimeout)
		ctx, cancel = context.WithTimeoutCause(ctx, cfg.ConnectTimeout, cfg.timeout)
		defer cancel()
	}
	var nc net.Conn
	if cfg.Dial != nil {
		began := time.Now()
		nc, err = cfg.Dial(ctx, server)
		if err == nil && nc == nil {
			err = fmt.Errorf("conn: Config.Dial returned neither a connection nor an error for %s", u.Redacted())
		}
		cfg.link = linkTime{took: time.Since(began), timed: true}
	} else {
		var t linkTimer
		nc, err = dial(withLinkTimer(ctx, &t), u, cfg.TLS)
		cfg.link = t.result()
	}
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			return nil, fmt.Errorf("%w (%w)", cause, err)
		}
		return nil, err
	}
	return Establish(ctx, nc, u.Redacted(), cfg)
}

// Establish runs the CONNECT/CONNACK exchange over nc, an open byte stream
// to server (a name for messages only), as Open does after dialing. It
// serves transports that Open does not know, and tests that use net.Pipe.
// nc is closed if the exchange fails. cfg.ConnectTimeout is not applied
// here: bound ctx instead.
func Establish(ctx context.Context, nc net.Conn, server string, cfg Config) (*Conn, error) {
	if cfg.Connect == nil {
		nc.Close()
		return nil, errors.New("conn: Establish needs a CONNECT packet (Config.Connect is nil)")
	}
	var interruptible bool
	switch nc.(type) {
	case *net.TCPConn, *tls.Conn:
		interruptible = true
	}
	if cfg.Counters != nil {
		nc = countingConn{nc, cfg.Counters}
	}
	c := &Conn{
		interruptible: interruptible,
		server:        server,
		nc:            nc,
		idle:          true,
		version:       cfg.Connect.Version,
		keepAlive:     time.Duration(cfg.Connect.KeepAlive) * time.Second,
		maxPacket:     cfg.MaxPacketSize,
		inbound:       cfg.Inbound,
		inline:        cfg.Inline,
		mayLend:       cfg.MayLend,
		onFail:        cfg.OnFail,
		epoch:         time.Now(),
		dead:          make(chan struct{}),
		kick:          make(chan struct{}, 1),
	}
	if p := cfg.Connect.Properties; p != nil && cfg.Connect.Version == codec.V5 {
		c.authMethod = p.AuthenticationMethod
	}
	if (c.authMethod != "") != (cfg.Auth != nil) {
		nc.Close()
		return nil, errors.New("conn: an Authentication Method in CONNECT and Config.Auth go together: set both or neither")
	}
	c.br = newReader(liveReader{c})
	if err := c.handshake(ctx, &cfg); err != nil {
		nc.Close()
		var refused *ConnectError
		if c.connectWritten && !errors.As(err, &refused) {
			err = &connectSent{err}
		}
		return nil, err
	}
	// How many Topic Aliases the writer may use: the smaller of
	// Config.TopicAliases and the broker's Topic Alias Maximum. The table
	// is made here, before the loops run, and never replaced.
	if p := c.connack.Properties; p != nil && p.TopicAliasMaximum != nil && c.version == codec.V5 {
		if n := min(max(cfg.TopicAliases, 0), int(*p.TopicAliasMaximum)); n > 0 {
			c.fs.aliases = newAliasTable(n, c.brokerMaxPacket())
		}
	}
	return c, nil
}

// handshake writes cfg.Connect and reads CONNACK, with the rounds of
// enhanced authentication (cfg.Auth) in between, giving up when ctx ends
// (see Config.Linger). cfg.link is how long the dial took, if Open timed
// it (see RoundTrip).
func (c *Conn) handshake(ctx context.Context, cfg *Config) error {
	connect, auth, link := cfg.Connect, cfg.Auth, cfg.link
	// Unblock the socket when ctx ends: a deadline in the past fails the
	// pending read or write at once. Or, once the CONNECT is out and the
	// caller wants it, a deadline Linger away bounds a polite end
	// (lingering says which, once decided).
	var written atomic.Bool // connectWritten, for the func below
	lingering := make(chan bool, 1)
	stop := context.AfterFunc(ctx, func() {
		d := cfg.Linger
		if cfg.LingerFor != nil {
			d = cfg.LingerFor()
		}
		linger := d > 0 && written.Load() && context.Cause(ctx) != cfg.timeout
		if linger {
			c.nc.SetDeadline(time.Now().Add(d))
		} else {
			c.nc.SetDeadline(time.Unix(1, 0))
		}
		lingering <- linger
	})
	ctxErr := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("%w (%w)", context.Cause(ctx), err)
		}
		return err
	}
	frame, err := connect.AppendTo(nil, connect.Version)
	if err != nil {
		stop()
		return fmt.Errorf("conn: cannot encode CONNECT: %w", err)
	}
	c.connectWritten = true // from here on the broker may have it
	written.Store(true)
	start := time.Now()
	if _, err := c.nc.Write(frame); err != nil {
		stop()
		return ctxErr(fmt.Errorf("conn: send CONNECT to %s: %w", c.server, err))
	}
	p, err := c.awaitConnack(ctx, auth)
	c.roundTrip = time.Since(start)
	if link.timed {
		c.roundTrip = min(c.roundTrip, link.took)
	}
	if !stop() {
		// ctx ended while we were waiting: the caller does not want the
		// connection, but one the broker accepted is ended politely.
		if ack, ok := p.(*codec.Connack); <-lingering && err == nil && ok && ack.ReasonCode == codec.Success {
			c.leave()
		}
		return ctxErr(fmt.Errorf("conn: waiting for CONNACK from %s: %w", c.server, ctx.Err()))
	}
	if err != nil {
		return err
	}
	ack, ok := p.(*codec.Connack)
	if !ok {
		return &ProtocolError{Code: codec.ProtocolError, Packet: p.Type(),
			Reason: fmt.Sprintf("expected CONNACK as the first packet from %s, got %s", c.server, p.Type())}
	}
	if ack.ReasonCode != codec.Success {
		e := &ConnectError{Server: c.server, ReasonCode: ack.ReasonCode}
		if ack.Properties != nil {
			e.ReasonString = ack.Properties.ReasonString
			e.ServerReference = ack.Properties.ServerReference
		}
		return e
	}
	if c.version == codec.V5 {
		if err := c.checkConnackAuth(ack); err != nil {
			return err
		}
	}
	if auth != nil {
		// The broker accepted the client; now the client checks the
		// broker, if the method has it prove itself (SCRAM's server
		// signature). The broker takes the connection as up, so it is
		// told why it ends.
		if err := auth.Done(ctx, AuthData(ack.Properties)); err != nil {
			c.goodbye(codec.UnspecifiedError)
			return &AuthError{Server: c.server, Method: c.authMethod, Op: "verifying the broker's final data", Err: err}
		}
	}
	if ack.Properties != nil && ack.Properties.ServerKeepAlive != nil {
		// The broker decides [MQTT-3.2.2-21].
		c.keepAlive = time.Duration(*ack.Properties.ServerKeepAlive) * time.Second
	}
	c.connack = ack
	now := c.now()
	c.lastRead.Store(now)
	c.lastWrite.Store(now)
	return nil
}

// v311Refusal reports whether the answer to an MQTT 5 CONNECT is the MQTT
// 3.1.1 CONNACK 20 02 00 01: return code 1, "unacceptable protocol level",
// which a broker that only speaks 3.1.1 must send before it closes the
// connection [MQTT-3.1.2-2]. It consumes that frame, and only that one.
// The MQTT 5 decoder cannot tell it apart from a malformed CONNACK (0x01 is
// no CONNACK reason code, and the property length is missing), so without
// this a plain version mismatch would read as a protocol error. A read
// error is returned rather than left for the decoder, which would not see
// it again on a transport whose errors do not repeat (see plainAck).
func (c *Conn) v311Refusal() (bool, error) {
	if c.version != codec.V5 {
		return false, nil
	}
	b, err := c.br.Peek(2)
	if err == nil && (b[0] != 0x20 || b[1] != 0x02) {
		return false, nil
	}
	if err == nil {
		// The frame announces two more bytes: this waits for nothing else.
		b, err = c.br.Peek(4)
	}
	if err != nil {
		if errors.Is(err, io.EOF) && c.br.Buffered() > 0 {
			err = io.ErrUnexpectedEOF // closed inside the frame
		}
		return false, err
	}
	if b[2] != 0x00 || b[3] != 0x01 {
		return false, nil // flags and reason for the MQTT 5 decoder to judge
	}
	c.br.Discard(4)
	return true, nil
}

// readError turns a decoder or socket error into the error the connection
// fails with.
func (c *Conn) readError(err error, doing string) error {
	if e := explainTLS(fmt.Sprintf("conn: %s, while %s", c.server, doing), err); e != nil {
		return e
	}
	var ce *codec.Error
	var wsClose websocket.CloseError
	switch {
	case errors.As(err, &ce):
		return &ProtocolError{Code: ce.Code, Packet: ce.Packet, Err: err}
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w (%s, while %s)", ErrServerClosed, c.server, doing)
	case errors.As(err, &wsClose):
		// A WebSocket close frame other than a normal closure or going
		// away (those read as io.EOF): the broker's end all the same,
		// as a refusal of something the client sent may be.
		return fmt.Errorf("%w (%s, while %s: WebSocket close frame with status %d, %v, reason %q)",
			ErrServerClosed, c.server, doing, int(wsClose.Code), wsClose.Code, wsClose.Reason)
	default:
		return fmt.Errorf("conn: read from %s while %s: %w", c.server, doing, err)
	}
}

// Server is the server URL this connection went to (password redacted).
func (c *Conn) Server() string { return c.server }

// RoundTrip is the link's round trip as the connection measured it: the
// smaller of how long the CONNECT/CONNACK exchange took (with enhanced
// authentication, every round of it) and, when Open dialed, how long the
// dial's TCP handshake took (tcp://, tls://, ws://, wss://: from connect(2)
// to the connection, after any name lookup) or Config.Dial's call. The
// smaller, because each can hold waits that are not the link's: a broker
// slow to accept a CONNECT (overloaded after a restart), a dialer that
// resolves names or passes a proxy. The TCP handshake is answered by the
// broker's kernel, however busy its process: over a fast link RoundTrip
// stays small even when CONNACK is slow.
func (c *Conn) RoundTrip() time.Duration { return c.roundTrip }

// Connack is the broker's CONNACK, with session present and, in MQTT 5, its
// properties (Receive Maximum, Maximum Packet Size, Topic Alias Maximum,
// Assigned Client Identifier, ...).
func (c *Conn) Connack() *codec.Connack { return c.connack }

// Version is the protocol level of the connection (codec.V311 or codec.V5).
func (c *Conn) Version() byte { return c.version }

// KeepAlive is the keepalive interval in force: the client's, or the MQTT 5
// broker's Server Keep Alive. Zero means keepalive is off.
func (c *Conn) KeepAlive() time.Duration { return c.keepAlive }

// Done is closed once the connection has failed or been closed.
func (c *Conn) Done() <-chan struct{} { return c.dead }

// Err says why the connection ended; nil while it is alive.
func (c *Conn) Err() error {
	select {
	case <-c.dead:
		return c.err
	default:
		return nil
	}
}

// Close ends the connection now with ErrClosed (unless it had already
// failed). It does not wait for the loops; their owner does.
func (c *Conn) Close() error {
	c.Fail(ErrClosed)
	return nil
}

// Fail ends the connection with err, unless it has already ended. For a
// *ProtocolError on an MQTT 5 connection it first tries, for at most a few
// milliseconds and only if the writer is not mid-write, to tell the broker
// why in a DISCONNECT (section 4.13.1); for an *AuthError (a failed
// re-authentication) likewise, with Unspecified error [MQTT-4.12.1-2]: a
// client may not send Not authorized. Nothing is written after it
// [MQTT-3.14.4-1]: the writer checks, under the same lock, that the
// connection has not failed before each write.
func (c *Conn) Fail(err error) {
	c.failOnce.Do(func() {
		c.err = err
		close(c.dead)
		var pe *ProtocolError
		var ae *AuthError
		code, tell := codec.ReasonCode(0), false
		switch {
		case errors.As(err, &pe):
			// Only a code DISCONNECT may carry [MQTT-3.14.2-1]: a decoding
			// error can carry a CONNACK-only one.
			code, tell = codec.DisconnectReason(pe.Code), true
		case errors.As(err, &ae):
			code, tell = codec.UnspecifiedError, true
		}
		if tell && c.version == codec.V5 && c.wmu.TryLock() {
			c.goodbye(code)
			c.wmu.Unlock()
		}
		c.nc.Close()
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.wakeWriter() // it returns on its next turn
		if c.onFail != nil {
			c.onFail()
		}
	})
}

// Send queues f for the writer and returns at once. It reports false, and
// queues nothing, once the connection has ended or been drained.
func (c *Conn) Send(f Frame) bool {
	if !c.queueFrame(f, true) {
		return false
	}
	c.wakeWriter()
	return true
}

// SendQuiet is Send without waking the writer: the caller promises to
// call FlushNow (or Send) right after. Unlike Send, it leaves a socket lent
// to a caller (see Await) lent: the caller that flushes reads the answer
// itself, or calls Reclaim.
func (c *Conn) SendQuiet(f Frame) bool { return c.queueFrame(f, false) }

// queueFrame queues f; reclaim: a lent socket goes back to the reader
// goroutine, which reads the answer f may have.
func (c *Conn) queueFrame(f Frame, reclaim bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.queue = append(c.queue, f)
	c.queued.Store(int32(min(len(c.queue), math.MaxInt32)))
	if reclaim && c.rs != nil && c.rs.baton == lent {
		c.takeBackLocked()
	}
	return true
}

// wakeWriter tells the writer that frames wait.
func (c *Conn) wakeWriter() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Drain stops the queue and returns the frames the writer never took, in
// order. Their trackers were never claimed, so the caller may send them on
// another connection. Call it once the connection is done.
func (c *Conn) Drain() []Frame {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	q := c.queue
	c.queue = nil
	c.queued.Store(0)
	return q
}

// putBack returns frames a flush took but will not write this time to the
// front of the queue, in order, and wakes the writer for them.
func (c *Conn) putBack(frames []Frame) {
	c.mu.Lock()
	c.queue = append(slices.Clone(frames), c.queue...)
	c.queued.Store(int32(min(len(c.queue), math.MaxInt32)))
	c.mu.Unlock()
	c.wakeWriter()
}

// WroteSince reports whether a write to the connection succeeded at t or
// later: frames queued at t have left (or, for a link that fails, at least
// went into the operating system's buffer), where a write that failed
// proves nothing reached the broker.
func (c *Conn) WroteSince(t time.Time) bool {
	return c.lastWrite.Load() >= int64(t.Sub(c.epoch))
}

// now is the connection's monotonic clock in nanoseconds.
func (c *Conn) now() int64 { return int64(time.Since(c.epoch)) }

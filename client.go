package mqtt

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
	"github.com/robustmqtt/mqtt/supervisor"
)

// Client is a connection to an MQTT broker that outlives network failures.
// It is safe for concurrent use. Create one with Dial (which waits for the
// first connection) or Start (which does not); stop it with Disconnect or
// Close.
type Client struct {
	cfg *settings

	// Requests into the session goroutine, which owns all session state.
	// ctrl carries every request: *pubOp (a publish the session could not
	// take on its caller's goroutine), *ctlOp, cancelRequest, ackRequest,
	// *disconnectRequest, newConn (from the supervisor), ...
	ctrl    chan any
	inbound chan conn.Inbound // frames, from connection readers

	// adm bounds the publishes accepted and not yet finished.
	adm admission
	// stats are the counters behind Stats.
	stats *counters
	// progress is signalled (never blocking) when a publish finishes, so
	// that a draining Disconnect can notice that everything is done. It
	// is the session's wake channel: one channel less per client.
	progress chan struct{}

	messages chan Message // unbuffered: a receive is the application's receipt

	// resultChans recycles the result channels of Publish, which unlike
	// PublishAsync's never escape to the caller: a channel of error costs
	// two allocations. One pool per Client, not per process: a channel
	// belongs to the testing/synctest bubble it was made in, and a Client
	// lives in one.
	resultChans sync.Pool

	// rr is the state of Request shared by its calls (request.go).
	rr requester

	// authTurn, with Config.Auth, is held (1-buffered) by whoever runs an
	// exchange of it, a connection attempt or Reauthenticate, so that its
	// methods are never called for two exchanges at once.
	authTurn chan struct{}

	// events is made by the first Events call (eventsReady then holds
	// it, for Events without the lock); until then emit keeps what the
	// channel would hold in unread, so that a client nobody asks for
	// events does not carry a channel of 8 of them (1.2 KiB).
	events       chan Event
	eventsReady  atomic.Pointer[chan Event]
	unread       []Event
	eventsMu     sync.Mutex // guards events, unread and eventsClosed
	eventsClosed bool

	closing atomic.Bool // set by Close, which then wakes the session
	// awaited is how many requests the session has in flight (its flight
	// table's size; see session.putFlight): while there are none, a
	// connection may lend its socket to a caller that waits for its
	// acknowledgement (see conn.Await).
	awaited   atomic.Int32
	closeOnce sync.Once
	done      chan struct{} // closed once every goroutine of the client has exited
	err       error         // why it stopped; set before done is closed

	upMu     sync.Mutex          // guards up and everUp: the supervisor goroutine sets them, WaitConnected and Dial read them
	up       chan struct{}       // waiters' channel while no connection is up, nil until one waits; see upChan
	isUp     bool                // a connection is up
	everUp   bool                // a connection came up (see firstUp)
	stopping atomic.Bool         // set when the session stops the supervisor (here, it packs with the two flags)
	stopRun  *supervisor.Stopper // stops the supervisor

	// A QoS 0 Publish writes on the connection itself (publishNow) while
	// direct is set: the session sets it at the end of each turn that
	// leaves nothing waiting to be written, and clears it otherwise.
	// inTransit counts publishes handed to the session (or about to be)
	// that it has not yet accounted for in direct.
	direct    atomic.Pointer[conn.Conn]
	inTransit atomic.Int64
	// probed is the connection on which the session sent a publish alone
	// that the broker has not answered yet (see refused.go): its end is
	// the broker's answer to that message, not a sign of a twin.
	probed atomic.Pointer[conn.Conn]
	// inlineAck is the session's handler of acknowledgements on the
	// reader's goroutine (conn.Config.Inline).
	inlineAck     func(*conn.Conn, []conn.Ack) int
	inlinePublish func(o *pubOp, callerFlushes bool) (bool, *conn.Conn) // the session's, see session.inlinePublish
	// wantProgress is set while a Flush or a Disconnect waits for
	// publishes to finish: only then does a finish signal progress.
	wantProgress atomic.Bool
	// supDone is set, and supWG done, when the supervisor has returned;
	// supErr is set before them.
	supDone atomic.Bool
	supWG   sync.WaitGroup
	supErr  error

	// Owned by the supervisor goroutine (Start and OnEvent run there).
	serverIdx  int
	redirect   string // a broker's Server Reference to try next; "" for none
	runServer  string // the server of the current run, as shown: password redacted
	runUpAt    time.Time
	runUp      bool // the current run reached CONNACK
	runPresent bool // the current run's CONNACK said Session Present
	// connectUnanswered: since the last CONNACK, an attempt's CONNECT may
	// have reached the broker without its answer reaching the client.
	connectUnanswered bool
	connectedBefore   bool
	// sessionAt is the server of Servers of the last connection that was
	// not a broker's redirect: where the session's state was last made
	// (Session Present 0) or kept.
	sessionAt string
	// For the default connect timeout (attemptTimeout): how long the
	// last attempt that reached CONNACK took, and how many attempts in a
	// row have run out of time since.
	connectTook     time.Duration
	connectTimeouts int
	takeover        takeoverWatch
	lastErrMu       sync.Mutex
	lastErr         error // the latest connection failure, for the errors of Dial and WaitConnected
}

// Dial validates cfg, connects to the first server that answers, retrying
// with cfg.Backoff until a connection is up or ctx ends, and then keeps the
// session alive in the background until Disconnect, Close, or until the
// strategy gives up (see Done and Err). A bad cfg is an error wrapping
// ErrInvalidConfig, a nil ctx an error of its own; either way nothing is
// started or dialed. ctx bounds only the first connection, not the
// client's life. When no connection came up, the client is closed and
// the error says why: the strategy gave up (ErrGaveUp), or ctx ended
// (wrapping ctx's cause, and the last attempt's error).
//
// Dial is Start followed by waiting for the first connection. A device
// that must start working while the broker is away uses Start instead.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	// Before anything starts: a nil ctx used to panic in the select below,
	// with the session, the supervisor and a connection left running.
	if ctx == nil {
		return nil, errors.New("mqtt: Dial needs a non-nil context; use context.Background()")
	}
	c, err := Start(cfg)
	if err != nil {
		return nil, err
	}
	// The first connection, not one up now: Dial promises that a
	// connection came up, even if it was lost again the next instant.
	if c.awaitUp(ctx, c.firstUp()) {
		return c, nil
	}
	c.Close()
	if err := c.Err(); err != nil {
		return nil, err // the strategy gave up, or the store failed
	}
	err = fmt.Errorf("mqtt: dial: no connection before the dial context ended: %w", context.Cause(ctx))
	if last := c.lastError(); last != nil {
		err = fmt.Errorf("%w (last attempt: %w)", err, last)
	}
	return nil, err
}

// Start validates cfg and starts the client without waiting for a
// connection: it returns at once, and the client connects in the
// background, retrying with cfg.Backoff, as it reconnects after a loss.
// A device that boots while the broker is away works at once: publishes
// wait in the queue under the usual limits and policies (a publish whose
// ctx ends first is withdrawn, ErrWithdrawn), subscribes wait for the
// connection, and Events reports Connected once it is up (Reconnecting
// before each retry). WaitConnected waits for it; Done and Err say
// whether the strategy gave up first.
//
// A bad cfg is an error wrapping ErrInvalidConfig, and a Config.Store
// that cannot be read, or holds another client's session, an error of its
// own; either way nothing is started. Stop the client with Disconnect or
// Close.
func Start(cfg Config) (*Client, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:      s,
		ctrl:     make(chan any),
		inbound:  make(chan conn.Inbound, 4),
		adm:      admission{maxN: s.MaxQueued, maxBytes: s.MaxQueuedBytes},
		takeover: takeoverWatch{stableAfter: s.StableAfter},
		stats:    newCounters(),
		messages: make(chan Message),
		done:     make(chan struct{}),
	}
	if s.Auth != nil {
		c.authTurn = make(chan struct{}, 1)
	}
	sess := newSession(c)
	c.progress = sess.wake
	c.inlineAck, c.inlinePublish = sess.inlineAck, sess.inlinePublish
	// Before anything runs: what the store holds is queued ahead of every
	// publish made after Start returns, connected or not.
	if s.Store != nil {
		if err := sess.restore(); err != nil {
			return nil, err
		}
	}
	// A Stopper rather than a cancellable context: the supervisor's runs
	// then have no parent context to register with (0.4 KiB per client).
	c.stopRun = supervisor.NewStopper()
	go sess.run()
	c.supWG.Go(c.supervise)
	return c, nil
}

// WaitConnected waits until the client is connected: it returns nil at
// once if a connection is up, and otherwise when the next one comes up,
// so it serves after Start and after a ConnectionLost alike. That is a
// moment, not a promise: the connection may be lost again right after.
// Publishes and subscribes need no such wait, they wait for a connection
// themselves; WaitConnected is for a program that wants to know, such as
// one that reports "online" or gives up on a device with no network.
//
// When the client has stopped (now or while waiting) it returns Err: an
// error wrapping ErrGaveUp when the reconnect strategy gave up, or the
// store's error; after Close or Disconnect, ErrClosed. When ctx ends first
// it returns an error wrapping ctx's cause and the last attempt's error,
// and the client goes on trying.
func (c *Client) WaitConnected(ctx context.Context) error {
	if ctx == nil {
		return errors.New("mqtt: WaitConnected needs a non-nil context; use context.Background()")
	}
	if c.awaitUp(ctx, c.upNow()) {
		return nil
	}
	select {
	case <-c.done:
		if err := c.Err(); err != nil {
			return err
		}
		return ErrClosed
	default:
	}
	err := fmt.Errorf("mqtt: wait connected: no connection came up before the context ended: %w", context.Cause(ctx))
	if last := c.lastError(); last != nil {
		err = fmt.Errorf("%w (last attempt: %w)", err, last)
	}
	return err
}

// awaitUp waits until up is closed, the client stops or ctx ends, and
// reports whether up closed. A stopped client is never reported up, even
// when up closed before it stopped, and a closed up wins over an ended
// ctx: the answer does not depend on how select picks among ready cases.
func (c *Client) awaitUp(ctx context.Context, up <-chan struct{}) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case <-up:
		return true
	default:
	}
	select {
	case <-up:
		select {
		case <-c.done:
			return false
		default:
			return true
		}
	case <-c.done:
		return false
	case <-ctx.Done():
		return false
	}
}

// upNow returns the channel that is closed while a connection is up.
func (c *Client) upNow() <-chan struct{} {
	c.upMu.Lock()
	defer c.upMu.Unlock()
	return c.upChan()
}

// upChan is upNow with upMu held: a closed channel while a connection is
// up, otherwise the channel the next setUp(true) closes, made for the
// first waiter (a client nobody waits on carries none).
func (c *Client) upChan() <-chan struct{} {
	if c.isUp {
		return closedChan
	}
	if c.up == nil {
		c.up = make(chan struct{})
	}
	return c.up
}

// firstUp returns a channel that is closed once the first connection came
// up (and stays so, whatever happened since): a closed one if it did, or
// the current up channel, which setUp closes when it does.
func (c *Client) firstUp() <-chan struct{} {
	c.upMu.Lock()
	defer c.upMu.Unlock()
	if c.everUp {
		return closedChan
	}
	return c.upChan()
}

// closedChan is a closed channel.
var closedChan = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// setUp records whether a connection is up, for WaitConnected and Dial:
// coming up closes the channel their waits hold (see upChan).
// The supervisor goroutine calls it, before the event that says so, so
// that a program that saw Connected finds WaitConnected returning at once.
func (c *Client) setUp(isUp bool) {
	c.upMu.Lock()
	defer c.upMu.Unlock()
	if isUp && !c.isUp {
		c.everUp = true
		if c.up != nil {
			close(c.up) // the waiters' channel
			c.up = nil
		}
	}
	c.isUp = isUp
}

// Publish sends m and waits for its result. QoS 0 returns once the frame is
// written to a connection; QoS 1 and 2 return nil only once the broker
// acknowledged it (PUBACK, PUBCOMP). A broker that does not do QoS 2 may
// take a QoS 2 message as QoS 1 and answer PUBACK (RabbitMQ does, over
// MQTT 3.1.1): that acknowledges it too, at least once rather than exactly
// once, and the Logger says so once per connection. While the client is
// disconnected the message waits in the session's queue.
//
// ctx is the message's relevance window. If it ends before the PUBLISH was
// written, the message is withdrawn and never sent: the error wraps
// ErrWithdrawn and ctx.Err(). If it ends after, the error wraps
// ErrOutcomeUnknown and ctx.Err(), and the session still completes the
// QoS 1/2 flow. A message the client refuses (bad topic, QoS, too large
// for the broker) is an error wrapping ErrInvalidMessage and nothing is
// sent. When the queue is full (Config.MaxQueued, MaxQueuedBytes), the
// message's QueuePolicy decides: by default Publish waits for room until
// ctx ends.
//
// A QoS 0 Publish with nothing waiting ahead of it writes the frame on the
// caller's goroutine instead of handing it to the session and the writer,
// which makes a loop of them about as fast as writes on a bare socket.
// With a ctx that has no deadline, a cancellation that comes while that
// write waits for a full socket to drain is noticed when the write ends
// (at the latest after 1.5 keepalives, when the connection is declared
// dead); a ctx with a deadline always takes the queue, which withdraws
// the message at the deadline.
//
// A QoS 1/2 Publish whose ctx has no deadline writes its PUBLISH on the
// caller's goroutine the same way, and reads the acknowledgement itself,
// as a loop that writes and reads a bare socket does: between two such
// calls the connection's reader leaves the socket to the caller, and
// takes it back at once for anything else the client waits for, or 1 ms
// after the caller's last read (see conn.Await). A loop of them runs at
// about the rate of write-then-read on a bare socket. When ctx can end
// (it is not context.Background, context.TODO or a WithoutCancel), this
// needs a transport whose read a deadline interrupts without closing it:
// tcp, tls, mqtts and ssl servers (a Config.Dial stream if it is a
// *net.TCPConn or *tls.Conn), not WebSocket; elsewhere the reader reads,
// and each call costs a wake-up more.
func (c *Client) Publish(ctx context.Context, m Message) error {
	if m.QoS == AtMostOnce {
		if err, done := c.publishNow(ctx, &m); done {
			return err
		}
	}
	ch, _ := c.resultChans.Get().(chan error)
	if ch == nil {
		ch = make(chan error, 1)
	}
	res, flushed := c.publish(ctx, m, ch, true)
	if flushed != nil {
		c.awaitOn(ctx, flushed, m.QoS, res)
	}
	err := <-res
	// Safe to reuse: a publish sends its one result once, and nothing
	// else sends on the channel.
	c.resultChans.Put(ch)
	return err
}

// awaitOn lets a Publish that wrote its frames on cn itself read the
// answer too (see conn.Await): a QoS 1/2 publish, when cn's reader has
// lent it the socket. A ctx that can end interrupts the read (only where
// a read deadline interrupts a read and nothing else: TCP, TLS). Otherwise
// the reader reads what the frames written expect.
func (c *Client) awaitOn(ctx context.Context, cn *conn.Conn, qos QoS, res chan error) {
	switch {
	case qos == AtMostOnce:
		cn.Reclaim()
	case ctx.Done() == nil:
		cn.Await(func() bool { return len(res) > 0 })
	case cn.Interruptible():
		// The publish's ctx watcher interrupts the read when ctx ends
		// (op.reading, set by session.inlinePublish); if ctx ends before
		// the read begins, the read does not begin (done).
		cn.Await(func() bool { return len(res) > 0 || ctx.Err() != nil })
	default:
		cn.Reclaim()
	}
}

// publishNow writes a QoS 0 message on the caller's goroutine, the way
// a direct write would, when nothing the client accepted before waits to
// be written (a sequential caller's previous message included): no
// hand-off to the session and the writer, and no wake-up to deliver the
// result. It reports false when the message must take the queue instead:
// no connection, something accepted earlier not yet written (inTransit,
// or the session's queue, see session.allowDirect, or the connection's),
// a retained or expiring message, a message that does not validate (the
// queue's path says what is wrong), or a ctx that already ended or has a
// deadline (the queue's path withdraws the message at the deadline even
// when the socket is full; a write on the caller's goroutine would not
// return before it drains or the connection fails).
func (c *Client) publishNow(ctx context.Context, m *Message) (err error, done bool) {
	// inTransit first: the session clears direct before it counts the
	// publishes it took in as no longer in transit.
	if c.inTransit.Load() != 0 {
		return nil, false
	}
	cn := c.direct.Load()
	if cn == nil || m.Retain || m.Properties != nil && m.Properties.MessageExpiry != nil || ctx.Err() != nil {
		return nil, false
	}
	if _, bounded := ctx.Deadline(); bounded {
		return nil, false
	}
	if validateMessage(m, c.cfg.version) != nil {
		return nil, false
	}
	pkt := codec.Publish{Topic: m.Topic, Payload: m.Payload, Properties: m.Properties}
	written, err := cn.WriteNow(&pkt)
	if !written {
		return nil, false
	}
	if err != nil {
		err = fmt.Errorf("%w: the connection failed while a QoS 0 message was being written: %w", ErrOutcomeUnknown, err)
	}
	c.stats.published(int8(AtMostOnce), err)
	return err, true
}

// PublishAsync is Publish without the wait: the returned channel receives
// exactly one value, the result Publish would have returned, and is
// buffered, so nobody has to read it. When the queue is full it does what
// the message's QueuePolicy says (by default it blocks until there is
// room or ctx ends). With Config.Store it returns once a QoS 1/2 message
// is durably stored. Its result channel, which the caller keeps, is all it
// allocates per message (a Publish recycles its own, and allocates
// nothing).
func (c *Client) PublishAsync(ctx context.Context, m Message) <-chan error {
	res, _ := c.publish(ctx, m, make(chan error, 1), false)
	return res
}

// publish is PublishAsync with the result channel supplied: empty, with a
// buffer of one. waits: the caller (Publish) waits for the result; when
// it has no deadline either, the frames the publish queued may be written
// on its goroutine, and flushed is the connection they went to.
func (c *Client) publish(ctx context.Context, m Message, result chan error, waits bool) (res chan error, flushed *conn.Conn) {
	o := newPubOp()
	o.init(c, ctx, result)
	if err := validateMessage(&m, c.cfg.version); err != nil {
		o.result <- fmt.Errorf("%w: publish to %q: %w", ErrInvalidMessage, m.Topic, err)
		return o.result, nil
	}
	o.qos = int8(m.QoS)
	o.pkt = codec.Publish{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, Properties: m.Properties}
	o.finishOnWrite = m.QoS == AtMostOnce
	o.policy = cmp.Or(m.QueuePolicy, c.cfg.QueuePolicy)
	o.size = len(m.Topic) + len(m.Payload)
	if ctx.Err() != nil {
		o.finish(withdrawnError(ctx, "publish to "+m.Topic))
		return o.result, nil
	}
	if o.size > c.cfg.MaxQueuedBytes {
		o.finish(fmt.Errorf("%w: publish to %s has %d bytes of topic and payload, more than MaxQueuedBytes (%d) holds",
			ErrQueueFull, m.Topic, o.size, c.cfg.MaxQueuedBytes))
		return o.result, nil
	}
	if p := m.Properties; p != nil && p.MessageExpiry != nil {
		// The interval runs from the call, also while it waits for room.
		o.expires = time.Now().Add(time.Duration(*p.MessageExpiry) * time.Second)
	}
	if !c.admit(o) {
		return o.result, nil
	}
	o.watch()
	if !o.expires.IsZero() {
		o.expireAfter()
	}
	o.armWatchers()
	if c.cfg.Store != nil && m.QoS > AtMostOnce {
		o.stored = make(chan struct{})
	}
	// Nothing but the session and the writers can look at it after its
	// result, unless it is in the store or waits for room (see
	// pubOp.release; the watchers are checked when it finishes).
	o.recyclable = m.QoS > AtMostOnce && o.stored == nil && !o.needsRoom
	// Once handed over, o may be acknowledged and used again by another
	// publish at any moment: from here on only these are read.
	stored := o.stored
	res = o.result
	// The session takes it on this goroutine when it is free and nothing
	// of this caller's is in transit; otherwise through c.ctrl.
	// A caller that waits anyway, with no deadline to keep, also writes
	// the frame itself (see Publish).
	_, bounded := ctx.Deadline()
	taken := false
	if c.inTransit.Load() == 0 {
		taken, flushed = c.inlinePublish(o, waits && !bounded)
	}
	if !taken {
		c.inTransit.Add(1)
		select {
		case c.ctrl <- o:
		case <-c.done:
			c.inTransit.Add(-1)
			o.finish(ErrClosed)
		}
	}
	if stored != nil {
		// Accepted means durable: wait for the store, unless the
		// publish already has its result.
		select {
		case <-stored:
		case err := <-res:
			res <- err
		}
	}
	return res, flushed
}

// nothingAwaited reports whether the session has no request in flight: no
// answer from the broker that a caller waits for (conn.Config.MayLend).
func (c *Client) nothingAwaited() bool { return c.awaited.Load() == 0 }

// admit takes room for o under its queue policy. It reports false when o
// has its result already (the queue was full, or ctx ended while waiting).
// DropOldest and LatestPerTopic publishes that find no room go on without:
// the session makes room by dropping older messages.
func (c *Client) admit(o *pubOp) bool {
	for {
		ok, room := c.adm.takeOrWait(o.size)
		if ok {
			o.holdsRoom = true
			return true
		}
		switch o.policy {
		case FailNewest:
			o.finish(fmt.Errorf("%w: publish to %s: MaxQueued (%d publishes) or MaxQueuedBytes (%d) is reached",
				ErrQueueFull, o.pkt.Topic, c.cfg.MaxQueued, c.cfg.MaxQueuedBytes))
			return false
		case DropOldest, LatestPerTopic:
			o.needsRoom = true
			return true
		}
		var expired <-chan time.Time
		if !o.expires.IsZero() {
			t := time.NewTimer(time.Until(o.expires))
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-room:
		case <-expired:
			o.finish(expiredError(o))
			return false
		case <-o.ctx.Done():
			o.finish(withdrawnError(o.ctx, fmt.Sprintf("publish to %s waited for room in a full queue (MaxQueued %d, MaxQueuedBytes %d)",
				o.pkt.Topic, c.cfg.MaxQueued, c.cfg.MaxQueuedBytes)))
			return false
		case <-c.done:
			o.finish(ErrClosed)
			return false
		}
	}
}

// Flush waits until every publish made before the call has its result:
// QoS 1/2 acknowledged (or refused, withdrawn, ...), QoS 0 written. It
// returns nil then; ErrClosed if the client stopped first; or, when ctx
// ends first, an error wrapping ctx's cause that says how many are still
// unfinished. Publishes made during the wait are not waited for. Call it
// before a device goes back to sleep.
func (c *Client) Flush(ctx context.Context) error {
	w := &flushWaiter{done: make(chan struct{})}
	select {
	case c.ctrl <- w:
	case <-c.done:
		return ErrClosed
	}
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
	}
	r := flushCancel{w: w, remaining: make(chan int, 1)}
	select {
	case c.ctrl <- r:
	case <-c.done:
		<-w.done
		return w.err
	}
	n := <-r.remaining
	if n == 0 {
		return w.err
	}
	return fmt.Errorf("mqtt: flush: %d publishes made before Flush have no result yet: %w", n, context.Cause(ctx))
}

// flushWaiter is one Flush call waiting in the session.
type flushWaiter struct {
	ops  []*op // the publishes unfinished when Flush was called
	next int   // ops[:next] are finished
	err  error // set before done is closed
	done chan struct{}
}

// flushCancel takes a waiter back when its ctx ended; remaining receives
// how many of its publishes were still unfinished.
type flushCancel struct {
	w         *flushWaiter
	remaining chan int
}

// Subscribe subscribes to subs and waits for the broker's SUBACK. The
// client remembers what it subscribed to and subscribes again if the broker
// lost the session (what of that does not take comes as a
// ResubscribeFailed event). Filters the broker refused are reported in a
// *SubscribeError; the others are in effect. While disconnected the request
// waits for the next connection; ctx ending before it was sent withdraws it
// (ErrWithdrawn), after it was sent the result is ErrOutcomeUnknown and the
// subscription takes effect if the broker grants it. A SUBSCRIBE that got
// no SUBACK goes again on the next connection; one the broker answers by
// ending the connection each time it is sent alone (as AWS IoT Core does
// for a filter the client may not use) ends with ErrRefused and is not
// sent again (see ErrRefused).
func (c *Client) Subscribe(ctx context.Context, subs ...Subscription) error {
	o, err := c.subscribeOp(subs)
	if err != nil {
		return err
	}
	return c.control(ctx, o, "subscribe")
}

// SubscribeGranted is Subscribe that also returns the broker's answer to
// each of subs, in their order, from its SUBACK: codec.GrantedQoS0, 1 or 2
// is the highest QoS the broker will deliver with on that subscription,
// which may be lower than asked (a broker without QoS 2 grants 1); a code
// of 0x80 or more (IsError) is a refusal, which the *SubscribeError names
// too. The codes come with a nil error or a *SubscribeError; with any other
// error (no SUBACK arrived, or ctx ended first) they are nil.
func (c *Client) SubscribeGranted(ctx context.Context, subs ...Subscription) ([]codec.ReasonCode, error) {
	o, err := c.subscribeOp(subs)
	if err != nil {
		return nil, err
	}
	err = c.control(ctx, o, "subscribe")
	var se *SubscribeError
	if err != nil && !errors.As(err, &se) {
		return nil, err
	}
	if codes := o.granted.Load(); codes != nil {
		return *codes, err
	}
	return nil, err
}

// subscribeOp checks subs and makes the op that subscribes to them, for
// Subscribe and SubscribeRoute.
func (c *Client) subscribeOp(subs []Subscription) (*ctlOp, error) {
	if len(subs) == 0 {
		return nil, fmt.Errorf("%w: Subscribe needs at least one subscription", ErrInvalidMessage)
	}
	for _, s := range subs {
		if err := validateSubscription(s, c.cfg.version); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
		}
	}
	// Whatever the encoder would refuse (NoLocal on a shared subscription
	// [MQTT-3.8.3-4], a packet over 256 MiB) is refused here, not by the
	// writer after the call was accepted.
	if _, err := codec.Size(subscribePacket(1, subs), c.cfg.version); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	return &ctlOp{subs: append([]Subscription(nil), subs...)}, nil
}

// Unsubscribe removes the subscriptions to filters and waits for the
// broker's UNSUBACK. ctx behaves as in Subscribe.
func (c *Client) Unsubscribe(ctx context.Context, filters ...string) error {
	if len(filters) == 0 {
		return fmt.Errorf("%w: Unsubscribe needs at least one filter", ErrInvalidMessage)
	}
	for _, f := range filters {
		if err := codec.ValidateTopicFilter(f); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidMessage, err)
		}
	}
	if _, err := codec.Size(&codec.Unsubscribe{PacketID: 1, Filters: filters}, c.cfg.version); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	o := &ctlOp{filters: append([]string(nil), filters...)}
	return c.control(ctx, o, "unsubscribe")
}

// control hands a subscribe or unsubscribe to the session and waits.
func (c *Client) control(ctx context.Context, o *ctlOp, what string) error {
	_, err := c.controlAs(ctx, o, what, o)
	return err
}

// controlAs is control with the request that carries o to the session:
// o itself, or a *routeRequest. It also reports whether the session got
// req.
func (c *Client) controlAs(ctx context.Context, o *ctlOp, what string, req any) (handed bool, err error) {
	o.init(c, ctx, make(chan error, 1))
	if ctx.Err() != nil {
		return false, withdrawnError(ctx, what)
	}
	o.watch()
	o.armWatchers()
	select {
	case c.ctrl <- req:
		handed = true
	case <-c.done:
		o.finish(ErrClosed)
	}
	return handed, <-o.result
}

// Messages returns the channel of every inbound message that no Route
// takes (and that is no reply to Request). Receive from it promptly: a
// QoS 1/2 message is acknowledged once received (see Config.ManualAck),
// and QoS 0 messages beyond Config.MaxPending are dropped. It is closed
// after the client stops.
func (c *Client) Messages() <-chan Message { return c.messages }

// Events returns the channel of connection lifecycle events. The client
// never waits for it: when 8 events are unread the oldest is dropped, so
// an application that does not read it loses nothing but history; a
// Reconnecting event that finds 8 unread is dropped instead, so that fast
// retries never push out the ConnectionLost before them, and the failures
// nobody else hears of (StoredPublishFailed, ResubscribeFailed) are never
// dropped but merged into one of their kind. It is closed
// after the client stops. The channel is made by the first call: events
// before it wait for it under the same rules, so a client nobody asks
// for events does not carry a buffer of them.
func (c *Client) Events() <-chan Event {
	if ch := c.eventsReady.Load(); ch != nil {
		return *ch
	}
	c.eventsMu.Lock()
	defer c.eventsMu.Unlock()
	if c.events == nil {
		ch := make(chan Event, eventBuffer)
		for _, e := range c.unread {
			ch <- handOut(e)
		}
		c.unread = nil
		if c.eventsClosed {
			close(ch)
		}
		c.events = ch
		c.eventsReady.Store(&ch)
	}
	return c.events
}

// Done is closed once the client has stopped for good and every goroutine
// of it has exited.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err says why the client stopped: nil after Close or a clean Disconnect,
// an error wrapping ErrGaveUp and the last connection error when the
// reconnect strategy gave up, or the error of a Config.Store that failed
// to sync. It is nil while the client runs.
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close stops the client now: it sends DISCONNECT if it is connected (best
// effort: it gives the DISCONNECT and the broker's close of the connection
// at most 200 ms, or two of the link's round trips where they are longer;
// a connection whose CONNECT is out, its CONNACK awaited, gets as long to
// be accepted and then told DISCONNECT, so that the broker, which may hold
// the client connected already, publishes no Will),
// fails every unfinished publish and subscribe with ErrClosed
// (ErrInStore for a publish that is durably in Config.Store) and
// returns once every goroutine of the client has exited. Messages and
// Events are closed. Calling it again does nothing.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		c.wakeSession()
	})
	<-c.done
	return nil
}

// wakeSession makes the session loop take a turn, never blocking. The loop
// checks c.closing and c.supDone when woken (flags rather than channels
// and cases of its select: 0.4 KiB less per idle client); whoever sets one
// of them wakes it after.
func (c *Client) wakeSession() {
	select {
	case c.progress <- struct{}{}:
	default:
	}
}

// Disconnect stops the client gracefully: new publishes are refused, the
// queue and the in-flight publishes are given until ctx ends to finish,
// then DISCONNECT is sent and the client stops as Close does, once the
// broker has closed the connection (which it does when it has read the
// DISCONNECT, so that everything written before it arrived too), or after
// the longer of 1 s and four of the link's round trips, or when ctx ends.
// A connection still being set up when the client stops (its CONNECT
// out, its CONNACK awaited) gets as long, which ctx does not cut short,
// to be accepted and then told DISCONNECT: the broker, which may hold
// the client connected already, publishes no Will.
// It returns nil if everything finished, or an error wrapping ctx.Err()
// that says how much did not (those calls get ErrClosed). A call made
// while another Disconnect is in progress returns at once with an error
// saying so; wait on Done for the stop. On a client that has stopped
// already, or stops on its own meanwhile, it returns nil after Close, and
// otherwise ErrClosed wrapping why the client stopped (Err): the work
// unfinished then did not finish.
func (c *Client) Disconnect(ctx context.Context) error {
	req := &disconnectRequest{reply: make(chan error, 1)}
	select {
	case c.ctrl <- req:
	case <-c.done:
		return c.stoppedBefore()
	}
	select {
	case err := <-req.reply:
		if err == errDisconnecting {
			return err
		}
		// Everything finished and DISCONNECT goes out; the session then
		// waits for the broker to close the connection (see
		// session.awaitBrokerClose), which ctx may cut short.
		select {
		case <-c.done:
		case <-ctx.Done():
			c.Close()
		}
		return err
	case <-ctx.Done():
		c.Close()
		return fmt.Errorf("mqtt: disconnect: in-flight work did not finish: %w", context.Cause(ctx))
	case <-c.done:
		return c.stoppedBefore()
	}
}

// stoppedBefore is Disconnect's answer on a client that stopped before it
// could: nil if Close or Disconnect stopped it, or else ErrClosed with why
// it stopped (the strategy gave up, the store failed), as the calls
// unfinished then were told: they did not finish.
func (c *Client) stoppedBefore() error {
	if err := c.Err(); err != nil {
		return fmt.Errorf("%w: it stopped on its own before Disconnect: %w", ErrClosed, err)
	}
	return nil
}

// disconnectRequest starts a graceful Disconnect.
type disconnectRequest struct{ reply chan error }

// ack hands a manual acknowledgement to the session.
func (c *Client) ack(a *inboundAck) error {
	select {
	case c.ctrl <- ackRequest{a}:
		return nil
	case <-c.done:
		return ErrClosed
	}
}

// inboundAck identifies an inbound QoS 1/2 message for Message.Ack.
type inboundAck struct {
	client *Client
	id     uint16
	gen    uint64 // the session generation it arrived in
}

// ackRequest is a Message.Ack call.
type ackRequest struct{ a *inboundAck }

// newConn is a connection the supervisor hands to the session.
type newConn struct {
	cn *conn.Conn
	// presentUnproven: the CONNACK says Session Present, but an earlier
	// attempt's CONNECT may have reached the broker unanswered since the
	// last connection; a broker that had lost the session may have made
	// the one it now calls present (see conn.ConnectMayHaveArrived).
	presentUnproven bool
	// presentElsewhere: the CONNACK says Session Present, from another
	// server of Servers than the last connection's (a broker's redirect
	// counts as the server that redirected). Unless the two share their
	// sessions (a cluster), it kept what it had when the client left it,
	// and the client's session went on elsewhere since, anew if that
	// server had none: the broker may hold flows under identifiers the
	// client has finished with (see session.unknownSession).
	presentElsewhere bool
	// connected is the Connected event, and sessionLost whether a
	// SessionLost follows it, which the session emits as it takes the
	// connection (announce); it closes taken at the end of that turn.
	connected   Event
	sessionLost bool
	taken       chan struct{}
}

// announce tells the application of nc's connection: the client is up,
// counted, and Connected (and SessionLost) are emitted. Up before the
// event says so: a program that saw Connected finds WaitConnected
// returning at once.
func (c *Client) announce(nc newConn) {
	c.setUp(true)
	c.stats.up()
	c.emit(nc.connected)
	if nc.sessionLost {
		c.emit(Event{Kind: SessionLost, Server: nc.connected.Server})
	}
}

// lastError is the latest connection failure, for the errors of Dial and
// WaitConnected.
func (c *Client) lastError() error {
	c.lastErrMu.Lock()
	defer c.lastErrMu.Unlock()
	return c.lastErr
}

// supervise runs the connection supervisor until it gives up or the
// session stops it.
func (c *Client) supervise() {
	err := supervisor.Run(context.Background(), supervisor.Config{
		Start:       c.startRun,
		Backoff:     c.cfg.Backoff,
		StableAfter: c.cfg.StableAfter,
		OnEvent:     c.onSupervisorEvent,
		Stop:        c.stopRun,
	})
	if errors.Is(err, supervisor.ErrStopped) {
		err = nil // stopped by the session
	}
	c.supErr = err
	c.supDone.Store(true)
	c.wakeSession()
}

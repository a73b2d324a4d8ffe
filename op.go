package mqtt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
)

// The life of an operation's packet: queued (withdrawable), claimed by a
// writer (sent, whatever happens next), or withdrawn by its ctx.
const (
	opQueued int32 = iota
	opClaimed
	opWithdrawn
)

// op is one publish, subscribe or unsubscribe call on its way through the
// session. Its result is delivered exactly once: finish is guarded by an
// atomic flag because three goroutines may end an op (the session, a
// connection's writer for QoS 0, and the caller when the client stopped
// before accepting it).
type op struct {
	c      *Client
	ctx    context.Context
	result chan error // 1-buffered; receives exactly one value

	state    atomic.Int32 // opQueued, opClaimed, opWithdrawn
	refs     atomic.Int32 // a publish's references; see pubOp.release
	finished atomic.Bool
	// stopCancel stops the ctx watcher (nil if ctx can't end) and
	// stopExpiry a publish's expiry timer (nil if none). The caller's
	// goroutine sets them while the watcher or the timer may already have
	// fired and the session be finishing the op: armed, stored after them,
	// says they may be read (see finish).
	armed atomic.Bool
	// reading is the connection whose socket the caller may be reading
	// for the answer (a synchronous Publish, see Client.awaitOn): when ctx
	// ends, the watcher interrupts that read. Set before the session
	// takes the op.
	reading atomic.Pointer[conn.Conn]
	// quiet: finish stopped the watchers before either fired (written
	// by finish, which for a publish the session took runs on the
	// session's turn; read there after it, by session.letGo).
	quiet      bool
	stopCancel func() bool
	stopExpiry func() bool
	storeKey   uint64 // its record in Config.Store; 0: not stored (session goroutine)
	size       int    // topic and payload bytes, for admission

	// finishOnWrite: a QoS 0 publish is done once its frame is written.
	finishOnWrite bool
	// holdsRoom: a publish holds room in the client's admission (one of
	// Config.MaxQueued, and size of Config.MaxQueuedBytes) until done.
	holdsRoom bool
	// qos is the publish's QoS for Stats; -1 for subscribe/unsubscribe.
	qos int8
	// restored: a publish taken from Config.Store when the client
	// started, whose result no caller receives (see finish).
	restored bool

	// Owned by the session goroutine.
	id       uint16 // packet identifier while in flight
	inFlight bool   // has a flight (and so a packet identifier)
	// recyclable: a publish whose record may be used again once it is
	// acknowledged (see pubOp.release); set by its caller before the
	// session takes it, then cleared by the session when something may
	// still look at it after its result.
	recyclable bool
}

func (o *op) init(c *Client, ctx context.Context, result chan error) {
	o.c = c
	o.ctx = ctx
	o.result = result
	o.qos = -1
}

// watch arranges for the session to hear when ctx ends, so it can withdraw
// the op or declare its outcome unknown.
func (o *op) watch() {
	if o.ctx.Done() == nil {
		return // context.Background and friends never end
	}
	o.stopCancel = context.AfterFunc(o.ctx, func() {
		if cn := o.reading.Load(); cn != nil {
			cn.Interrupt()
		}
		select {
		case o.c.ctrl <- cancelRequest{o}:
		case <-o.c.done:
		}
	})
}

// expireAfter arranges for the session to hear when a publish's MQTT 5
// Message Expiry Interval has run out, at o.expires (at once if it has).
func (o *pubOp) expireAfter() {
	c := o.c
	o.stopExpiry = time.AfterFunc(max(time.Until(o.expires), 0), func() {
		select {
		case c.ctrl <- expireRequest{o}:
		case <-c.done:
		}
	}).Stop
}

// Claim implements conn.Tracker: the writer may send the packet unless it
// was withdrawn. A packet re-sent after a reconnect is claimed again.
func (o *op) Claim() bool {
	return o.state.CompareAndSwap(opQueued, opClaimed) || o.state.Load() == opClaimed
}

// Written implements conn.Tracker: a QoS 0 publish ends here.
func (o *op) Written(err error) {
	if errors.Is(err, conn.ErrUnencodable) {
		// Nothing was written. Validation at the API's edge makes this
		// unreachable; should it happen, the result says so truthfully,
		// and a QoS 1/2 flight is ended by the session.
		err = fmt.Errorf("%w: %w", ErrInvalidMessage, err)
		if !o.finishOnWrite {
			go o.unsendable(err)
			return
		}
		o.finish(err)
		return
	}
	if !o.finishOnWrite {
		return
	}
	if err != nil {
		err = fmt.Errorf("%w: the connection failed while a QoS 0 message was being written: %w", ErrOutcomeUnknown, err)
	}
	o.finish(err)
}

// unsendable tells the session that the writer could not encode o's
// packet. Its own function, so that Written, on every write's path, does
// not move err to the heap for a goroutine it almost never starts.
func (o *op) unsendable(err error) {
	select {
	case o.c.ctrl <- unsendableRequest{o: o, err: err}:
	case <-o.c.done:
	}
}

// armWatchers records that stopCancel and stopExpiry are set, so that
// finish may read them from now on. The caller's goroutine calls it after
// watch and expireAfter and before handing the op to the session. If a
// watcher fired in between and the op already has its result, the other
// watcher is stopped here.
func (o *op) armWatchers() {
	o.armed.Store(true)
	if o.done() {
		o.stopWatchers()
	}
}

// finish delivers the op's one result and releases what it holds, in this
// order: the watchers stop, the outcome is counted in Stats, the room in
// the queue is released, the result is sent, and a waiting Disconnect or
// Flush is told. A caller that has seen the result can therefore count on
// its room being free (a strictly sequential publisher never finds the
// queue full because of its own previous message) and on Stats including
// it.
func (o *op) finish(err error) {
	if !o.finished.CompareAndSwap(false, true) {
		return
	}
	// Not armed yet: the caller is still between registering the
	// watchers and storing their stop functions, so one of them fired
	// and has nothing left to stop; the other is stopped by armWatchers.
	if o.armed.Load() {
		o.quiet = o.stopWatchers()
	}
	if o.qos >= 0 {
		o.c.stats.published(o.qos, err)
	}
	if o.holdsRoom {
		o.c.adm.release(1, o.size)
	}
	if o.restored && err != nil && !errors.Is(err, ErrInStore) && !errors.Is(err, ErrClosed) {
		// Its caller was told ErrInStore by an earlier client: nobody
		// reads this result, so the application hears of it here.
		o.c.cfg.Logger.Warn("mqtt: a publish restored from the store failed", "err", err)
		o.c.emit(Event{Kind: StoredPublishFailed, Err: err, Count: 1})
	}
	o.result <- err
	if o.c.wantProgress.Load() {
		o.c.wakeSession()
	}
}

// stopWatchers stops the ctx watcher and the expiry timer, if any. It
// reports whether neither had fired: then nothing of theirs will ever
// look at the op again.
func (o *op) stopWatchers() (quiet bool) {
	quiet = true
	if o.stopCancel != nil && !o.stopCancel() {
		quiet = false
	}
	if o.stopExpiry != nil && !o.stopExpiry() {
		quiet = false
	}
	return quiet
}

// done reports whether the op already has its result.
func (o *op) done() bool { return o.finished.Load() }

// withdrawn is the result of an op whose ctx ended before it was sent.
func withdrawnError(ctx context.Context, what string) error {
	return fmt.Errorf("%w: %s: %w", ErrWithdrawn, what, context.Cause(ctx))
}

// pubOp is one Publish call. The flight and the PUBREL live inside it so
// that a QoS 1/2 publish costs no allocations beyond the op itself.
type pubOp struct {
	op
	pkt    codec.Publish
	policy QueuePolicy  // what to do when the queue is full; never 0
	fl     flight       // its flight while it has a packet identifier
	rel    codec.Pubrel // QoS 2: set once on the first PUBREC, then only read

	// MQTT 5 Message Expiry Interval: the message expires at expires
	// (zero: never).
	expires   time.Time
	needsRoom bool // DropOldest/LatestPerTopic arrived without room
	// claimedNow: the last Claim took the publish from queued to claimed
	// (false: it was claimed already, on an earlier connection). Written
	// by Claim and read by Unclaim, in one flush of one writer.
	claimedNow bool
	// refusals counts the connections the broker ended while this
	// publish, sent alone, waited for its acknowledgement (refused.go).
	refusals uint8
	// stored, with Config.Store, is closed once the message is durable.
	stored chan struct{}
}

// pubOps keeps the records of acknowledged publishes for the next ones:
// a pipelined publisher otherwise makes one per message (288 bytes; one
// more such allocation per message cost 10-15% of the pipelined rate
// against a broker that acknowledges at once).
var pubOps = sync.Pool{New: func() any { return new(pubOp) }}

// newPubOp returns an empty publish record holding its session's
// reference (see release).
func newPubOp() *pubOp {
	o := pubOps.Get().(*pubOp)
	o.refs.Store(1)
	return o
}

// A publish's record is used again only once nobody can look at it. Who
// may is counted in refs: the session, from the start, and every frame of
// it (PUBLISH, PUBREL) queued on a connection, until the writer has
// written it. The session lets its reference go only for a recyclable
// publish (see op.recyclable), at its acknowledgement, after its last use
// of it: so a record whose frame a writer still holds is reused only
// after the writer's Written, and one a frame was queued for that no
// writer wrote (a connection that died with it queued), never; the
// collector takes it as before. Its caller stops looking at it once it
// has handed it over (Client.publish), and gets its result from the
// channel, which is not recycled.

// hold takes a reference for a frame of o about to be queued.
func (o *pubOp) hold() { o.refs.Add(1) }

// release lets a reference go; the last one puts o back in pubOps.
func (o *pubOp) release() {
	if o.refs.Add(-1) == 0 {
		*o = pubOp{}
		pubOps.Put(o)
	}
}

// Written implements conn.Tracker for a frame of the PUBLISH (see
// op.Written), and lets the frame's reference go.
func (o *pubOp) Written(err error) {
	o.op.Written(err)
	if errors.Is(err, conn.ErrUnencodable) {
		return // the session hears of it later, through o: kept
	}
	o.release()
}

// Claim implements conn.Tracker (see op.Claim), noting for Unclaim
// whether this claim is the first.
func (o *pubOp) Claim() bool {
	o.claimedNow = o.state.CompareAndSwap(opQueued, opClaimed)
	return o.claimedNow || o.state.Load() == opClaimed
}

// Unclaim implements conn.Unclaimer: the connection failed before the
// write that was to carry the PUBLISH began. A publish first claimed by
// that write is queued again, never sent: its expiry and ctx may still
// withdraw it, it goes out again without DUP, and a QoS 0 one is sent on
// the next connection instead of ending "outcome unknown". One claimed
// on an earlier connection stays claimed: it may have been sent there.
func (o *pubOp) Unclaim() bool {
	return o.claimedNow && o.state.CompareAndSwap(opClaimed, opQueued)
}

// pubrelTracker is the tracker of a publish's PUBREL frame: it is always
// sent (nothing withdraws a PUBREL), and it holds a reference to the
// publish's record, where the PUBREL lives, until it is written.
type pubrelTracker pubOp

// Claim implements conn.Tracker.
func (r *pubrelTracker) Claim() bool { return true }

// Written implements conn.Tracker.
func (r *pubrelTracker) Written(error) { (*pubOp)(r).release() }

// ctlOp is one Subscribe or Unsubscribe call.
type ctlOp struct {
	op
	subs    []Subscription // Subscribe
	filters []string       // Unsubscribe
	subID   uint32         // SubscribeRoute: the route's Subscription Identifier (session goroutine)
	// granted is the SUBACK's reason codes, set by the session before it
	// finishes the op with them (SubscribeGranted reads them after).
	granted atomic.Pointer[[]codec.ReasonCode]
}

// cancelRequest tells the session that an op's ctx ended.
type cancelRequest struct{ o *op }

// expireRequest tells the session that a publish's expiry interval ran out.
type expireRequest struct{ o *pubOp }

// unsendableRequest tells the session that the writer could not encode an
// op's packet: its flight ends with err.
type unsendableRequest struct {
	o   *op
	err error
}

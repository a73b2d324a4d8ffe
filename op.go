package mqtt

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/robustmqtt/mqtt/codec"
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

	state      atomic.Int32 // opQueued, opClaimed, opWithdrawn
	finished   atomic.Bool
	stopCancel func() bool // stops the ctx watcher; nil if ctx can't end
	stopExpiry func() bool // stops a publish's expiry timer; nil if none
	storeKey   uint64      // its record in Config.Store; 0: not stored (session goroutine)

	// finishOnWrite: a QoS 0 publish is done once its frame is written.
	finishOnWrite bool
	// holdsRoom: a publish holds room in the client's admission (one of
	// Config.MaxQueued, and size of Config.MaxQueuedBytes) until done.
	holdsRoom bool
	size      int // topic and payload bytes, for admission
	// qos is the publish's QoS for Stats; -1 for subscribe/unsubscribe.
	qos int8

	// Owned by the session goroutine.
	id       uint16 // packet identifier while in flight
	inFlight bool   // has a flight (and so a packet identifier)
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
		select {
		case o.c.ctrl <- cancelRequest{o}:
		case <-o.c.done:
		}
	})
}

// expireAfter arranges for the session to hear when a publish's MQTT 5
// Message Expiry Interval d has run out.
func (o *pubOp) expireAfter(d time.Duration) {
	o.expires = time.Now().Add(d)
	c := o.c
	o.stopExpiry = time.AfterFunc(d, func() {
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
	if !o.finishOnWrite {
		return
	}
	if err != nil {
		err = fmt.Errorf("%w: the connection failed while a QoS 0 message was being written: %w", ErrOutcomeUnknown, err)
	}
	o.finish(err)
}

// finish delivers the op's one result and releases what it holds.
func (o *op) finish(err error) {
	if !o.finished.CompareAndSwap(false, true) {
		return
	}
	if o.stopCancel != nil {
		o.stopCancel()
	}
	if o.stopExpiry != nil {
		o.stopExpiry()
	}
	o.result <- err
	if o.qos >= 0 {
		o.c.stats.published(o.qos, err)
	}
	if o.holdsRoom {
		o.c.adm.release(1, o.size)
	}
	select {
	case o.c.progress <- struct{}{}:
	default:
	}
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
	// stored, with Config.Store, is closed once the message is durable.
	stored chan struct{}
}

// ctlOp is one Subscribe or Unsubscribe call.
type ctlOp struct {
	op
	subs    []Subscription // Subscribe
	filters []string       // Unsubscribe
}

// cancelRequest tells the session that an op's ctx ended.
type cancelRequest struct{ o *op }

// expireRequest tells the session that a publish's expiry interval ran out.
type expireRequest struct{ o *pubOp }

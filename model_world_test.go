package mqtt_test

// The model test's world (see model_test.go): the history being played,
// the client instances of the application, and their life.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing/synctest"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/codec"
)

// world is one history: the generator, the application model (client
// instances and their operations), the broker, and what each has seen.
type world struct {
	// unsent: tags of PUBLISHes in a client's write that failed (the
	// broker had closed its end): the client counts them as maybe sent.
	unsentMu sync.Mutex
	unsent   map[string]bool
	// maybeQoS2: by packet identifier, the last QoS 2 message a client
	// may have sent under it without the broker reading it: its PUBLISH
	// was in a write that failed, or a client found it in the store as
	// sent (recorded before the write). Under unsentMu.
	maybeQoS2 map[uint16]string

	seed    uint64
	steps   int
	rng     *rand.Rand // the generator: test goroutine only
	rngDial *rand.Rand // the broker's choices at dial time: under broker.mu
	d       dims
	step    int
	start   time.Time
	log     []string
	fail    string
	failAt  int

	b     *broker
	insts []*instance
	cur   *instance // the client instance the application uses now
	cid   int       // ClientID generation
	store *modelStore

	msgs        map[string]*msgRec // outbound messages by tag
	inMsgs      map[string]*inMsg  // the broker's messages by tag
	ops         []*opRec
	open        []*opRec // operations whose result is not checked yet
	ctlByFilter map[string]*ctlRec
	subSeen     map[string]bool // filters the broker got a SUBSCRIBE for
	unsubSeen   map[string]bool
	subAcked    map[string][]codec.ReasonCode
	unsubAcked  map[string][]codec.ReasonCode
	subscribed  []string // filters subscribed (granted) so far
	cancels     []*opRec // operations with a ctx the generator may cancel
	nextOut     int
	nextIn      int
	nextOp      int
	abort       chan struct{}
	maxQoS      codec.QoS // the lowest Maximum QoS any CONNACK announced to the current instance (ErrInvalidMessage)
	firstLim    *limits
	// storedFailed counts StoredPublishFailed events by the topic they name.
	storedFailed map[string]int
}

// msgRec is one message the application published.
type msgRec struct {
	tag       string
	topic     string
	payload   []byte
	qos       codec.QoS
	retain    bool
	expiry    uint32
	policy    mqtt.QueuePolicy
	op        *opRec
	seen      bool               // the broker read its PUBLISH
	neverSent bool               // its result promised that it never will be
	acks      []codec.ReasonCode // PUBACK / PUBREC codes the broker sent for it
	comps     int                // PUBCOMPs the broker sent for it
	pubacked  bool               // the broker answered it with PUBACK (a QoS 2 one too, with downgrade)
	// poison: the broker cuts the connection whenever it reads this
	// message; cuts counts how often it did, and refused is set once its
	// publish ended with ErrRefused.
	poison, refused bool
	cuts            int
	// sends are the connections the broker read its PUBLISH on, and
	// when (QoS 1/2).
	sends []sendRec
	// newIn lists the broker sessions that read its QoS 2 PUBLISH as a
	// new message: a broker that delivers such a message on PUBLISH
	// (EMQX, mochi-mqtt), not on PUBREL, delivered it in each of them.
	newIn []int
}

// sendRec is one PUBLISH of a message the broker read.
type sendRec struct {
	bc *bconn
	at time.Time
}

// endedRightAfter reports whether the broker ended each of the last n
// connections that carried m within d of reading m on it: what the client
// takes for a refusal (refused.go), here by the coincidence of the
// broker's faults.
func (m *msgRec) endedRightAfter(n int, d time.Duration) bool { return endedRightAfter(m.sends, n, d) }

// endedRightAfter reports whether the broker ended each of the last n
// connections in sends within d of reading what they carried.
func endedRightAfter(sends []sendRec, n int, d time.Duration) bool {
	if len(sends) < n {
		return false
	}
	for _, s := range sends[len(sends)-n:] {
		if s.bc.brokerEnd.IsZero() || s.bc.brokerEnd.Sub(s.at) > d {
			return false
		}
	}
	return true
}

// ackedOnce reports whether the broker acknowledged the message (PUBACK
// or PUBCOMP with a success code) at least once.
func (m *msgRec) ackedOnce() bool {
	if m.comps > 0 {
		return true
	}
	return (m.qos == 1 || m.pubacked) && slices.ContainsFunc(m.acks, func(c codec.ReasonCode) bool { return c < 0x80 })
}

// inMsg is one message the broker published.
type inMsg struct {
	tag, topic, payload string
	qos                 codec.QoS
	retain              bool
	delivered           map[int]int // client instance -> deliveries
	pubrecd             bool        // the broker got PUBREC for it
	appAcked            bool        // the application took it (automatic acks) or acknowledged it
	unrecorded          bool        // ... but when its client stopped, the store had no record of it
	excused             bool        // ... because the store's sync had failed
}

// ctlRec is one Subscribe or Unsubscribe, by its own filter.
type ctlRec struct {
	op        *opRec
	neverSent bool
	// poison: a SUBSCRIBE of this filter makes the broker end the
	// connection (as AWS IoT Core does for a filter the client may not
	// use); cuts counts how often it did, refused is set once the call
	// ended with ErrRefused, and sends are the connections the broker
	// read its SUBSCRIBE or UNSUBSCRIBE on, and when.
	poison, refused bool
	cuts            int
	sends           []sendRec
}

// instance is one Client: one process of the application.
type instance struct {
	w          *world
	n          int
	ver        byte
	cfg        mqtt.Config
	c          *mqtt.Client
	dialRes    chan dialResult
	dialCancel context.CancelFunc
	crashed    atomic.Bool
	closing    bool // Close, Disconnect or a crash began: ErrClosed is a fair result
	stopped    bool // it has stopped for good, and the model knows
	disconnect *opRec
	unacked    []mqtt.Message
	slow       bool
}

type dialResult struct {
	c   *mqtt.Client
	err error
}

// opRec is one call of the application.
type opRec struct {
	n       int
	kind    string // pub, sub, unsub, flush, disconnect
	inst    *instance
	msg     *msgRec
	filters []string
	own     string // sub/unsub: its own filter
	ctx     context.Context
	cancel  context.CancelFunc
	ctxDesc string
	at      time.Time
	step    int
	before  []*opRec // flush: the publishes made before it
	sessN   int      // the broker's session when the call was made
	sync    bool     // Publish, not PublishAsync

	mu       sync.Mutex // shared with the goroutine that makes the call
	returned bool
	ch       <-chan error
	done     bool
	err      error
	resAt    time.Time
	// afterCrash: the result came once its client had begun to crash,
	// from the Close that stands for the kill: no application sees it,
	// and the store the next client finds predates it.
	afterCrash bool

	checked bool
}

func (o *opRec) String() string {
	switch o.kind {
	case "pub":
		return fmt.Sprintf("op%d publish %s", o.n, o.msg.tag)
	default:
		return fmt.Sprintf("op%d %s %v", o.n, o.kind, o.filters)
	}
}

func newWorld(seed uint64, steps int, en map[string]bool) *world {
	w := &world{
		seed:         seed,
		steps:        steps,
		rng:          rand.New(rand.NewPCG(seed, 0)),
		rngDial:      rand.New(rand.NewPCG(seed, 2)),
		d:            profile(seed, en),
		start:        time.Now(),
		msgs:         map[string]*msgRec{},
		inMsgs:       map[string]*inMsg{},
		ctlByFilter:  map[string]*ctlRec{},
		subSeen:      map[string]bool{},
		unsubSeen:    map[string]bool{},
		subAcked:     map[string][]codec.ReasonCode{},
		unsubAcked:   map[string][]codec.ReasonCode{},
		abort:        make(chan struct{}),
		storedFailed: map[string]int{},
	}
	w.b = &broker{w: w}
	if w.d["store"] {
		w.store = newModelStore(nil)
	}
	return w
}

func (w *world) result() result {
	r := result{seed: w.seed, steps: w.steps, ran: w.step, fail: w.fail, failStep: w.failAt, log: w.log, d: w.d, ops: len(w.ops), conns: w.b.n}
	return r
}

func (w *world) logf(format string, args ...any) {
	w.log = append(w.log, fmt.Sprintf("%7s ", time.Since(w.start).Truncate(time.Millisecond))+fmt.Sprintf(format, args...))
}

// violate records a broken promise; the history ends at the end of the step.
func (w *world) violate(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	w.logf("VIOLATION: %s", msg)
	if w.fail == "" {
		w.fail, w.failAt = msg, w.step
	}
}

// run plays the history: steps random steps, then a drain with a friendly
// broker, then the end.
func (w *world) run() {
	w.logf("seed %d, %d steps, dims %s", w.seed, w.steps, w.d)
	w.newInstance()
	for w.step = 1; w.step <= w.steps && w.fail == ""; w.step++ {
		w.settle()
		if w.fail != "" {
			break
		}
		w.act()
	}
	if w.fail == "" {
		w.drain()
	}
	w.teardown()
}

// settle lets the client run until every goroutine is blocked, then takes
// in and checks what happened.
func (w *world) settle() {
	synctest.Wait()
	w.events()
	// The broker first: results are checked against what it read, and
	// taking in a stopped client checks its results.
	w.b.process()
	w.pollInstances()
	w.collect()
}

// events takes the clients' events: the broker keeps the protocol, so no
// connection may end with a *ProtocolError.
func (w *world) events() {
	for _, inst := range w.insts {
		if inst.c == nil {
			continue
		}
		for more := true; more; {
			select {
			case e, ok := <-inst.c.Events():
				if !ok {
					more = false
					break
				}
				w.logf("  client %d event: %v", inst.n, e)
				for _, err := range mqtt.StoredFailures(e) {
					for _, topic := range []string{"t/0", "t/1", "t/2", "poison"} {
						if strings.Contains(err.Error(), topic) {
							w.storedFailed[topic]++
						}
					}
				}
				w.checkResubscribeFailed(inst, e)
				var pe *mqtt.ProtocolError
				if errors.As(e.Err, &pe) && !inst.crashed.Load() {
					w.violate("client %d: %v: a protocol error from a broker that kept the protocol", inst.n, e)
				}
			default:
				more = false
			}
		}
	}
}

// resubscribeFailures counts the filters ResubscribeFailed events named, in
// every history of a run (reported by the long run).
var resubscribeFailures atomic.Int64

// checkResubscribeFailed checks a ResubscribeFailed event: it names
// filters, and each one it says the broker refused in a SUBACK is one the
// broker did refuse so.
func (w *world) checkResubscribeFailed(inst *instance, e mqtt.Event) {
	if e.Kind != mqtt.ResubscribeFailed {
		return
	}
	filters := mqtt.FailedFilters(e)
	resubscribeFailures.Add(int64(len(filters)))
	if len(filters) == 0 || e.Err == nil {
		w.violate("client %d: %v names no filter or no error", inst.n, e)
		return
	}
	var se *mqtt.SubscribeError
	if !errors.As(e.Err, &se) {
		return
	}
	for f := range se.Refused {
		if !slices.Contains(filters, f) {
			w.violate("client %d: %v: its error refuses %s, which FailedFilters does not name", inst.n, e, f)
		}
		if !slices.ContainsFunc(w.subAcked[f], codec.ReasonCode.IsError) {
			w.violate("client %d: %v: the broker never refused %s in a SUBACK (it answered %v)", inst.n, e, f, w.subAcked[f])
		}
	}
}

// --- client instances ---------------------------------------------------

func (w *world) newInstance() {
	ver := codec.V311
	if w.d["v5"] {
		ver = codec.V5
	}
	inst := &instance{w: w, n: len(w.insts) + 1, ver: ver, dialRes: make(chan dialResult, 1)}
	if w.cur == nil || (w.store == nil && !w.d["reuseid"]) {
		w.cid++
		w.b.sess = nil // a new ClientID: the broker has no session for it
	}
	inst.cfg = mqtt.Config{
		Servers:     []string{"tcp://model:1883"},
		ClientID:    fmt.Sprint("model-", w.cid),
		Version:     ver,
		CleanStart:  w.d["cleanstart"],
		KeepAlive:   []time.Duration{0, 5 * time.Second, 60 * time.Second}[w.rng.IntN(3)],
		Backoff:     backoff.Constant([]time.Duration{10 * time.Millisecond, 500 * time.Millisecond, 3 * time.Second}[w.rng.IntN(3)]),
		MaxInflight: 1 + w.rng.IntN(4),
		MaxPending:  1 + w.rng.IntN(4),
		ManualAck:   w.d["manualack"],
		Dial: func(ctx context.Context, server string) (net.Conn, error) {
			return w.b.dial(inst)
		},
	}
	if w.d["aliases"] {
		inst.cfg.TopicAliasMaximum = uint16(w.rng.IntN(3))
	}
	if w.d["policies"] {
		inst.cfg.MaxQueued = 1 + w.rng.IntN(6)
		inst.cfg.QueuePolicy = mqtt.QueuePolicy(1 + w.rng.IntN(4))
	}
	if w.store != nil && w.store.failed.Load() {
		// A store whose sync failed is not used again (a store.File
		// refuses to be): the application opens it anew and finds what
		// was synced.
		w.store = newModelStore(w.store.durable())
	}
	if w.store != nil {
		inst.cfg.Store = w.store
		w.logf("client %d: the store holds %s", inst.n, w.store.describe())
		for id, tag := range w.store.sentQoS2() {
			w.noteMaybeQoS2(id, tag)
		}
	}
	inst.slow = w.d["slowreader"] && w.rng.IntN(2) == 0
	w.insts = append(w.insts, inst)
	w.cur = inst
	w.maxQoS = 2
	w.logf("client %d: Dial %s, ClientID %s, MaxInflight %d, MaxQueued %d, policy %v, MaxPending %d, ManualAck %v, keepalive %v, store %v",
		inst.n, map[byte]string{4: "v3.1.1", 5: "v5"}[ver], inst.cfg.ClientID, inst.cfg.MaxInflight, inst.cfg.MaxQueued, inst.cfg.QueuePolicy,
		inst.cfg.MaxPending, inst.cfg.ManualAck, inst.cfg.KeepAlive, w.store != nil)
	ctx, cancel := context.WithCancel(context.Background())
	inst.dialCancel = cancel
	cfg := inst.cfg
	go func() {
		c, err := mqtt.Dial(ctx, cfg)
		inst.dialRes <- dialResult{c, err}
	}()
}

// pollInstances takes in the Dial results.
func (w *world) pollInstances() {
	for _, inst := range w.insts {
		if inst.c != nil && !inst.stopped && !inst.closing {
			select {
			case <-inst.c.Done():
				w.stoppedByItself(inst, inst.c.Err())
			default:
			}
			continue
		}
		if inst.c != nil || inst.stopped {
			continue
		}
		select {
		case r := <-inst.dialRes:
			if r.err != nil {
				if !inst.closing {
					w.stoppedByItself(inst, r.err)
				}
				inst.stopped = true
				continue
			}
			inst.c = r.c
			w.logf("client %d: Dial returned", inst.n)
			if inst.closing {
				// Crashed while dialing: this process is gone.
				w.bounded(fmt.Sprintf("client %d: Close", inst.n), inst.c.Close)
				inst.stopped = true
			}
		default:
		}
	}
}

// errModelSync is the error of a Sync the generator made fail.
var errModelSync = errors.New("model store: sync failed (injected)")

// stoppedByItself handles a client that stopped without Close or
// Disconnect: only a failed store sync may do that (the reconnect strategy
// never gives up); the next client starts from what the store synced.
func (w *world) stoppedByItself(inst *instance, err error) {
	w.logf("client %d stopped by itself: %v", inst.n, err)
	inst.closing = true
	if w.store == nil || !w.store.failed.Load() || !errors.Is(err, errModelSync) {
		w.violate("client %d stopped by itself: %v", inst.n, err)
		return
	}
	if inst.c != nil {
		w.stopped(inst)
	}
	inst.stopped = true
	durable := w.store.durable()
	w.noteStore(inst, durable)
	w.store = newModelStore(durable)
	if inst == w.cur && w.fail == "" {
		w.newInstance()
	}
}

// connected reports whether inst has a connection up, as the broker sees it.
func (w *world) connected(inst *instance) bool {
	return w.b.live(w.b.cur) && w.b.cur.inst == inst
}

// live is the instance the application can call, or nil.
func (w *world) live() *instance {
	if i := w.cur; i != nil && i.c != nil && !i.closing {
		return i
	}
	return nil
}

// bounded calls f, failing the history if it does not return within an
// hour of fake time (which costs nothing when it does return).
func (w *world) bounded(what string, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Hour):
		w.violate("%s did not return within an hour", what)
		return nil
	}
}

// close stops inst with Close.
func (w *world) closeInstance(inst *instance) {
	inst.closing = true
	w.logf("client %d: Close", inst.n)
	w.bounded(fmt.Sprintf("client %d: Close", inst.n), inst.c.Close)
	w.stopped(inst)
}

// stopped notes that inst has stopped: Messages is closed and every call
// has its result.
func (w *world) stopped(inst *instance) {
	inst.stopped = true
	synctest.Wait()
	if w.store != nil && !inst.crashed.Load() {
		w.noteStore(inst, w.store.durable())
	}
	select {
	case _, ok := <-inst.c.Messages():
		if ok {
			w.violate("client %d: Messages delivers after the client stopped", inst.n)
		}
	default:
		w.violate("client %d: Messages is not closed after the client stopped", inst.n)
	}
	w.collect()
	for _, o := range w.ops {
		if o.inst != inst {
			continue
		}
		o.mu.Lock()
		done := o.done
		o.mu.Unlock()
		if !done {
			w.violate("client %d stopped, and %s has no result", inst.n, o)
		}
	}
}

// inboundRecord is the key under which the client stores an inbound QoS
// 2 packet identifier (session_store.go's inboundKey).
const inboundRecord = 1 << 63

// noteStore notes, for every QoS 2 message the application of inst took
// (or acknowledged) and the broker still waits to hear about, whether the
// store that the next client starts from records it (F3).
func (w *world) noteStore(inst *instance, durable map[uint64][]byte) {
	if w.store == nil || w.b.sess == nil {
		return
	}
	for _, f := range w.b.sess.out {
		im := w.inMsgs[f.tag]
		if f.qos != 2 || f.stage != outSent || im.delivered[inst.n] == 0 || !im.appAcked {
			continue
		}
		if _, ok := durable[inboundRecord|uint64(f.id)]; !ok {
			im.unrecorded = true
			im.excused = im.excused || w.store.failed.Load()
			w.logf("  the store does not record %s (id %d), which the application took (the store failed: %v)", f.tag, f.id, w.store.failed.Load())
		}
	}
}

// crash kills inst: only what its store synced survives, nothing it does
// from now on reaches the broker, and the next instance starts from the
// synced state.
func (w *world) crash(inst *instance) {
	// Crashed first: a result given before (not afterCrash) had what it
	// needed synced before the snapshot.
	inst.crashed.Store(true)
	durable := w.store.durable()
	w.logf("client %d: CRASH (%d records synced)", inst.n, len(durable))
	inst.closing = true
	for _, bc := range w.b.conns {
		if bc.inst == inst && !bc.dead {
			w.b.cut(bc)
		}
	}
	inst.dialCancel()
	if inst.c != nil {
		w.bounded(fmt.Sprintf("client %d: Close after the crash", inst.n), inst.c.Close)
		w.stopped(inst)
	}
	w.noteStore(inst, durable)
	w.store = newModelStore(durable)
}

package mqtt_test

// The model test's checks (see model_test.go): every result against what
// the broker saw, the end of a history, and a store that crashes.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing/synctest"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
)

// --- checking results -----------------------------------------------------

// collect checks every operation that has its result since the last call.
func (w *world) collect() {
	for _, o := range w.open {
		if o.checked {
			continue
		}
		o.mu.Lock()
		done, err, at := o.done, o.err, o.resAt
		o.mu.Unlock()
		if !done {
			continue
		}
		o.checked = true
		w.logf("  %s -> %v (at %s)", o, errText(err), at.Sub(w.start).Truncate(time.Millisecond))
		switch o.kind {
		case "pub":
			w.checkPublish(o, err, at)
		case "sub", "unsub":
			w.checkControl(o, err)
		case "flush":
			w.checkFlush(o, err)
		case "disconnect":
			w.checkDisconnect(o, err)
		}
	}
	w.open = slices.DeleteFunc(w.open, func(o *opRec) bool { return o.checked })
}

func errText(err error) string {
	if err == nil {
		return "nil"
	}
	s := err.Error()
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}

// ctxEnded reports whether o's ctx has ended and err wraps its error.
func ctxEnded(o *opRec, err error) bool {
	return o.ctx.Err() != nil && errors.Is(err, o.ctx.Err())
}

func (w *world) checkPublish(o *opRec, err error, at time.Time) {
	m := o.msg
	inst := o.inst
	neverSent := func(why string) {
		m.neverSent = true
		if m.seen {
			w.violate("%s ended %s (%v), but the broker read its PUBLISH", o, why, err)
		}
	}
	var pe *mqtt.PublishError
	switch {
	case err == nil:
		switch m.qos {
		case 0:
			if !m.seen {
				w.violate("%s (QoS 0) returned nil, but the broker never read it", o)
			}
		case 1:
			if !slices.Contains(m.acks, codec.Success) && !slices.Contains(m.acks, codec.NoMatchingSubscribers) {
				w.violate("%s (QoS 1) returned nil, but the broker sent no successful PUBACK for it (acks %v)", o, m.acks)
			}
		case 2:
			if !slices.Contains(m.acks, codec.Success) && !slices.Contains(m.acks, codec.NoMatchingSubscribers) {
				w.violate("%s (QoS 2) returned nil, but the broker sent no successful PUBREC for it (acks %v)", o, m.acks)
			} else if m.comps == 0 && !m.pubacked { // a PUBACK ends a QoS 2 publish of a broker that downgrades it (D12)
				w.violate("%s (QoS 2) returned nil, but the broker sent no PUBCOMP for it", o)
			} else if len(m.newIn) > 1 {
				w.violate("%s (QoS 2) returned nil, but broker sessions %v each read it as a new message: a broker that delivers QoS 2 on PUBLISH delivered it %d times", o, m.newIn, len(m.newIn))
			}
		}
	case errors.As(err, &pe):
		if !slices.Contains(m.acks, pe.ReasonCode) {
			w.violate("%s ended with %v, but the broker sent %v", o, err, m.acks)
		}
	case errors.Is(err, mqtt.ErrRefused):
		// Only a message the broker refuses by cutting the connection
		// (poison), after cuts on three probes at least; the broker's
		// other cuts end connections whatever they carry, which must not
		// look like a refusal (refused.go).
		if o.afterCrash {
			// Refused by the Close that stands for the kill: the store
			// the next client finds still holds it, and no application
			// saw the promise (seed 575529009882998789).
			w.logf("  %s: refused as its client crashed; a later client on the store may send it", o)
		} else {
			m.refused = true
		}
		switch {
		case !m.poison && m.endedRightAfter(3, time.Second):
			// What the error says happened, by chance of the faults.
			w.logf("  %s: the broker ended the last 3 connections within 1 s of reading it: refused by coincidence", o)
		case !m.poison:
			w.violate("%s ended %v, but the broker takes that message", o, err)
		case m.cuts < 3:
			w.violate("%s ended %v after the broker refused it %d times", o, err, m.cuts)
		}
	case errors.Is(err, mqtt.ErrOutcomeUnknown):
		// Honest when the ctx ended after the PUBLISH was written, when a
		// QoS 0 write failed, when the message no longer fits a new
		// connection, or when the broker lost the session mid-flow.
		if !ctxEnded(o, err) && m.qos != 0 && !errors.Is(err, mqtt.ErrInvalidMessage) && w.b.sessN == o.sessN {
			w.violate("%s ended %v, but its ctx did not end and the broker kept the session", o, err)
		}
	case errors.Is(err, mqtt.ErrWithdrawn):
		neverSent("withdrawn")
		if !ctxEnded(o, err) {
			w.violate("%s was withdrawn (%v), but its ctx did not end", o, err)
		}
	case errors.Is(err, mqtt.ErrExpired):
		neverSent("expired")
		if m.expiry == 0 || at.Sub(o.at) < time.Duration(m.expiry)*time.Second {
			w.violate("%s expired after %s; its expiry is %d s", o, at.Sub(o.at), m.expiry)
		}
	case errors.Is(err, mqtt.ErrDropped), errors.Is(err, mqtt.ErrSuperseded):
		neverSent("dropped")
		pol := w.policyOf(m)
		super := errors.Is(err, mqtt.ErrSuperseded)
		ok := false
		for _, p := range w.ops {
			if p.kind != "pub" || p.n <= o.n || p.inst != inst {
				continue
			}
			pp := w.policyOf(p.msg)
			if super && pp == mqtt.LatestPerTopic && p.msg.topic == m.topic && pol == mqtt.LatestPerTopic {
				ok = true
			}
			if !super && (pp == mqtt.DropOldest || pp == mqtt.LatestPerTopic) && (pol == mqtt.DropOldest || pol == mqtt.LatestPerTopic) {
				ok = true
			}
		}
		if !ok {
			w.violate("%s (policy %v) ended %v, with no newer message that may drop it", o, pol, err)
		}
	case errors.Is(err, mqtt.ErrQueueFull):
		neverSent("queue full")
		if w.policyOf(m) == mqtt.Block {
			w.violate("%s (policy Block) ended %v", o, err)
		}
	case errors.Is(err, mqtt.ErrInvalidMessage):
		neverSent("invalid")
	case errors.Is(err, mqtt.ErrInStore):
		if w.store == nil || !inst.closing {
			w.violate("%s ended %v: no store, or the client was not stopping", o, err)
		}
	case errors.Is(err, mqtt.ErrClosed):
		if !inst.closing {
			w.violate("%s ended %v, but the client was not stopping", o, err)
		}
	default:
		w.violate("%s ended with an unexpected error: %v", o, err)
	}
}

func (w *world) checkControl(o *opRec, err error) {
	acked, seen := w.subAcked[o.own], w.subSeen[o.own]
	if o.kind == "unsub" {
		acked, seen = w.unsubAcked[o.own], w.unsubSeen[o.own]
	}
	var se *mqtt.SubscribeError
	switch {
	case err == nil:
		if !slices.ContainsFunc(acked, func(c codec.ReasonCode) bool { return !c.IsError() }) {
			w.violate("%s returned nil, but the broker granted no %s for it (%v)", o, o.own, acked)
		}
		if o.kind == "sub" {
			for _, f := range o.filters {
				if !slices.Contains(w.subscribed, f) {
					w.subscribed = append(w.subscribed, f)
				}
			}
		}
	case errors.As(err, &se):
		if _, refused := se.Refused[o.own]; refused != slices.ContainsFunc(acked, codec.ReasonCode.IsError) {
			w.violate("%s ended %v; the broker answered %v for %s", o, err, acked, o.own)
		}
	case errors.Is(err, mqtt.ErrRefused):
		// Only a SUBSCRIBE the broker refuses by cutting the connection
		// (poison), after cuts on three probes at least, or by the
		// coincidence of the broker's faults (refused_control.go).
		rec := w.ctlByFilter[o.own]
		rec.refused = true
		switch {
		case !rec.poison && endedRightAfter(rec.sends, 3, time.Second):
			w.logf("  %s: the broker ended the last 3 connections within 1 s of reading it: refused by coincidence", o)
		case !rec.poison:
			w.violate("%s ended %v, but the broker takes it", o, err)
		case rec.cuts < 3:
			w.violate("%s ended %v after the broker refused it %d times", o, err, rec.cuts)
		}
	case errors.Is(err, mqtt.ErrWithdrawn):
		w.ctlByFilter[o.own].neverSent = true
		if seen {
			w.violate("%s was withdrawn, but the broker got it", o)
		}
		if !ctxEnded(o, err) {
			w.violate("%s was withdrawn (%v), but its ctx did not end", o, err)
		}
	case errors.Is(err, mqtt.ErrOutcomeUnknown):
		if !ctxEnded(o, err) && !errors.Is(err, mqtt.ErrInvalidMessage) {
			w.violate("%s ended %v, but its ctx did not end", o, err)
		}
	case errors.Is(err, mqtt.ErrClosed):
		if !o.inst.closing {
			w.violate("%s ended %v, but the client was not stopping", o, err)
		}
	default:
		w.violate("%s ended with an unexpected error: %v", o, err)
	}
}

func (w *world) checkFlush(o *opRec, err error) {
	switch {
	case err == nil:
		for _, p := range o.before {
			p.mu.Lock()
			done := p.done
			p.mu.Unlock()
			if !done {
				w.violate("%s returned nil, but %s, made before it, has no result", o, p)
			}
		}
	case errors.Is(err, mqtt.ErrClosed):
		if !o.inst.closing {
			w.violate("%s ended %v, but the client was not stopping", o, err)
		}
	case o.ctx.Err() != nil && errors.Is(err, o.ctx.Err()):
	default:
		w.violate("%s ended with an unexpected error: %v", o, err)
	}
}

func (w *world) checkDisconnect(o *opRec, err error) {
	inst := o.inst
	switch {
	case err == nil:
		for _, p := range w.ops {
			if p.inst != inst || p.kind == "disconnect" {
				continue
			}
			p.mu.Lock()
			done := p.done
			p.mu.Unlock()
			if !done {
				w.violate("%s returned nil, but %s has no result", o, p)
			}
		}
	case o.ctx.Err() != nil && errors.Is(err, o.ctx.Err()):
	case errors.Is(err, mqtt.ErrClosed):
	default:
		w.violate("%s ended with an unexpected error: %v", o, err)
	}
	if !inst.stopped {
		w.bounded(fmt.Sprintf("client %d: wait for Done after Disconnect", inst.n), func() error { <-inst.c.Done(); return nil })
		w.stopped(inst)
	}
	if inst == w.cur && w.fail == "" && w.step <= w.steps {
		w.newInstance()
	}
}

// --- the end --------------------------------------------------------------

// drain makes the broker friendly (it answers everything, cuts nothing) and
// the application patient, and asks the last client to Disconnect: every
// operation must then end, and a QoS 1/2 message nobody withdrew must have
// been acknowledged.
func (w *world) drain() {
	w.logf("--- drain: a friendly broker, then Disconnect")
	w.b.setDown(false)
	if w.store != nil {
		w.store.failNext.Store(false) // and a store that works
	}
	deadline := time.Now().Add(10 * time.Minute)
	var final *opRec // the drain's own Disconnect
	for round := 0; round < 20000 && w.fail == "" && time.Now().Before(deadline); round++ {
		w.step++
		w.settle()
		if w.fail != "" {
			return
		}
		if final != nil && final.inst.stopped {
			final.mu.Lock()
			err := final.err
			final.mu.Unlock()
			if err != nil && final.inst.c.Err() != nil {
				// It was stopping on its own already (its store had
				// failed before the drain, which mends the store), and
				// Disconnect says so: the next client drains.
				w.logf("  client %d had stopped on its own: %v", final.inst.n, final.inst.c.Err())
				final = nil
				continue
			}
			if err != nil {
				w.violate("%s, with a friendly broker: %v", final, err)
			}
			return
		}
		inst := w.cur
		if inst == nil || inst.stopped {
			// A client that stopped before the drain, or in it on its
			// own Disconnect from the history: the next one drains.
			w.newInstance()
			continue
		}
		busy := false
		for _, bc := range w.b.conns {
			if bc.connect != nil && !bc.up && !bc.dead {
				w.logf("  broker accepts c%d", bc.n)
				lim := limits{maxQoS: 2}
				if w.firstLim != nil && !w.d["limitchange"] {
					lim = *w.firstLim
				}
				w.b.connack(bc, codec.Success, lim, false, "")
				busy = true
			}
		}
		for n := 0; n < 200; n++ {
			o := w.b.owed()
			if len(o) == 0 {
				break
			}
			w.logf("  broker answers %s", o[0].what)
			o[0].do(codec.Success)
			busy = true
		}
		if inst.c != nil {
			before := len(w.log)
			w.read(inst, 1000)
			busy = busy || len(w.log) > before
			for len(inst.unacked) > 0 {
				w.ack(inst)
				busy = true
			}
			if inst.disconnect == nil {
				o := w.newOp("disconnect", inst)
				o.ctx, o.cancel = context.WithTimeout(context.Background(), 10*time.Minute)
				o.ctxDesc = "timeout 10m"
				inst.disconnect = o
				inst.closing = true
				w.logf("  client %d: op%d Disconnect ctx=%s", inst.n, o.n, o.ctxDesc)
				c := inst.c
				o.runSync(func() error { return c.Disconnect(o.ctx) })
				final = o
				busy = true
			}
		}
		if !busy {
			time.Sleep(time.Second)
		}
	}
	if w.fail == "" {
		w.violate("the last client did not stop within 10 minutes of a friendly broker")
	}
}

// teardown stops whatever still runs and checks that nothing of the
// client is left.
func (w *world) teardown() {
	for _, inst := range w.insts {
		if inst.dialCancel != nil {
			inst.dialCancel()
		}
		synctest.Wait()
		w.pollInstances()
		if inst.c != nil && !inst.stopped {
			inst.closing = true
			w.bounded(fmt.Sprintf("client %d: Close at the end", inst.n), inst.c.Close)
			inst.stopped = true
		}
	}
	w.settle()
	if w.fail == "" && w.store != nil {
		// Everything ended: the store holds no publish.
		for k, v := range w.store.durable() {
			if len(v) > 0 && v[0] == 'P' {
				w.violate("after the final Disconnect the store still holds publish record %d", k)
			}
		}
	}
	if w.fail == "" && w.store != nil {
		w.checkDurable()
	}
	for _, o := range w.ops {
		o.cancel()
		o.mu.Lock()
		ch, done := o.ch, o.done
		o.mu.Unlock()
		if done && ch != nil {
			select {
			case err := <-ch:
				w.violate("%s got a second result: %v", o, err)
			default:
			}
		}
	}
	close(w.abort)
	for _, bc := range w.b.conns {
		bc.close()
	}
	synctest.Wait()
	if left := bubbleGoroutines(); left != "" {
		w.violate("goroutines left in the bubble after every client stopped:\n%s", left)
	}
}

// checkDurable checks, once the last client disconnected from a friendly
// broker, that every QoS 1/2 message a client on the store accepted
// (PublishAsync returned: it was durable) reached the broker, unless its
// result said it never would.
func (w *world) checkDurable() {
	missing := map[string][]*opRec{}
	for _, o := range w.ops {
		if o.kind != "pub" || o.msg.qos == 0 || o.sync {
			continue
		}
		o.mu.Lock()
		returned, err := o.returned, o.err
		o.mu.Unlock()
		m := o.msg
		var pe *mqtt.PublishError
		if !returned || m.seen || m.neverSent || errors.As(err, &pe) {
			continue
		}
		if errors.Is(err, mqtt.ErrOutcomeUnknown) && w.triedToSend(m.tag) {
			continue // in a write that failed: maybe sent, as its result says
		}
		if errors.Is(err, mqtt.ErrClosed) && !errors.Is(err, mqtt.ErrInStore) {
			continue // refused as the client stopped: never stored
		}
		// A later client may have failed it (expired, too large for
		// the broker's limits now, refused): it says so with a
		// StoredPublishFailed event, which names the topic. While those
		// can be lost in a burst (F11), only a message that fitted every
		// CONNACK and had no expiry is checked.
		if !w.d["restoredrefused"] || !w.d["storedevents"] && (m.expiry > 0 || !w.fitsAll(m, o.inst.ver)) {
			continue
		}
		missing[m.topic] = append(missing[m.topic], o)
	}
	for _, topic := range slices.Sorted(maps.Keys(missing)) {
		ops := missing[topic]
		reported := w.storedFailed[topic]
		if !w.d["storedevents"] {
			reported = 0
		}
		if len(ops) > reported {
			w.violate("%s was accepted into the store (PublishAsync returned) and never reached the broker; %d such on %s, %d reported by StoredPublishFailed events",
				ops[0], len(ops), topic, reported)
		}
	}
}

// fitsAll reports whether m fits every CONNACK's limits so far.
func (w *world) fitsAll(m *msgRec, ver byte) bool {
	p := &codec.Publish{Topic: m.topic, Payload: m.payload, QoS: m.qos, Retain: m.retain, PacketID: 1}
	if m.expiry > 0 {
		e := m.expiry
		p.Properties = &codec.Properties{MessageExpiry: &e}
	}
	n, err := codec.Size(p, ver)
	if err != nil {
		return false
	}
	for _, l := range w.b.limitsSeen {
		if l.maxPacket > 0 && n > l.maxPacket || m.qos > l.maxQoS || m.retain && l.noRetain {
			return false
		}
	}
	return true
}

// bubbleGoroutines returns the stacks of the other goroutines in the
// caller's synctest bubble.
func bubbleGoroutines() string {
	me := make([]byte, 256)
	me = me[:runtime.Stack(me, false)]
	hdr, _, _ := bytes.Cut(me, []byte("\n"))
	i := bytes.Index(hdr, []byte("synctest bubble "))
	if i < 0 {
		return ""
	}
	id := hdr[i+len("synctest bubble "):]
	if j := bytes.IndexAny(id, ",]"); j >= 0 {
		id = id[:j]
	}
	mark := "synctest bubble " + string(id)
	all := make([]byte, 1<<20)
	all = all[:runtime.Stack(all, true)]
	var left []string
	for _, g := range strings.Split(string(all), "\n\n") {
		first, _, _ := strings.Cut(g, "\n")
		if first == string(hdr) || !strings.Contains(first, mark+",") && !strings.Contains(first, mark+"]") {
			continue
		}
		if strings.Contains(g, "internal/synctest.Run(") || strings.Contains(g, "testing/synctest.testingSynctestTest(") {
			continue // the bubble's own
		}
		left = append(left, g)
	}
	return strings.Join(left, "\n\n")
}

// --- the store --------------------------------------------------------------

// modelStore is a store whose durable state is what its last Sync saw.
type modelStore struct {
	mu       sync.Mutex
	live     map[uint64][]byte
	synced   map[uint64][]byte
	failNext atomic.Bool // the next Sync fails
	failed   atomic.Bool // a Sync failed: the store is unusable, as a File would be
}

func newModelStore(records map[uint64][]byte) *modelStore {
	if records == nil {
		records = map[uint64][]byte{}
	}
	return &modelStore{live: maps.Clone(records), synced: maps.Clone(records)}
}

func (s *modelStore) Load(fn func(key uint64, value []byte) error) error {
	s.mu.Lock()
	keys := slices.Sorted(maps.Keys(s.live))
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = s.live[k]
	}
	s.mu.Unlock()
	for i, k := range keys {
		if err := fn(k, vals[i]); err != nil {
			return err
		}
	}
	return nil
}

func (s *modelStore) Put(key uint64, v []byte) error {
	s.mu.Lock()
	s.live[key] = bytes.Clone(v)
	s.mu.Unlock()
	return nil
}

func (s *modelStore) Delete(key uint64) error {
	s.mu.Lock()
	delete(s.live, key)
	s.mu.Unlock()
	return nil
}

func (s *modelStore) Sync() error {
	if s.failed.Load() || s.failNext.CompareAndSwap(true, false) {
		s.failed.Store(true)
		return errModelSync
	}
	s.mu.Lock()
	s.synced = maps.Clone(s.live)
	s.mu.Unlock()
	return nil
}

func (s *modelStore) Close() error { return nil }

// describe lists the store's publish records (session_store.go's format:
// 'P' version flags id(2) frame): tag, packet identifier, flags.
func (s *modelStore) describe() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, k := range slices.Sorted(maps.Keys(s.live)) {
		v := s.live[k]
		switch {
		case len(v) >= 5 && v[0] == 'P':
			tag := "?"
			if p, _, err := codec.Decode(v[5:], v[1], 0); err == nil {
				if pub, ok := p.(*codec.Publish); ok {
					tag = tagOf(pub.Payload)
				}
			}
			out = append(out, fmt.Sprintf("%s(id %d, flags %d)", tag, int(v[3])<<8|int(v[4]), v[2]))
		case k&inboundRecord != 0:
			out = append(out, fmt.Sprintf("in(id %d)", k&^inboundRecord))
		}
	}
	return "[" + strings.Join(out, " ") + "]"
}

// sentQoS2 lists the QoS 2 publishes the store holds as sent (with a
// packet identifier), by identifier.
func (s *modelStore) sentQoS2() map[uint16]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[uint16]string{}
	for _, v := range s.live {
		if len(v) < 5 || v[0] != 'P' {
			continue
		}
		id := uint16(v[3])<<8 | uint16(v[4])
		if p, _, err := codec.Decode(v[5:], v[1], 0); err == nil && id != 0 {
			if pub, ok := p.(*codec.Publish); ok && pub.QoS == codec.QoS2 {
				out[id] = tagOf(pub.Payload)
			}
		}
	}
	return out
}

// durable is what a crash now would leave.
func (s *modelStore) durable() map[uint64][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.synced)
}

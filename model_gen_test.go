package mqtt_test

// The model test's generator (see model_test.go): the steps the
// application, the broker and the world take.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing/synctest"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
)

// --- the generator ------------------------------------------------------

type action struct {
	weight int
	name   string
	f      func()
}

// act takes one random step.
func (w *world) act() {
	var acts []action
	add := func(weight int, name string, f func()) {
		if weight > 0 {
			acts = append(acts, action{weight, name, f})
		}
	}
	d := w.d
	inst := w.live()
	b := w.b
	if inst != nil {
		add(30, "publish", func() { w.publish(inst) })
		if d["subs"] {
			add(3, "subscribe", func() { w.subscribe(inst) })
			add(2, "unsubscribe", func() { w.unsubscribe(inst) })
		}
		if d["flush"] {
			add(3, "flush", func() { w.flush(inst) })
		}
		reads := 15
		if inst.slow {
			reads = 2
		}
		add(reads, "read", func() { w.read(inst, 1+w.rng.IntN(4)) })
		if len(inst.unacked) > 0 {
			add(10, "ack", func() { w.ack(inst) })
		}
		if d["disconnect"] && inst.disconnect == nil {
			add(1, "disconnect", func() { w.disconnect(inst) })
		}
		if d["reopen"] {
			add(1, "close", func() { w.closeInstance(inst); w.newInstance() })
		}
		if d["crash"] && w.store != nil {
			add(2, "crash", func() { w.crash(inst); w.newInstance() })
		}
		if d["syncfail"] && w.store != nil {
			add(1, "the store's next sync fails", func() { w.store.failNext.Store(true) })
		}
	} else if w.cur != nil && w.cur.c == nil && d["crash"] && w.store != nil && !w.cur.closing {
		add(1, "crash while dialing", func() { w.crash(w.cur); w.newInstance() })
	}
	if len(w.cancels) > 0 {
		add(8, "cancel", w.cancelOne)
	}
	for _, old := range w.insts {
		if old.c != nil && old.stopped {
			add(1, "call a stopped client", func() { w.callStopped(old) })
			break
		}
	}
	// The broker.
	var pending []*bconn
	for _, bc := range b.conns {
		if bc.connect != nil && !bc.up && !bc.dead {
			pending = append(pending, bc)
		}
	}
	if len(pending) > 0 {
		add(40, "answer CONNECT", func() { w.answerConnect(pending[0]) })
	}
	if owed := b.owed(); len(owed) > 0 {
		add(30, "broker acks one", func() { w.brokerAck(b.owed()) })
		add(4, "broker acks all", func() {
			for n := 0; n < 100; n++ {
				o := b.owed()
				if len(o) == 0 {
					break
				}
				w.brokerAck(o)
			}
		})
	}
	if live := b.cur; b.live(live) {
		if d["inbound"] && b.canPublish(live) {
			add(10, "broker publishes", func() { w.brokerPublish(live) })
		}
		if d["cuts"] {
			add(3, "cut", func() { b.cut(live) })
		}
		if d["blackhole"] {
			add(1, "black hole", func() { live.hole.Store(true) })
		}
		if d["brokerdisconnect"] && live.ver == codec.V5 {
			add(1, "broker DISCONNECT", func() { w.brokerDisconnect(live) })
		}
	}
	if d["down"] {
		add(1, "broker down/up", func() {
			b.mu.Lock()
			down := !b.down
			b.mu.Unlock()
			b.setDown(down)
			w.logf("broker: down=%v", down)
		})
	}
	add(12, "sleep", func() {
		dur := []time.Duration{time.Millisecond, 50 * time.Millisecond, 600 * time.Millisecond, 2 * time.Second, 7 * time.Second, 40 * time.Second}[w.rng.IntN(6)]
		w.logf("sleep %s", dur)
		time.Sleep(dur)
	})
	total := 0
	for _, a := range acts {
		total += a.weight
	}
	n := w.rng.IntN(total)
	for _, a := range acts {
		if n < a.weight {
			w.logf("step %d: %s", w.step, a.name)
			a.f()
			return
		}
		n -= a.weight
	}
}

func (w *world) pick(xs ...int) int { return xs[w.rng.IntN(len(xs))] }

// ctxFor gives an operation its ctx: never ending, cancelled by the
// generator later, or with a deadline.
func (w *world) ctxFor(o *opRec) {
	r := w.rng.IntN(100)
	switch {
	case w.d["cancel"] && r < 40:
		o.ctx, o.cancel = context.WithCancel(context.Background())
		o.ctxDesc = "cancellable"
		w.cancels = append(w.cancels, o)
	case w.d["timeouts"] && r < 55:
		d := time.Duration(w.pick(100, 1000, 3000, 10000, 60000)) * time.Millisecond
		o.ctx, o.cancel = context.WithTimeout(context.Background(), d)
		o.ctxDesc = "timeout " + d.String()
	default:
		o.ctx, o.cancel = context.Background(), func() {}
		o.ctxDesc = "background"
	}
}

func (w *world) newOp(kind string, inst *instance) *opRec {
	w.nextOp++
	o := &opRec{n: w.nextOp, kind: kind, inst: inst, at: time.Now(), step: w.step, sessN: w.b.sessN}
	w.ctxFor(o)
	w.ops = append(w.ops, o)
	w.open = append(w.open, o)
	return o
}

// run makes the call f in a goroutine of its own: the application's
// calls may block (a full queue, a store sync).
func (o *opRec) run(w *world, f func() <-chan error) {
	go func() {
		ch := f()
		o.mu.Lock()
		o.returned, o.ch = true, ch
		o.mu.Unlock()
		select {
		case err := <-ch:
			o.mu.Lock()
			o.done, o.err, o.resAt, o.afterCrash = true, err, time.Now(), o.inst.crashed.Load()
			o.mu.Unlock()
		case <-w.abort:
		}
	}()
}

// runSync is run for a call that returns its error.
func (o *opRec) runSync(f func() error) {
	go func() {
		err := f()
		o.mu.Lock()
		o.returned, o.done, o.err, o.resAt, o.afterCrash = true, true, err, time.Now(), o.inst.crashed.Load()
		o.mu.Unlock()
	}()
}

func (w *world) publish(inst *instance) {
	o := w.newOp("pub", inst)
	var qs []codec.QoS
	for q, name := range []string{"qos0", "qos1", "qos2"} {
		if w.d[name] {
			qs = append(qs, codec.QoS(q))
		}
	}
	w.nextOut++
	m := &msgRec{tag: fmt.Sprintf("p%d", w.nextOut), qos: qs[w.rng.IntN(len(qs))], topic: fmt.Sprintf("t/%d", w.rng.IntN(3)), op: o}
	if w.d["poison"] && m.qos > 0 && w.rng.IntN(40) == 0 { // each costs a few reconnects: a handful per history
		m.poison, m.topic = true, "poison"
	}
	pad := w.rng.IntN(40)
	if w.rng.IntN(10) == 0 {
		pad = 100 + w.rng.IntN(200)
	}
	m.payload = []byte(m.tag + "|" + strings.Repeat("x", pad))
	m.retain = w.d["retain"] && w.rng.IntN(5) == 0
	msg := mqtt.Message{Topic: m.topic, Payload: m.payload, QoS: m.qos, Retain: m.retain}
	if w.d["policies"] && w.rng.IntN(2) == 0 {
		m.policy = mqtt.QueuePolicy(1 + w.rng.IntN(4))
		msg.QueuePolicy = m.policy
	}
	if w.d["expiry"] && inst.ver == codec.V5 && w.rng.IntN(4) == 0 {
		m.expiry = uint32(1 + w.rng.IntN(4))
		e := m.expiry
		msg.Properties = &codec.Properties{MessageExpiry: &e}
	}
	o.msg = m
	w.msgs[m.tag] = m
	w.logf("  client %d: op%d Publish %s %s q%d retain=%v policy=%v expiry=%d ctx=%s (%d bytes)", inst.n, o.n, m.tag, m.topic, m.qos, m.retain, w.policyOf(m), m.expiry, o.ctxDesc, len(m.payload))
	c := inst.c
	if w.rng.IntN(4) == 0 {
		o.sync = true
		o.runSync(func() error { return c.Publish(o.ctx, msg) })
		return
	}
	o.run(w, func() <-chan error { return c.PublishAsync(o.ctx, msg) })
}

// policyOf is the queue policy a message is published with.
func (w *world) policyOf(m *msgRec) mqtt.QueuePolicy {
	if m.policy != 0 {
		return m.policy
	}
	if p := m.op.inst.cfg.QueuePolicy; p != 0 {
		return p
	}
	return mqtt.Block
}

func (w *world) subscribe(inst *instance) {
	o := w.newOp("sub", inst)
	w.nextOut++
	o.own = fmt.Sprintf("s/%d", w.nextOut)
	rec := &ctlRec{op: o}
	if w.d["poison"] && w.rng.IntN(15) == 0 { // each costs a few reconnects
		o.own, rec.poison = fmt.Sprintf("deny/%d", w.nextOut), true
	}
	subs := []mqtt.Subscription{{Filter: o.own, QoS: codec.QoS(w.rng.IntN(3))}}
	if len(w.subscribed) > 0 && w.rng.IntN(2) == 0 {
		subs = append(subs, mqtt.Subscription{Filter: w.subscribed[w.rng.IntN(len(w.subscribed))], QoS: 1})
	}
	for _, s := range subs {
		o.filters = append(o.filters, s.Filter)
	}
	w.ctlByFilter[o.own] = rec
	w.logf("  client %d: op%d Subscribe %v ctx=%s", inst.n, o.n, o.filters, o.ctxDesc)
	c := inst.c
	o.runSync(func() error { return c.Subscribe(o.ctx, subs...) })
}

func (w *world) unsubscribe(inst *instance) {
	o := w.newOp("unsub", inst)
	w.nextOut++
	o.own = fmt.Sprintf("u/%d", w.nextOut)
	o.filters = []string{o.own}
	if len(w.subscribed) > 0 {
		o.filters = append(o.filters, w.subscribed[w.rng.IntN(len(w.subscribed))])
	}
	w.ctlByFilter[o.own] = &ctlRec{op: o}
	w.logf("  client %d: op%d Unsubscribe %v ctx=%s", inst.n, o.n, o.filters, o.ctxDesc)
	c := inst.c
	o.runSync(func() error { return c.Unsubscribe(o.ctx, o.filters...) })
}

func (w *world) flush(inst *instance) {
	o := w.newOp("flush", inst)
	for _, p := range w.ops {
		if p.kind != "pub" || p.inst != inst {
			continue
		}
		p.mu.Lock()
		if p.returned {
			o.before = append(o.before, p)
		}
		p.mu.Unlock()
	}
	w.logf("  client %d: op%d Flush (%d publishes before it) ctx=%s", inst.n, o.n, len(o.before), o.ctxDesc)
	c := inst.c
	o.runSync(func() error { return c.Flush(o.ctx) })
}

func (w *world) disconnect(inst *instance) {
	o := w.newOp("disconnect", inst)
	inst.disconnect = o
	inst.closing = true
	w.logf("  client %d: op%d Disconnect ctx=%s", inst.n, o.n, o.ctxDesc)
	c := inst.c
	o.runSync(func() error { return c.Disconnect(o.ctx) })
}

func (w *world) cancelOne() {
	i := w.rng.IntN(len(w.cancels))
	o := w.cancels[i]
	w.cancels = slices.Delete(w.cancels, i, i+1)
	w.logf("  cancel the ctx of %s", o)
	o.cancel()
}

// callStopped calls a client that has stopped: every call ends at once,
// with ErrClosed (Disconnect: nil), and nothing reaches the broker.
func (w *world) callStopped(inst *instance) {
	c := inst.c
	w.nextOut++
	tag := fmt.Sprintf("p%d", w.nextOut)
	m := &msgRec{tag: tag, topic: "t/0", payload: []byte(tag + "|"), qos: codec.QoS(w.rng.IntN(3)), neverSent: true}
	w.msgs[tag] = m
	w.logf("  client %d (stopped): Publish %s, Subscribe, Flush, Disconnect", inst.n, tag)
	calls := []struct {
		name string
		f    func() error
		want error
	}{
		{"Publish", func() error {
			return c.Publish(context.Background(), mqtt.Message{Topic: m.topic, Payload: m.payload, QoS: m.qos})
		}, mqtt.ErrClosed},
		{"PublishAsync", func() error {
			return <-c.PublishAsync(context.Background(), mqtt.Message{Topic: m.topic, Payload: m.payload, QoS: m.qos})
		}, mqtt.ErrClosed},
		{"Subscribe", func() error { return c.Subscribe(context.Background(), mqtt.Subscription{Filter: "s/stopped", QoS: 1}) }, mqtt.ErrClosed},
		{"Unsubscribe", func() error { return c.Unsubscribe(context.Background(), "s/stopped") }, mqtt.ErrClosed},
		{"Flush", func() error { return c.Flush(context.Background()) }, mqtt.ErrClosed},
		// nil after Close or Disconnect; why it stopped if it stopped on
		// its own (the store failed): not everything finished.
		{"Disconnect", func() error { return c.Disconnect(context.Background()) }, c.Err()},
		{"Close", c.Close, nil},
	}
	for _, call := range calls {
		err := w.bounded(fmt.Sprintf("client %d (stopped): %s", inst.n, call.name), call.f)
		if call.want == nil && err != nil || call.want != nil && !errors.Is(err, call.want) {
			w.violate("client %d (stopped): %s = %v, want %v", inst.n, call.name, err, call.want)
		}
	}
}

// read takes up to n messages from Messages, as a reader that keeps up
// would.
func (w *world) read(inst *instance, n int) {
	for range n {
		select {
		case m, ok := <-inst.c.Messages():
			if !ok {
				return
			}
			w.received(inst, m)
		default:
			return
		}
		synctest.Wait()
	}
}

// received checks one message the application got.
func (w *world) received(inst *instance, m mqtt.Message) {
	tag := tagOf(m.Payload)
	im := w.inMsgs[tag]
	w.logf("  client %d: received %s q%d dup=%v", inst.n, tag, m.QoS, m.Duplicate)
	if im == nil {
		w.violate("client %d: received a message the broker never sent: %q %q", inst.n, m.Topic, m.Payload)
		return
	}
	if m.Topic != im.topic || string(m.Payload) != im.payload || m.QoS != im.qos || m.Retain != im.retain {
		w.violate("client %d: received %s as %q q%d retain=%v; the broker sent %q q%d retain=%v", inst.n, tag, m.Topic, m.QoS, m.Retain, im.topic, im.qos, im.retain)
		return
	}
	if im.qos == 2 {
		if im.delivered[inst.n] > 0 {
			w.violate("client %d: QoS 2 message %s delivered to the application twice", inst.n, tag)
		} else if len(im.delivered) > 0 {
			switch {
			case im.pubrecd:
				w.violate("client %d: QoS 2 message %s delivered again after the broker got PUBREC for it", inst.n, tag)
			case w.store != nil && im.appAcked && !im.excused && (!im.unrecorded || w.d["offlineacks"]):
				w.violate("client %d: QoS 2 message %s delivered again, after the application took (or acknowledged) it in client %v, with a store [exactly once across crashes]", inst.n, tag, slices.Sorted(maps.Keys(im.delivered)))
			}
		}
	}
	im.delivered[inst.n]++
	if inst.cfg.ManualAck && m.QoS > 0 {
		inst.unacked = append(inst.unacked, m)
	} else if m.QoS > 0 {
		im.appAcked = true
	}
}

// ack acknowledges a random message the application holds (ManualAck: in
// any order).
func (w *world) ack(inst *instance) {
	i := w.rng.IntN(len(inst.unacked))
	m := inst.unacked[i]
	inst.unacked = slices.Delete(inst.unacked, i, i+1)
	err := m.Ack()
	w.logf("  client %d: Ack %s: %v", inst.n, tagOf(m.Payload), err)
	if err == nil {
		w.inMsgs[tagOf(m.Payload)].appAcked = true
	} else if !errors.Is(err, mqtt.ErrClosed) {
		w.violate("client %d: Ack: %v", inst.n, err)
	}
}

// --- the broker's steps ---------------------------------------------------

func (w *world) answerConnect(bc *bconn) {
	b := w.b
	r := w.rng.IntN(100)
	refuse := w.d["refuse"]
	switch {
	case refuse && r < 5:
		w.logf("  broker leaves c%d's CONNECT unanswered", bc.n)
		return // the client's ConnectTimeout decides
	case refuse && r < 10:
		code := codec.ServerUnavailable
		ref := ""
		if bc.ver == codec.V5 {
			code = []codec.ReasonCode{codec.ServerUnavailable, codec.ServerBusy, codec.UseAnotherServer, codec.QuotaExceeded}[w.rng.IntN(4)]
			if code == codec.UseAnotherServer {
				ref = "model:1884"
			}
		}
		w.logf("  broker refuses c%d: %s", bc.n, code)
		b.connack(bc, code, limits{}, false, ref)
		return
	case w.d["cuts"] && r < 14:
		b.cut(bc)
		return
	}
	lim := limits{maxQoS: 2}
	if bc.ver == codec.V5 && w.d["limits"] {
		if w.firstLim != nil && !w.d["limitchange"] {
			lim = *w.firstLim
		} else {
			if w.rng.IntN(10) < 4 {
				lim.recvMax = 1 + w.rng.IntN(4)
			}
			if w.rng.IntN(10) < 2 {
				lim.maxPacket = 40 + w.rng.IntN(200)
			}
			if w.rng.IntN(10) < 1 {
				lim.maxQoS = codec.QoS(w.rng.IntN(2))
			}
			if w.rng.IntN(10) < 1 {
				lim.noRetain = true
			}
			if w.firstLim == nil {
				l := lim
				w.firstLim = &l
			}
		}
	}
	lose := w.d["sessionloss"] && w.rng.IntN(5) == 0
	w.logf("  broker accepts c%d: limits [%s], lose session %v", bc.n, lim, lose)
	b.connack(bc, codec.Success, lim, lose, "")
}

// brokerAck sends one of the answers the broker owes, chosen at random:
// any order across identifiers.
func (w *world) brokerAck(owed []owedAck) {
	a := owed[w.rng.IntN(len(owed))]
	code := codec.Success
	if w.d["errcodes"] && w.b.cur.ver == codec.V5 && w.rng.IntN(8) == 0 {
		switch a.kind {
		case codec.TypePuback, codec.TypePubrec:
			code = []codec.ReasonCode{codec.UnspecifiedError, codec.NotAuthorized, codec.QuotaExceeded, codec.NoMatchingSubscribers}[w.rng.IntN(4)]
		case codec.TypeSuback, codec.TypeUnsuback:
			code = []codec.ReasonCode{codec.UnspecifiedError, codec.NotAuthorized}[w.rng.IntN(2)]
		}
	} else if (a.kind == codec.TypeSuback) && w.rng.IntN(10) == 0 {
		code = codec.UnspecifiedError // 3.1.1 has 0x80 too
	}
	w.logf("  broker answers %s %s", a.what, rc(code))
	a.do(code)
}

func (w *world) brokerPublish(bc *bconn) {
	var qs []codec.QoS
	for q := range 3 {
		qs = append(qs, codec.QoS(q))
	}
	q := qs[w.rng.IntN(len(qs))]
	w.b.publish(bc, q, w.d["retain"] && w.rng.IntN(5) == 0)
}

func (w *world) brokerDisconnect(bc *bconn) {
	code := []codec.ReasonCode{codec.UnspecifiedError, codec.ServerShuttingDown, codec.SessionTakenOver, codec.UseAnotherServer, codec.KeepAliveTimeout, codec.ServerBusy}[w.rng.IntN(6)]
	p := &codec.Disconnect{ReasonCode: code}
	if code == codec.UseAnotherServer {
		p.Properties = &codec.Properties{ServerReference: "model:1884"}
	}
	w.b.send(bc, p)
	bc.finish()
	bc.brokerEnd = time.Now()
	w.b.ended(bc)
}

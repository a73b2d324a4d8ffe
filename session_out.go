package mqtt

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
	"github.com/robustmqtt/mqtt/store"
)

// acceptPublish takes a new publish into the queue.
func (s *session) acceptPublish(o *pubOp) {
	if o.done() {
		return // its ctx ended before it arrived, and it was withdrawn
	}
	if s.phase != running {
		o.finish(errDraining)
		return
	}
	if s.connectedN > 0 {
		if err := s.fits(&o.pkt); err != nil {
			o.finish(err)
			return
		}
	}
	if !s.makeRoom(o) {
		o.finish(fmt.Errorf("%w: publish to %s: MaxQueued (%d) or MaxQueuedBytes (%d) is reached and no waiting message may be dropped for it",
			ErrQueueFull, o.pkt.Topic, s.cfg.MaxQueued, s.cfg.MaxQueuedBytes))
		return
	}
	if s.cfg.Store != nil && o.pkt.QoS > AtMostOnce {
		if err := s.storePublish(o); err != nil {
			if errors.Is(err, store.ErrFull) {
				err = fmt.Errorf("%w: publish to %s: %w", ErrQueueFull, o.pkt.Topic, err)
			} else {
				err = fmt.Errorf("mqtt: publish to %s could not be stored: %w", o.pkt.Topic, err)
			}
			o.finish(err)
			return
		}
	}
	s.queue.push(o)
	if o.policy == LatestPerTopic {
		s.putLatest(o.pkt.Topic, o)
	}
	s.pump()
}

// makeRoom applies o's queue policy on arrival. A LatestPerTopic publish
// supersedes the waiting one to the same topic. A publish that came
// without room (DropOldest, LatestPerTopic on a full queue) takes the room
// of the oldest waiting messages that allow dropping. Whether that is
// enough is decided before anything is dropped: when it is not, makeRoom
// reports false and every waiting message stays.
func (s *session) makeRoom(o *pubOp) bool {
	var old *pubOp // the waiting publish o supersedes
	if o.policy == LatestPerTopic {
		if v := s.latest[o.pkt.Topic]; v != nil && !v.done() && v.state.Load() == opQueued {
			old = v
		}
	}
	if !o.needsRoom {
		if old != nil {
			s.dropQueued(old, fmt.Errorf("%w: publish to %s was still waiting when a newer one came", ErrSuperseded, old.pkt.Topic))
		}
		return true
	}
	// The candidates, in the order they would go: the superseded one
	// (which goes whatever room o needs), then the oldest droppable.
	var cands []*pubOp
	if old != nil {
		cands = append(cands, old)
	}
	for v := range s.queue.all() {
		if v != old && (v.policy == DropOldest || v.policy == LatestPerTopic) && !v.done() && v.state.Load() == opQueued {
			cands = append(cands, v)
		}
	}
	rooms := make([]room, len(cands))
	for i, v := range cands {
		if v.holdsRoom {
			rooms[i] = room{n: 1, bytes: v.size}
		}
	}
	minDrop := 0
	if old != nil {
		minDrop = 1
	}
	k := s.c.adm.exchangeFor(o.size, minDrop, rooms)
	if k < 0 {
		return false
	}
	for i, v := range cands[:k] {
		v.holdsRoom = false // its room went to o
		if v == old {
			s.dropQueued(v, fmt.Errorf("%w: publish to %s was still waiting when a newer one came", ErrSuperseded, v.pkt.Topic))
		} else {
			s.dropQueued(v, fmt.Errorf("%w: publish to %s", ErrDropped, v.pkt.Topic))
		}
		cands[i] = nil
	}
	o.needsRoom, o.holdsRoom = false, true
	return true
}

// dropQueued withdraws a waiting publish for a newer one and gives it err.
func (s *session) dropQueued(v *pubOp, err error) {
	if !v.state.CompareAndSwap(opQueued, opWithdrawn) {
		return // cannot happen: only the session hands queued publishes to a writer
	}
	if s.latest[v.pkt.Topic] == v {
		delete(s.latest, v.pkt.Topic)
	}
	s.settle(&v.op, err, true)
}

// fits checks a publish against what the broker announced in CONNACK:
// Maximum Packet Size, Maximum QoS, Retain Available.
func (s *session) fits(p *codec.Publish) error {
	if p.QoS > s.maxQoS {
		return fmt.Errorf("%w: publish to %q: QoS %d is above the broker's Maximum QoS %d", ErrInvalidMessage, p.Topic, p.QoS, s.maxQoS)
	}
	if p.Retain && s.noRetain {
		return fmt.Errorf("%w: publish to %q: the broker does not support retained messages", ErrInvalidMessage, p.Topic)
	}
	if s.maxPacket > 0 {
		id := p.PacketID
		if p.QoS > 0 && id == 0 {
			p.PacketID = 1 // only for sizing: the identifier takes two bytes
		}
		n, err := codec.Size(p, s.cfg.version)
		p.PacketID = id
		if err != nil {
			return fmt.Errorf("%w: publish to %q: %w", ErrInvalidMessage, p.Topic, err)
		}
		if n > s.maxPacket {
			return fmt.Errorf("%w: publish to %q is %d bytes on the wire, more than the broker's Maximum Packet Size of %d",
				ErrInvalidMessage, p.Topic, n, s.maxPacket)
		}
	}
	return nil
}

// pump moves publishes from the queue to the connection while the
// in-flight window has room. The queue is strictly first in, first out.
func (s *session) pump() {
	s.pumpQueue()
	if n := int64(s.pubInflight); s.c.stats.inflight.Load() != n {
		s.c.stats.inflight.Store(n) // only on a change: see endTurn
	}
}

// pumpQueue is pump without the count in Stats.
func (s *session) pumpQueue() {
	if s.cur != nil && s.cur.Err() != nil {
		// The connection died and the loop has not taken the news yet
		// (a publish taken in on its caller's goroutine, or in the same
		// turn as the end): what is queued stays queued, as it would a
		// moment later, instead of going into flight on a dead link
		// (where LatestPerTopic could no longer supersede it).
		s.lost()
	}
	if s.ctlProbeHolds() || s.resendN > 0 && !s.sendOwed() || s.probeOut() {
		return // what the session owes goes before anything new, and a probe alone
	}
	for s.cur != nil {
		o := s.queue.peek()
		if o == nil {
			return
		}
		if o.pkt.QoS > AtMostOnce && s.pubInflight >= s.window {
			return
		}
		if err := s.fits(&o.pkt); err != nil {
			s.popQueued(o)
			s.settle(&o.op, err, true) // the broker's limits changed since it was queued
			continue
		}
		if !o.expires.IsZero() {
			left := time.Until(o.expires)
			if left <= 0 {
				s.popQueued(o)
				s.withdraw(&o.op, expiredError(o))
				continue
			}
			// The interval left is what goes on the wire, as section
			// 3.3.2.3.3 asks of a server that forwards a message.
			o.pkt.Properties = expiryLeft(o.pkt.Properties, left)
		}
		if o.pkt.QoS > AtMostOnce {
			id, ok := s.allocID()
			if !ok {
				return
			}
			o.id, o.inFlight, o.pkt.PacketID = id, true, id
			s.seq++
			o.fl = flight{seq: s.seq, kind: codec.TypePublish, pub: o}
			s.putFlight(id, &o.fl)
			s.pubInflight++
			if o.pkt.QoS == ExactlyOnce {
				// Durable before the PUBLISH goes: sent again after a
				// restart under another identifier, a QoS 2 message
				// could be delivered twice.
				s.storeProgress(o, pubQoS2Sent)
			} else {
				s.storeProgress(o, pubQoS1Sent)
			}
		}
		s.popQueued(o)
		if !s.sendPublish(o, &o.pkt) {
			// The connection died under us; lost() runs next. A QoS 1/2
			// publish has its flight and goes again from there.
			if o.pkt.QoS == AtMostOnce {
				s.requeue([]*pubOp{o})
			}
			return
		}
		if o.pkt.QoS == AtMostOnce {
			for s.sentQoS0.len() > 0 && (*s.sentQoS0.front()).done() {
				s.sentQoS0.pop()
			}
			s.sentQoS0.push(o)
		}
	}
}

// requeue puts QoS 0 publishes that were taken for a connection that died
// before writing them back at the front of the queue, in their order, as
// waiting messages again: a LatestPerTopic one is again the one a newer
// publish to its topic supersedes, or, if a newer one already waits (it
// came while this one was out of the queue), is superseded by it now.
func (s *session) requeue(ops []*pubOp) {
	back := ops[:0]
	for _, o := range ops {
		if o.policy == LatestPerTopic {
			if newer := s.latest[o.pkt.Topic]; newer != nil && newer != o && !newer.done() {
				s.dropQueued(o, fmt.Errorf("%w: publish to %s was still waiting when a newer one came", ErrSuperseded, o.pkt.Topic))
				continue
			}
			s.putLatest(o.pkt.Topic, o)
		}
		back = append(back, o)
	}
	s.queue.pushFront(back)
}

// popQueued removes o, the front of the queue, from the queue.
func (s *session) popQueued(o *pubOp) {
	s.queue.pop()
	if o.policy == LatestPerTopic && s.latest[o.pkt.Topic] == o {
		delete(s.latest, o.pkt.Topic)
	}
}

// expiryLeft returns a copy of props (the caller's may be shared) whose
// Message Expiry Interval is left, rounded up to whole seconds.
func expiryLeft(props *codec.Properties, left time.Duration) *codec.Properties {
	p := *props
	secs := uint32(min((left+time.Second-1)/time.Second, math.MaxUint32))
	p.MessageExpiry = &secs
	return &p
}

func expiredError(o *pubOp) error {
	return fmt.Errorf("%w: publish to %s waited longer than its Message Expiry Interval of %d s", ErrExpired, o.pkt.Topic, *o.pkt.Properties.MessageExpiry)
}

// cancel reacts to an op's ctx ending: withdraw it if it was never written,
// or report that its outcome is unknown.
func (s *session) cancel(o *op) {
	if o.done() {
		return
	}
	if s.withdraw(o, withdrawnError(o.ctx, "it was never sent")) {
		return
	}
	if o.state.Load() == opWithdrawn {
		// Withdrawn earlier in this turn (expired, dropped, superseded)
		// and not done yet: with a Store its result waits for the sync
		// that makes its removal durable. It was never sent.
		return
	}
	if !o.finishOnWrite {
		o.finish(fmt.Errorf("%w: %w", ErrOutcomeUnknown, context.Cause(o.ctx)))
	}
	// A claimed QoS 0 publish ends when the writer reports its write.
}

// unsendable ends the flight of a publish the writer could not encode
// (see op.Written): nothing of it was written.
func (s *session) unsendable(o *op, err error) {
	if o.done() {
		return
	}
	inFlight, id := o.inFlight, o.id
	s.settle(o, err, true)
	if inFlight {
		s.endFlight(id)
	}
	s.pump()
	s.checkDrained()
}

// expire reacts to a publish's expiry interval running out: withdraw it if
// it was never written. One already written goes on.
func (s *session) expire(o *pubOp) {
	if !o.done() {
		s.withdraw(&o.op, expiredError(o))
	}
}

// withdraw ends an op that was never written with err, so that it never
// will be. It reports false when the op was already claimed by a writer.
func (s *session) withdraw(o *op, err error) bool {
	if !o.state.CompareAndSwap(opQueued, opWithdrawn) {
		return false
	}
	s.settle(o, err, true) // first: endFlight would forget its record lazily
	if o.inFlight {
		s.endFlight(o.id)
	}
	// Queued publishes are skipped by the queue; a subscribe waiting
	// for a connection is dropped from the list.
	s.waitingCtl = removeCtl(s.waitingCtl, o)
	s.pump()
	s.checkDrained()
	return true
}

// flush starts a Flush: it lists the publishes unfinished now.
func (s *session) flush(w *flushWaiter) {
	// The Flush looks at them until they have their results, and after:
	// none is used again for another publish (see pubOp.release).
	for o := range s.queue.all() {
		if !o.done() {
			o.recyclable = false
			w.ops = append(w.ops, &o.op)
		}
	}
	for o := range s.sentQoS0.all() {
		if !o.done() {
			w.ops = append(w.ops, &o.op)
		}
	}
	for f := range s.flights.all() {
		if f.pub != nil {
			f.pub.recyclable = false
			w.ops = append(w.ops, &f.pub.op)
		}
	}
	s.flushes = append(s.flushes, w)
	s.checkFlushes()
}

// checkFlushes ends the Flush calls whose publishes all have a result.
func (s *session) checkFlushes() {
	s.flushes = slices.DeleteFunc(s.flushes, func(w *flushWaiter) bool {
		for w.next < len(w.ops) && w.ops[w.next].done() {
			w.ops[w.next] = nil
			w.next++
		}
		if w.next < len(w.ops) {
			return false
		}
		close(w.done)
		return true
	})
}

// unflush takes back a Flush whose ctx ended and says how many of its
// publishes have no result yet.
func (s *session) unflush(w *flushWaiter) int {
	i := slices.Index(s.flushes, w)
	if i < 0 {
		return 0 // it ended already
	}
	s.flushes = slices.Delete(s.flushes, i, i+1)
	n := 0
	for _, o := range w.ops[w.next:] {
		if !o.done() {
			n++
		}
	}
	if n == 0 {
		close(w.done)
	}
	return n
}

// endFlight frees a packet identifier.
func (s *session) endFlight(id uint16) {
	f := s.flights.get(id)
	if f == nil {
		return
	}
	s.delFlight(id)
	if f.kind == codec.TypePublish {
		s.probeAnswered(id)
		if f.owed {
			f.owed = false // resend skips it
			s.resendN--
		}
		s.pubInflight--
		s.c.stats.inflight.Store(int64(s.pubInflight))
		s.unstore(&f.pub.op, pubAcked)
		f.pub.inFlight = false
		if s.settled == nil {
			s.settled = new(idSet)
		}
		s.settled.add(id)
	} else {
		if f.ctl != nil {
			f.ctl.inFlight = false
		}
		if p := s.ctlProbeOut(); p != nil && p.f == f {
			s.endCtlProbe() // what it held back goes at the next pump
		}
	}
}

// removeCtl removes o from list if it is there.
func removeCtl(list []*ctlOp, o *op) []*ctlOp {
	for i, c := range list {
		if &c.op == o {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}

// acceptControl takes a Subscribe or Unsubscribe.
func (s *session) acceptControl(o *ctlOp) {
	if o.done() {
		return
	}
	if s.phase != running {
		o.finish(errDraining)
		return
	}
	if s.cur == nil {
		s.waitingCtl = append(s.waitingCtl, o)
		return
	}
	s.sendControl(o)
}

// sendControl gives a Subscribe or Unsubscribe a packet identifier and
// sends it.
func (s *session) sendControl(o *ctlOp) {
	if o.done() || o.state.Load() == opWithdrawn {
		return
	}
	if s.ctlProbeOut() != nil {
		s.waitingCtl = append(s.waitingCtl, o) // until the one sent alone is answered
		return
	}
	id, ok := s.allocID()
	if !ok {
		o.finish(errIDsExhausted)
		return
	}
	var f *flight
	if o.subs != nil {
		f = &flight{kind: codec.TypeSubscribe, ctl: o, pkt: s.withSubID(subscribePacket(id, o.subs), o.subID)}
	} else {
		f = &flight{kind: codec.TypeUnsubscribe, ctl: o, pkt: &codec.Unsubscribe{PacketID: id, Filters: o.filters}}
	}
	if n, ok := s.fitsPacket(f.pkt); !ok {
		o.finish(fmt.Errorf("%w: the %s is %d bytes on the wire, more than the broker's Maximum Packet Size of %d [MQTT-3.2.2-15]; send fewer filters at a time",
			ErrInvalidMessage, f.pkt.Type(), n, s.maxPacket))
		return
	}
	s.seq++
	f.seq = s.seq
	o.id, o.inFlight = id, true
	s.putFlight(id, f)
	s.sendCtl(f)
}

func subscribePacket(id uint16, subs []Subscription) *codec.Subscribe {
	p := &codec.Subscribe{PacketID: id, Subscriptions: make([]codec.Subscription, len(subs))}
	for i, sub := range subs {
		p.Subscriptions[i] = codec.Subscription{Filter: sub.Filter, QoS: sub.QoS, NoLocal: sub.NoLocal,
			RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling}
	}
	return p
}

// resubscribe sends everything the client is subscribed to again, after the
// broker lost the session: up to resubscribeBatch filters per SUBSCRIBE,
// fewer when that would exceed the broker's Maximum Packet Size. A filter
// that does not fit alone is left out, and said so. maybeKept: the broker
// may still have them (the session it calls present is unproven), so under
// MQTT 5 retained messages are asked for only where a subscription is new
// (Retain Handling 1 where the application asked for 0). Filters in
// covered are left out: a re-subscription still in flight from before
// makes them (see brokerLostSession).
func (s *session) resubscribe(maybeKept bool, covered map[string]bool) {
	packet := func(subs []Subscription) *codec.Subscribe {
		p := s.resubscribePacket(subs)
		if maybeKept && s.cfg.version == codec.V5 {
			for i := range p.Subscriptions {
				if p.Subscriptions[i].RetainHandling == 0 {
					p.Subscriptions[i].RetainHandling = 1
				}
			}
		}
		return p
	}
	subs := s.subs
	if len(covered) > 0 {
		subs = slices.DeleteFunc(slices.Clone(subs), func(sub Subscription) bool { return covered[sub.Filter] })
	}
	for start := 0; start < len(subs); {
		n := s.sameSubID(subs[start:], min(resubscribeBatch, len(subs)-start))
		pkt := packet(subs[start : start+n])
		for size, ok := s.fitsPacket(pkt); !ok; size, ok = s.fitsPacket(pkt) {
			if n == 1 {
				s.resubscribeFailed([]string{subs[start].Filter}, fmt.Errorf("%w: the SUBSCRIBE is %d bytes on the wire, more than the broker's Maximum Packet Size of %d [MQTT-3.2.2-15]",
					ErrInvalidMessage, size, s.maxPacket))
				break
			}
			n /= 2
			pkt = packet(subs[start : start+n])
		}
		start += n
		if _, ok := s.fitsPacket(pkt); !ok {
			continue
		}
		id, ok := s.allocID()
		if !ok {
			var left []string
			for _, sub := range subs[start-n:] {
				left = append(left, sub.Filter)
			}
			s.resubscribeFailed(left, errIDsExhausted)
			return
		}
		pkt.PacketID = id
		s.seq++
		f := &flight{seq: s.seq, kind: codec.TypeSubscribe, pkt: pkt}
		s.putFlight(id, f)
		s.sendCtl(f)
	}
}

// errIDsExhausted is the error of a request that found every packet
// identifier in use.
var errIDsExhausted = errors.New("mqtt: all 65535 packet identifiers are in use; try again later")

// resubscribeFailed tells the application, with a ResubscribeFailed event,
// and the Logger that the client's own re-subscription of filters after a
// lost session did not take, and why (err).
func (s *session) resubscribeFailed(filters []string, err error) {
	s.cfg.Logger.Warn("mqtt: the broker does not deliver for these filters until the application subscribes again",
		"filters", filters, "err", err)
	var server string
	if s.cur != nil {
		server = s.cur.Server()
	}
	s.c.emit(Event{Kind: ResubscribeFailed, Server: server, Err: &resubscribeError{filters: filters, err: err}})
}

// controlID is the packet identifier of a SUBSCRIBE or UNSUBSCRIBE.
func controlID(p codec.Packet) uint16 {
	switch p := p.(type) {
	case *codec.Subscribe:
		return p.PacketID
	case *codec.Unsubscribe:
		return p.PacketID
	}
	panic(fmt.Sprintf("mqtt: internal error: %T is not a SUBSCRIBE or UNSUBSCRIBE", p))
}

// fitsPacket reports whether p is within the broker's Maximum Packet Size,
// and its size on the wire.
func (s *session) fitsPacket(p codec.Packet) (int, bool) {
	if s.maxPacket == 0 {
		return 0, true
	}
	n, err := codec.Size(p, s.cfg.version)
	return n, err == nil && n <= s.maxPacket
}

// subscribed records granted subscriptions, replacing any with the same
// filter [MQTT-3.8.4-3].
func (s *session) subscribed(sub Subscription) {
	for i := range s.subs {
		if s.subs[i].Filter == sub.Filter {
			s.subs[i] = sub
			return
		}
	}
	s.subs = append(s.subs, sub)
}

// unsubscribed forgets a filter.
func (s *session) unsubscribed(filter string) {
	delete(s.subIDOf, filter)
	for i := range s.subs {
		if s.subs[i].Filter == filter {
			s.subs = append(s.subs[:i], s.subs[i+1:]...)
			return
		}
	}
}

// onPuback ends a QoS 1 publish, or a QoS 2 publish the broker took as
// QoS 1 (see pubackEnds).
func (s *session) onPuback(p *codec.Puback) {
	f := s.flights.get(p.PacketID)
	if f == nil || f.kind != codec.TypePublish || !pubackEnds(f) {
		if s.lateAck(p.PacketID, codec.TypePuback) {
			return
		}
		s.protocolError(codec.ProtocolError, codec.TypePuback, "PUBACK for packet identifier %d, which no QoS 1 publish (nor a QoS 2 publish before its PUBREC) uses", p.PacketID)
		return
	}
	o := f.pub
	if o.pkt.QoS == ExactlyOnce && !s.downgradeSaid {
		s.downgradeSaid = true
		s.cfg.Logger.Warn("mqtt: the broker answered a QoS 2 PUBLISH with PUBACK: it takes QoS 2 messages as QoS 1 (at least once, not exactly once)",
			"topic", o.pkt.Topic, "id", p.PacketID)
	}
	err := ackError(&o.pkt, p.ReasonCode, p.Properties)
	s.settle(&o.op, err, err != nil)
	s.endFlight(p.PacketID)
	s.pump()
	s.checkDrained()
	if err == nil {
		s.letGo(o)
	}
}

// pubackEnds reports whether a PUBACK ends f, a publish's flight: one of
// QoS 1, or one of QoS 2 that has had no PUBREC. A broker that does not
// do QoS 2 may take such a message as QoS 1 and answer PUBACK (RabbitMQ
// does, with MQTT 3.1.1, which has no Maximum QoS to announce it): it
// has the message, and will not have it from this client again. Taken as
// a protocol error, the connection would end, the message go again on
// the next, and so on forever, with everything behind it waiting.
func pubackEnds(f *flight) bool {
	switch f.pub.pkt.QoS {
	case AtLeastOnce:
		return true
	case ExactlyOnce:
		return !f.relNeeded
	}
	return false
}

// onPubrec moves a QoS 2 publish to its second half: PUBREL.
func (s *session) onPubrec(p *codec.Pubrec) {
	f := s.flights.get(p.PacketID)
	if s.unknownSession && f != nil && f.kind == codec.TypePublish && !f.relNeeded &&
		(f.pub.pkt.QoS == AtLeastOnce || p.ReasonCode == codec.PacketIdentifierInUse) {
		if !s.movePastStale(f, p) {
			return
		}
		f = nil // moved: the identifier is the broker's flow's alone
	}
	if f == nil || f.kind != codec.TypePublish || f.pub.pkt.QoS != ExactlyOnce {
		if s.lateAck(p.PacketID, codec.TypePubrec) {
			return
		}
		if f == nil && s.unknownSession {
			s.releaseForeign(p.PacketID)
			return
		}
		s.protocolError(codec.ProtocolError, codec.TypePubrec, "PUBREC for packet identifier %d, which no QoS 2 publish uses", p.PacketID)
		return
	}
	if p.ReasonCode.IsError() {
		// A refusal ends the flow here: no PUBREL [MQTT-4.4.0-2].
		s.settle(&f.pub.op, ackError(&f.pub.pkt, p.ReasonCode, p.Properties), true)
		s.endFlight(p.PacketID)
		s.pump()
		s.checkDrained()
		return
	}
	if !f.relNeeded {
		// Written once: a writer may still be encoding an earlier send.
		f.relNeeded, f.relMoves = true, s.moves
		// PUBRELs are sent again in the order the PUBRECs came
		// [MQTT-4.6.0-4] (see flightsInOrder).
		s.seq++
		f.relSeq = s.seq
		f.pub.rel = codec.Pubrel{PacketID: p.PacketID}
		if err := s.storeProgress(f.pub, pubReleased); err != nil {
			// Unrecorded, a restart would send the PUBLISH again after
			// this PUBREL: no PUBREL now; the broker's PUBREC comes again.
			f.relNeeded = false
			s.storeFailed(err)
			return
		}
	}
	// A repeated PUBREC (after a reconnect) gets PUBREL again.
	s.sendPubrel(f.pub)
	if s.probeAnswered(p.PacketID) {
		s.pump() // what waited behind the probe
	}
}

// maxStaleMoves bounds how many times one publish moves to another
// identifier because the broker holds a flow of its own under the one it
// has (see movePastStale) before it ends with the broker's refusal: a
// broker that answers every PUBLISH so would otherwise have it sent for
// ever.
const maxStaleMoves = 3

// maxBrokerHeld bounds how many identifiers the session keeps out of use
// because the broker holds flows it does not know under them.
const maxBrokerHeld = 1024

// heldID is an identifier under which the broker holds a QoS 2 flow this
// session does not know (see releaseForeign): it is not handed out until
// the broker has ended that flow.
type heldID struct {
	usedOn int // the connection (connectedN) on which a PUBLISH of ours went under it
	rels   int // PUBRELs sent for it that no PUBCOMP answered yet
}

// keepOutOfUse keeps id out of use (see heldID), within maxBrokerHeld; nil when
// the bound is reached.
func (s *session) keepOutOfUse(id uint16) *heldID {
	if h := s.brokerHeld[id]; h != nil {
		return h
	}
	if len(s.brokerHeld) >= maxBrokerHeld {
		return nil
	}
	if s.brokerHeld == nil {
		s.brokerHeld = make(map[uint16]*heldID)
	}
	h := &heldID{}
	s.brokerHeld[id] = h
	return h
}

// movePastStale answers a PUBREC that does not belong to f's publish: one
// to a QoS 1 PUBLISH, or, from an MQTT 5 broker, one with Packet
// Identifier in use (0x91) to a QoS 2 PUBLISH. The broker holds a QoS 2
// flow of its own under that identifier, waiting for a PUBREL, and did
// not take the message (see releaseForeign for whose flow that is).
// mochi-mqtt answers so, to a QoS 1 PUBLISH too. The broker refused the
// identifier, not the message: the message goes as a new PUBLISH (DUP 0:
// the broker never took it) under another identifier, as MQTT 5 has it
// after a refusal [MQTT-4.4.0-2], and the identifier it leaves stays out
// of use until the broker's flow ends; this connection sends no PUBREL
// for it, which here would answer a QoS 1 PUBLISH, or follow a refusal.
// After maxStaleMoves the publish ends with the broker's refusal. It
// reports whether f moved.
func (s *session) movePastStale(f *flight, p *codec.Pubrec) bool {
	o := f.pub
	if s.probeAnswered(p.PacketID) {
		defer s.pump() // what waited behind the probe
	}
	if h := s.keepOutOfUse(p.PacketID); h != nil {
		h.usedOn = s.connectedN
	}
	id, ok := s.allocID()
	if f.moves >= maxStaleMoves || !ok {
		err := fmt.Errorf("%w (the broker answered its PUBLISH with PUBREC under %d identifiers in turn: it holds flows of its own under them)",
			ackError(&o.pkt, codec.PacketIdentifierInUse, p.Properties), f.moves+1)
		s.settle(&o.op, err, true)
		s.endFlight(p.PacketID)
		s.pump()
		s.checkDrained()
		return false
	}
	s.cfg.Logger.Info("mqtt: the broker holds a QoS 2 flow of its own under the identifier of a publish; sending it again under another",
		"topic", o.pkt.Topic, "id", p.PacketID, "new_id", id, "qos", int(o.pkt.QoS))
	f.moves++
	s.delFlight(p.PacketID)
	s.putFlight(id, f)
	o.id = id // o.pkt keeps the identifier it was first sent under: see sentAgain
	if o.pkt.QoS == ExactlyOnce {
		s.storeProgress(o, pubQoS2Sent) // under the new identifier, before it goes
	} else {
		s.storeProgress(o, pubQoS1Sent)
	}
	pkt := sentAgain(o)
	pkt.Dup = false
	s.sendPublish(o, &pkt)
	return true
}

// releaseForeign answers a PUBREC for an identifier no flow of this
// session uses. The broker holds a QoS 2 flow under it, waiting for the
// PUBREL, that this session does not know: one an earlier client with this
// ClientID left unfinished, in a session a Client without that client's
// Config.Store resumed (conformance D5). mochi-mqtt sends such a PUBREC
// again on every connection; taken for a protocol error, it ended the
// connection, and the next met it again: a client that restarted after a
// crash in the middle of a QoS 2 publish reconnected for ever, hundreds of
// times a second. The PUBREL ends that flow (MQTT 5: with Packet
// Identifier not found, 0x92, as the specification has it for a session
// state that does not match), unless a PUBLISH of ours went under the
// identifier on this connection (see movePastStale): then the next
// connection does it. The identifier stays out of use until the broker's
// PUBCOMP, if one comes (mochi sends none for 0x92).
func (s *session) releaseForeign(id uint16) {
	h := s.keepOutOfUse(id)
	if h != nil && h.usedOn == s.connectedN {
		return
	}
	if h != nil {
		h.rels++
	}
	rel := &codec.Pubrel{PacketID: id}
	if s.cfg.version == codec.V5 {
		rel.ReasonCode = codec.PacketIdentifierNotFound
	}
	s.cfg.Logger.Info("mqtt: the broker holds a QoS 2 flow this session does not know (an earlier client's with this ClientID, whose session was resumed without its Config.Store); ending it with PUBREL",
		"id", id)
	s.send(conn.Frame{Packet: rel})
}

// foreignComplete takes a PUBCOMP for an identifier no flow of this
// session uses: the answer to a PUBREL of releaseForeign, which frees the
// identifier. It reports false for any other.
func (s *session) foreignComplete(id uint16) bool {
	h := s.brokerHeld[id]
	if h == nil || h.rels == 0 {
		return false
	}
	if h.rels--; h.rels == 0 && h.usedOn != s.connectedN {
		delete(s.brokerHeld, id)
	}
	return true
}

// sentAgain is a copy of o's PUBLISH to send again: under o's identifier
// now (o.pkt keeps the one it was first sent under, which a writer may
// still be reading), with what is left of its Message Expiry Interval:
// at least 1 s, since it was sent before, the message goes again even if
// its interval ran out meanwhile.
func sentAgain(o *pubOp) codec.Publish {
	p := o.pkt
	p.PacketID = o.id
	if !o.expires.IsZero() {
		p.Properties = expiryLeft(p.Properties, max(time.Until(o.expires), time.Second))
	}
	return p
}

// onPubcomp ends a QoS 2 publish.
func (s *session) onPubcomp(p *codec.Pubcomp) {
	f := s.flights.get(p.PacketID)
	if f == nil || f.kind != codec.TypePublish || !f.relNeeded {
		if s.lateAck(p.PacketID, codec.TypePubcomp) || f == nil && s.foreignComplete(p.PacketID) {
			return
		}
		if s.unknownSession {
			// A session the broker kept holds flows this one does not
			// know; mochi-mqtt sends a PUBCOMP it kept again as the session
			// resumes, for a flow the client finished elsewhere since.
			s.cfg.Logger.Debug("mqtt: ignoring a PUBCOMP of a flow of the session the broker kept", "id", p.PacketID)
			return
		}
		s.protocolError(codec.ProtocolError, codec.TypePubcomp, "PUBCOMP for packet identifier %d, which has no PUBREL outstanding", p.PacketID)
		return
	}
	s.endFlight(p.PacketID)
	// A successful PUBREC already meant the broker took the message on
	// (section 4.3.3); a PUBCOMP with 0x92 Packet Identifier Not Found comes
	// when a PUBCOMP was lost with a connection and the PUBREL sent again
	// finds the flow already ended. Either way the message is delivered,
	// unless the PUBREC came from another server than this PUBCOMP: a
	// broker that shares no sessions with it (Mosquitto among them)
	// completes a PUBREL it knows nothing of, and the message waits at the
	// other one for a PUBREL that now goes nowhere (a broker that delivers
	// on PUBREL holds it back). In a cluster it was delivered; the client
	// cannot tell which.
	var err error
	switch {
	case f.relMoves != s.moves:
		err = fmt.Errorf("%w: publish to %s: the broker acknowledged receipt (PUBREC), then the client went on at another server, which completed the flow; unless the two servers share their sessions, the message waits at the first for a PUBREL",
			ErrOutcomeUnknown, f.pub.pkt.Topic)
	case f.sentBeforeLoss:
		err = fmt.Errorf("%w: publish to %s: delivered, maybe twice: the broker lost the session while the message was in flight, so it went again as a new message, and a broker that delivers QoS 2 messages on PUBLISH (rather than on PUBREL) delivered the first copy too",
			ErrOutcomeUnknown, f.pub.pkt.Topic)
	}
	f.pub.finish(err)
	s.pump()
	s.checkDrained()
	s.letGo(f.pub)
}

// letGo is the session's last use of o, a publish acknowledged: a
// recyclable one whose watchers never fired (none will send a request
// about it) has its session's reference let go (see pubOp.release).
func (s *session) letGo(o *pubOp) {
	if o.recyclable && o.quiet {
		o.recyclable = false
		o.release()
	}
}

// idSet is a set of packet identifiers: 8 KiB, where a map that a busy
// connection fills with every identifier takes a megabyte and a hash per
// acknowledgement.
type idSet [1 << 16 / 64]uint64

func (s *idSet) add(id uint16)      { s[id/64] |= 1 << (id % 64) }
func (s *idSet) has(id uint16) bool { return s[id/64]&(1<<(id%64)) != 0 }

// lateAck reports whether an acknowledgement that matches no flight is a
// late duplicate for a flow that already ended on this connection, which is
// ignored. Brokers send those after a reconnect when they re-send a stored
// acknowledgement as well as answering the client's re-sent packet
// (mochi-mqtt v2.7 does, for PUBCOMP). An identifier never used on this
// connection is a protocol error.
func (s *session) lateAck(id uint16, t codec.PacketType) bool {
	if s.settled == nil || !s.settled.has(id) {
		return false
	}
	s.cfg.Logger.Debug("mqtt: ignoring a late duplicate acknowledgement", "packet", t.String(), "id", id)
	return true
}

// ackError turns a v5 acknowledgement's reason code into the publish's result.
func ackError(p *codec.Publish, code codec.ReasonCode, props *codec.Properties) error {
	if !code.IsError() {
		return nil
	}
	e := &PublishError{Topic: p.Topic, ReasonCode: code}
	if props != nil {
		e.ReasonString = props.ReasonString
	}
	return e
}

// onSuback completes a Subscribe (or a re-subscribe).
func (s *session) onSuback(p *codec.Suback) {
	f := s.flights.get(p.PacketID)
	if f == nil || f.kind != codec.TypeSubscribe {
		s.protocolError(codec.ProtocolError, codec.TypeSuback, "SUBACK for packet identifier %d, which no SUBSCRIBE uses", p.PacketID)
		return
	}
	sent := f.pkt.(*codec.Subscribe).Subscriptions
	if len(p.ReasonCodes) != len(sent) {
		s.protocolError(codec.ProtocolError, codec.TypeSuback, "SUBACK has %d reason codes for %d filters [MQTT-3.8.4-6]", len(p.ReasonCodes), len(sent))
		return
	}
	if s.identifierInUse(f, p.PacketID, p.ReasonCodes) {
		return
	}
	s.endFlight(p.PacketID)
	var refused map[string]codec.ReasonCode
	for i, code := range p.ReasonCodes {
		cs := sent[i]
		if code.IsError() {
			if refused == nil {
				refused = make(map[string]codec.ReasonCode)
			}
			refused[cs.Filter] = code
			continue
		}
		s.subscribed(Subscription{Filter: cs.Filter, QoS: cs.QoS, NoLocal: cs.NoLocal,
			RetainAsPublished: cs.RetainAsPublished, RetainHandling: cs.RetainHandling})
		s.noteSubID(cs.Filter, f.pkt.(*codec.Subscribe).Properties)
	}
	var err error
	if refused != nil {
		e := &SubscribeError{Refused: refused}
		if p.Properties != nil {
			e.ReasonString = p.Properties.ReasonString
		}
		err = e
		if f.ctl == nil {
			s.resubscribeFailed(slices.Sorted(maps.Keys(refused)), err)
		}
	}
	if f.ctl != nil {
		codes := slices.Clone(p.ReasonCodes)
		f.ctl.granted.Store(&codes)
		f.ctl.finish(err)
	}
	s.pump() // what waited for it, if it was sent alone
	s.checkDrained()
}

// identifierInUse sends the SUBSCRIBE or UNSUBSCRIBE of f again under
// another identifier when the broker answered every filter of it, under
// id, with Packet Identifier in use, and reports whether it did. Client
// and broker choose their identifiers independently (section 2.2.1), but
// mochi-mqtt v2.7 refuses a SUBSCRIBE or UNSUBSCRIBE whose identifier
// equals one of its own messages in flight to the client, also at MQTT
// 3.1.1; after a reconnect, before its messages sent again arrive, the
// client cannot know which those are (see allocID). Nothing took effect,
// so the request goes again, at most maxStaleMoves times.
func (s *session) identifierInUse(f *flight, id uint16, codes []codec.ReasonCode) bool {
	if f.moves >= maxStaleMoves || len(codes) == 0 || slices.ContainsFunc(codes, func(c codec.ReasonCode) bool { return c != codec.PacketIdentifierInUse }) {
		return false
	}
	s.renumber(f)
	if controlID(f.pkt) == id {
		return false // no identifier free: the refusal stands
	}
	f.moves++
	s.cfg.Logger.Info("mqtt: the broker holds the identifier of a request for a message of its own; sending it again under another",
		"packet", f.pkt.Type().String(), "id", id, "new_id", controlID(f.pkt))
	s.sendCtl(f)
	return true
}

// onUnsuback completes an Unsubscribe.
func (s *session) onUnsuback(p *codec.Unsuback) {
	f := s.flights.get(p.PacketID)
	if f == nil || f.kind != codec.TypeUnsubscribe {
		s.protocolError(codec.ProtocolError, codec.TypeUnsuback, "UNSUBACK for packet identifier %d, which no UNSUBSCRIBE uses", p.PacketID)
		return
	}
	filters := f.pkt.(*codec.Unsubscribe).Filters
	if s.cfg.version == codec.V5 && len(p.ReasonCodes) != len(filters) {
		s.protocolError(codec.ProtocolError, codec.TypeUnsuback, "UNSUBACK has %d reason codes for %d filters [MQTT-3.11.3-1]", len(p.ReasonCodes), len(filters))
		return
	}
	if s.identifierInUse(f, p.PacketID, p.ReasonCodes) {
		return
	}
	s.endFlight(p.PacketID)
	var refused map[string]codec.ReasonCode
	for i, filter := range filters {
		if i < len(p.ReasonCodes) && p.ReasonCodes[i].IsError() {
			if refused == nil {
				refused = make(map[string]codec.ReasonCode)
			}
			refused[filter] = p.ReasonCodes[i]
			continue
		}
		s.unsubscribed(filter)
	}
	var err error
	if refused != nil {
		err = &SubscribeError{Refused: refused}
	}
	f.ctl.finish(err)
	s.pump() // what waited for it, if it was sent alone
	s.checkDrained()
}

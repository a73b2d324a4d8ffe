package mqtt_test

// The fake broker of the model test (model_test.go): an MQTT broker over
// net.Pipe whose every decision (when to answer, in which order, with which
// limits, when to cut) is the generator's, and which checks every frame the
// client sends against what the protocol and the client's promises allow.
//
// Each connection has a reader goroutine, which decodes the client's frames
// into a list (and answers PINGREQ, so that keepalive never depends on the
// test's pace), and a writer goroutine, which writes what the model queued.
// Everything else, the broker's session included, belongs to the test
// goroutine: it takes the frames read so far after synctest.Wait, so the
// model always sees a quiescent client.

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/robustmqtt/mqtt/codec"
)

// broker is the fake broker's state.
type broker struct {
	w      *world
	mu     sync.Mutex // guards dialed and down, shared with the client's Dial
	dialed []*bconn
	down   bool

	// Test goroutine only.
	conns      []*bconn
	cur        *bconn            // the connection that got the latest successful CONNACK, while it lives
	lastTag    map[uint16]string // the message the client last sent under each identifier, in any session
	limitsSeen []limits          // every CONNACK's limits
	sess       *bsess            // nil: no session
	n          int
	sessN      int
}

// bsess is the broker's session for the client.
type bsess struct {
	n      int
	in     map[uint16]*inFlow  // the client's QoS 1/2 publishes
	out    map[uint16]*outFlow // the broker's QoS 1/2 publishes to the client
	outSeq uint64
	inSeq  uint64            // orders the client's flows: first PUBLISH, PUBREC
	first  map[string]uint64 // when each of the client's messages first came in this session
	got2   map[string]bool   // QoS 2 messages accepted (PUBREC) in this session
}

func newSess(n int) *bsess {
	return &bsess{n: n, in: map[uint16]*inFlow{}, out: map[uint16]*outFlow{}, got2: map[string]bool{}, first: map[string]uint64{}}
}

// firstSeq is when tag first came in this session (now, if it did not):
// the order a resumed session re-sends in, even for a message the broker
// acknowledged once and gets again (the ack was lost, or a restarted
// client had not synced it).
func (s *bsess) firstSeq(tag string) uint64 {
	if _, ok := s.first[tag]; !ok {
		s.inSeq++
		s.first[tag] = s.inSeq
	}
	return s.first[tag]
}

// The stages of a client's publish at the broker.
const (
	inRecv = iota // QoS 1: PUBACK owed; QoS 2: PUBREC owed
	inRel         // QoS 2: PUBREC sent, waiting for PUBREL
	inComp        // QoS 2: PUBREL came, PUBCOMP owed
)

type inFlow struct {
	tag    string
	qos    codec.QoS
	stage  int
	owedOn *bconn // the connection the broker owes its answer on; nil: nothing owed now
	inst   *instance
	seq    uint64 // when its PUBLISH first came, in the session
	// relSeq is when the broker first read a PUBREL for it: the order in
	// which the client got the PUBRECs, as far as the broker can tell (a
	// PUBREC it sent may reach the client later, or never); 0: not yet.
	relSeq  uint64
	relInst *instance // the client instance that sent that PUBREL
}

// The stages of a broker's publish to the client.
const (
	outSent = iota // waiting for PUBACK / PUBREC
	outRec         // PUBREC came, PUBREL owed
	outRel         // PUBREL sent, waiting for PUBCOMP
)

type outFlow struct {
	id    uint16
	seq   uint64
	tag   string
	qos   codec.QoS
	stage int
	pkt   codec.Publish
}

// dial is the client's Config.Dial: a pipe whose server end goes to the
// broker.
func (b *broker) dial(inst *instance) (net.Conn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down || inst.crashed.Load() {
		return nil, errors.New("model broker: connection refused")
	}
	cl, sv := net.Pipe()
	b.n++
	bc := &bconn{n: b.n, inst: inst, nc: sv, ver: inst.ver, kick: make(chan struct{}, 1), done: make(chan struct{})}
	bc.splitW = inst.w.d["split"] && inst.w.rngDial.IntN(3) == 0
	bc.splitR = inst.w.d["split"] && inst.w.rngDial.IntN(3) == 0
	bc.ping, _ = (&codec.Pingresp{}).AppendTo(nil, inst.ver)
	b.dialed = append(b.dialed, bc)
	bc.start()
	return clientEnd{Conn: cl, w: b.w, ver: inst.ver}, nil
}

// clientEnd is the client's end of a model connection. A write that fails
// because the broker closed its end may have carried PUBLISHes: on a real
// link some of its bytes may have left, so the client counts them as
// maybe sent (DUP, and no expiry once sent). They are noted (world.unsent)
// for the checks that ask what was sent.
type clientEnd struct {
	net.Conn
	w   *world
	ver byte
}

func (c clientEnd) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err == nil {
		return n, nil
	}
	c.w.unsentMu.Lock()
	defer c.w.unsentMu.Unlock()
	for rest := b[n:]; len(rest) > 0; {
		p, size, derr := codec.Decode(rest, c.ver, 0)
		if derr != nil || size == 0 {
			break // the rest of a frame begun in an earlier write
		}
		if pub, ok := p.(*codec.Publish); ok {
			if c.w.unsent == nil {
				c.w.unsent = map[string]bool{}
			}
			c.w.unsent[tagOf(pub.Payload)] = true
			if pub.QoS == codec.QoS2 {
				c.w.noteMaybeQoS2Locked(pub.PacketID, tagOf(pub.Payload))
			}
		}
		rest = rest[size:]
	}
	return n, err
}

// noteMaybeQoS2 notes that a client may have sent the QoS 2 message tag
// under the packet identifier id (see world.maybeQoS2).
func (w *world) noteMaybeQoS2(id uint16, tag string) {
	w.unsentMu.Lock()
	defer w.unsentMu.Unlock()
	w.noteMaybeQoS2Locked(id, tag)
}

func (w *world) noteMaybeQoS2Locked(id uint16, tag string) {
	if w.maybeQoS2 == nil {
		w.maybeQoS2 = map[uint16]string{}
	}
	w.maybeQoS2[id] = tag
}

// unseenQoS2 is the QoS 2 message a client may have sent under id that
// the broker never read, "" if none.
func (w *world) unseenQoS2(id uint16) string {
	w.unsentMu.Lock()
	tag := w.maybeQoS2[id]
	w.unsentMu.Unlock()
	if m := w.msgs[tag]; m != nil && !m.seen {
		return tag
	}
	return ""
}

// triedToSend reports whether a write that carried the message tag failed.
func (w *world) triedToSend(tag string) bool {
	w.unsentMu.Lock()
	defer w.unsentMu.Unlock()
	return w.unsent[tag]
}

func (b *broker) setDown(down bool) {
	b.mu.Lock()
	b.down = down
	b.mu.Unlock()
}

// send encodes p and queues it on bc.
func (b *broker) send(bc *bconn, p codec.Packet) {
	raw, err := p.AppendTo(nil, bc.ver)
	if err != nil {
		b.w.violate("model broker: cannot encode %T %+v: %v", p, p, err)
		return
	}
	b.w.logf("  broker -> c%d: %s", bc.n, describe(p))
	bc.write(raw)
}

// live reports whether bc is the connection the broker talks on.
func (b *broker) live(bc *bconn) bool { return bc != nil && bc == b.cur && !bc.dead && !bc.hole.Load() }

// sendPublish sends one of the broker's messages, with a topic alias when
// the client allows them: the first time a topic goes on a connection it
// sets one, later the topic is sent empty [MQTT-3.3.2-12]. Aliases live
// for one connection: a re-sent message starts again.
func (b *broker) sendPublish(bc *bconn, p codec.Publish) {
	max := uint16(0)
	if pr := bc.connect.Properties; bc.ver == codec.V5 && pr != nil && pr.TopicAliasMaximum != nil {
		max = *pr.TopicAliasMaximum
	}
	if max > 0 && b.w.rng.IntN(4) != 0 {
		props := codec.Properties{}
		if p.Properties != nil {
			props = *p.Properties
		}
		if a, ok := bc.aliases[p.Topic]; ok {
			props.TopicAlias = &a
			p.Topic = ""
		} else if len(bc.aliases) < int(max) {
			if bc.aliases == nil {
				bc.aliases = map[string]uint16{}
			}
			a := uint16(len(bc.aliases) + 1)
			bc.aliases[p.Topic] = a
			props.TopicAlias = &a
		}
		p.Properties = &props
	}
	b.send(bc, &p)
}

// process takes the new connections and every frame read since the last
// call, in order, and checks them.
func (b *broker) process() {
	b.mu.Lock()
	dialed := b.dialed
	b.dialed = nil
	b.mu.Unlock()
	for _, bc := range dialed {
		b.w.logf("  c%d: dialed by client %d (split writes %v, split reads %v)", bc.n, bc.inst.n, bc.splitW, bc.splitR)
		b.conns = append(b.conns, bc)
	}
	for _, bc := range b.conns {
		if bc.dead && bc.rx == nil {
			continue
		}
		rx, ended := bc.take()
		for _, f := range rx {
			b.receive(bc, f)
		}
		if ended != nil && !bc.dead {
			b.w.logf("  c%d: ended (%v)", bc.n, ended)
			b.ended(bc)
		}
	}
	b.conns = slices.DeleteFunc(b.conns, func(bc *bconn) bool { return bc.dead })
	if b.live(b.cur) {
		b.pumpResend(b.cur)
	}
}

// ended forgets what was owed on a connection that is gone.
func (b *broker) ended(bc *bconn) {
	bc.dead = true
	bc.close()
	if b.cur == bc {
		b.cur = nil
	}
	if b.sess != nil {
		for _, f := range b.sess.in {
			if f.owedOn == bc {
				f.owedOn = nil
			}
		}
	}
}

// cut closes bc now.
func (b *broker) cut(bc *bconn) {
	b.w.logf("  broker cuts c%d", bc.n)
	bc.brokerEnd = time.Now()
	b.ended(bc)
}

// receive checks one frame from the client and updates the broker.
func (b *broker) receive(bc *bconn, f rxFrame) {
	w := b.w
	if f.err != nil {
		w.violate("c%d: the client sent a frame that does not decode: %v", bc.n, f.err)
		return
	}
	p := f.p
	w.logf("  c%d -> broker: %s (%d bytes)", bc.n, describe(p), f.size)
	if bc.sawDisc {
		w.violate("c%d: the client sent %s after its DISCONNECT [MQTT-3.14.4-1]", bc.n, p.Type())
		return
	}
	if _, ok := p.(*codec.Connect); !ok && bc.connect == nil {
		w.violate("c%d: the first frame is %s, not CONNECT [MQTT-3.1.0-1]", bc.n, p.Type())
		return
	}
	if bc.up && bc.lim.maxPacket > 0 && f.size > bc.lim.maxPacket {
		w.violate("c%d: the client sent a %d-byte %s; CONNACK's Maximum Packet Size is %d [MQTT-3.2.2-15]", bc.n, f.size, p.Type(), bc.lim.maxPacket)
		return
	}
	switch p := p.(type) {
	case *codec.Connect:
		if bc.connect != nil {
			w.violate("c%d: a second CONNECT [MQTT-3.1.0-2]", bc.n)
			return
		}
		bc.connect = p
		if p.CleanStart != bc.inst.cfg.CleanStart || p.ClientID != bc.inst.cfg.ClientID {
			w.violate("c%d: CONNECT %+v does not match the config", bc.n, p)
		}
		return
	case *codec.Disconnect:
		bc.sawDisc = true
		switch {
		case p.ReasonCode != codec.NormalDisconnection && codec.DisconnectReason(p.ReasonCode) != p.ReasonCode:
			w.violate("c%d: DISCONNECT with reason %s, not a DISCONNECT reason code [MQTT-3.14.2-1]", bc.n, p.ReasonCode)
		case p.ReasonCode.IsError():
			// The model's broker keeps the protocol: a client that
			// finds fault with it is wrong (or the model is).
			w.violate("c%d: the client disconnected a broker that kept the protocol, with reason %s", bc.n, p.ReasonCode)
		}
		return
	case *codec.Pingreq:
		return
	}
	if !bc.up {
		w.violate("c%d: the client sent %s before CONNACK", bc.n, p.Type())
		return
	}
	if b.sess == nil {
		w.violate("c%d: internal: a live connection without a session", bc.n)
		return
	}
	switch p := p.(type) {
	case *codec.Publish:
		b.onPublish(bc, p, f.at)
	case *codec.Pubrel:
		b.onPubrel(bc, p)
	case *codec.Puback:
		b.onClientAck(bc, p.PacketID, codec.TypePuback)
	case *codec.Pubrec:
		b.onClientAck(bc, p.PacketID, codec.TypePubrec)
	case *codec.Pubcomp:
		b.onClientAck(bc, p.PacketID, codec.TypePubcomp)
	case *codec.Subscribe:
		filters := make([]string, len(p.Subscriptions))
		for i, s := range p.Subscriptions {
			filters[i] = s.Filter
		}
		b.onControl(bc, p.PacketID, &ctlFlow{sub: p, filters: filters}, f.at)
	case *codec.Unsubscribe:
		b.onControl(bc, p.PacketID, &ctlFlow{unsub: p, filters: p.Filters}, f.at)
	default:
		w.violate("c%d: the client sent %s", bc.n, p.Type())
	}
}

// idInUse says which flow of the client's uses id at the broker, or "".
func (b *broker) idInUse(bc *bconn, id uint16) string {
	// A QoS 1 message of an earlier client instance whose identifier that
	// instance did not sync (by design: it goes again as new after a
	// restart) is not counted: QoS 1 allows it.
	if f := b.sess.in[id]; f != nil && (f.qos == 2 || f.inst == bc.inst) {
		return fmt.Sprintf("publish %s (QoS %d, stage %d)", f.tag, f.qos, f.stage)
	}
	if c := bc.ctl[id]; c != nil {
		return fmt.Sprintf("subscribe/unsubscribe %v", c.filters)
	}
	return ""
}

func (b *broker) onControl(bc *bconn, id uint16, c *ctlFlow, at time.Time) {
	w := b.w
	if u := b.idInUse(bc, id); u != "" {
		w.violate("c%d: the client sent %s with packet identifier %d, in use for %s [MQTT-2.2.1-3]", bc.n, describeCtl(c), id, u)
		return
	}
	for _, f := range c.filters {
		if c.sub != nil {
			w.subSeen[f] = true
		} else {
			w.unsubSeen[f] = true
		}
	}
	for _, f := range c.filters {
		if cs := w.ctlByFilter[f]; cs != nil && (cs.neverSent || cs.refused) {
			w.violate("c%d: the client sent %s for %s after its call ended %v", bc.n, describeCtl(c), f, cs.op.err)
		}
	}
	// The call's own filter comes first (see world.subscribe).
	own := w.ctlByFilter[c.filters[0]]
	if own != nil && own.op.own == c.filters[0] && (len(own.sends) == 0 || own.sends[len(own.sends)-1].bc != bc) {
		own.sends = append(own.sends, sendRec{bc: bc, at: at})
	}
	if own != nil && own.poison && c.sub != nil {
		// Refused: the broker ends the connection instead of answering.
		own.cuts++
		w.logf("  broker refuses SUBSCRIBE %v: cuts c%d (%d times)", c.filters, bc.n, own.cuts)
		b.cut(bc)
		return
	}
	if bc.ctl == nil {
		bc.ctl = map[uint16]*ctlFlow{}
	}
	bc.ctl[id] = c
}

func describeCtl(c *ctlFlow) string {
	if c.sub != nil {
		return "SUBSCRIBE"
	}
	return "UNSUBSCRIBE"
}

func (b *broker) onPublish(bc *bconn, p *codec.Publish, at time.Time) {
	w := b.w
	tag := tagOf(p.Payload)
	m := w.msgs[tag]
	if m == nil {
		w.violate("c%d: PUBLISH of a message nobody published (payload %q)", bc.n, p.Payload)
		return
	}
	if p.Topic != m.topic || string(p.Payload) != string(m.payload) || p.QoS != m.qos || p.Retain != m.retain {
		w.violate("c%d: PUBLISH %s is %q QoS %d retain %v, the application published %q QoS %d retain %v",
			bc.n, tag, p.Topic, p.QoS, p.Retain, m.topic, m.qos, m.retain)
		return
	}
	if m.neverSent {
		w.violate("c%d: PUBLISH %s reached the broker after its publish ended with %v", bc.n, tag, m.op.err)
		return
	}
	if p.QoS > bc.lim.maxQoS {
		w.violate("c%d: PUBLISH %s at QoS %d; CONNACK's Maximum QoS is %d [MQTT-3.2.2-11]", bc.n, tag, p.QoS, bc.lim.maxQoS)
		return
	}
	if p.Retain && bc.lim.noRetain {
		w.violate("c%d: retained PUBLISH %s; CONNACK said Retain Available 0 [MQTT-3.2.2-14]", bc.n, tag)
		return
	}
	if p.QoS == 0 && (p.Dup || p.PacketID != 0) {
		w.violate("c%d: QoS 0 PUBLISH %s with DUP or a packet identifier [MQTT-3.3.1-2]", bc.n, tag)
		return
	}
	if m.expiry > 0 {
		var e uint32
		if p.Properties != nil && p.Properties.MessageExpiry != nil {
			e = *p.Properties.MessageExpiry
		}
		if e == 0 || e > m.expiry {
			w.violate("c%d: PUBLISH %s carries Message Expiry %d; the application set %d", bc.n, tag, e, m.expiry)
			return
		}
		restored := m.op.inst != bc.inst // by a later client, from the store
		if !m.seen && !w.triedToSend(tag) && at.Sub(m.op.at) > time.Duration(m.expiry)*time.Second && (!restored || w.d["restoredexpiry"]) {
			w.violate("c%d: PUBLISH %s first sent %s after it was published, past its expiry of %d s", bc.n, tag, at.Sub(m.op.at), m.expiry)
			return
		}
	}
	if !m.seen {
		m.seen = true
	}
	if p.QoS == 0 {
		return
	}
	if bc.quotaIn == 0 {
		w.violate("c%d: PUBLISH %s (QoS %d) with no send quota left; CONNACK's Receive Maximum is %d [MQTT-3.3.4-7]", bc.n, tag, p.QoS, bc.lim.recvMax)
		return
	}
	if bc.quotaIn > 0 {
		bc.quotaIn--
	}
	s := b.sess
	id := p.PacketID
	b.resendOrder(bc, p, tag)
	if b.lastTag == nil {
		b.lastTag = map[uint16]string{}
	}
	b.lastTag[id] = tag
	if f := s.in[id]; f != nil && f.tag == tag && !p.Dup && f.inst == bc.inst {
		w.violate("c%d: PUBLISH %s sent again under identifier %d in the same session without DUP [MQTT-3.3.1-1]", bc.n, tag, id)
		return
	}
	if c := bc.ctl[id]; c != nil {
		w.violate("c%d: PUBLISH %s with packet identifier %d, in use for %s %v [MQTT-2.2.1-3]", bc.n, tag, id, describeCtl(c), c.filters)
		return
	}
	if f := s.in[id]; f != nil && f.tag != tag {
		// Packet identifier reuse while the broker still holds the old
		// flow. For QoS 1 the broker just takes the new message; the old
		// one was taken when it came. It is a bug of the client only
		// within one instance (which knows the id is in use); a new
		// instance without a store cannot know.
		switch {
		case f.qos == 2 && f.stage != inComp:
			kind := "the same client"
			if f.inst != bc.inst {
				kind = fmt.Sprintf("client %d, before client %d", f.inst.n, bc.inst.n)
				if w.store == nil {
					kind += " without a store (the broker kept the session) [MQTT-3.1.2-23 UNCLEAR]"
				}
			}
			w.violate("c%d: PUBLISH %s (QoS %d) reuses packet identifier %d while the broker waits for the PUBREL of QoS 2 message %s sent by %s: the broker takes the new one for a duplicate and drops it [MQTT-2.2.1-3, 4.3.3]",
				bc.n, tag, p.QoS, id, f.tag, kind)
			return
		case f.inst == bc.inst:
			w.violate("c%d: PUBLISH %s reuses packet identifier %d, in use for %s not yet acknowledged [MQTT-2.2.1-3]", bc.n, tag, id, f.tag)
			return
		}
		delete(s.in, id)
	}
	if len(m.sends) == 0 || m.sends[len(m.sends)-1].bc != bc {
		m.sends = append(m.sends, sendRec{bc: bc, at: at})
	}
	if m.poison {
		// Refused: the broker ends the connection instead of taking
		// the message (how an MQTT 3.1.1 broker refuses one).
		if m.refused {
			w.violate("c%d: PUBLISH %s sent again after its publish ended with ErrRefused", bc.n, tag)
			return
		}
		m.cuts++
		w.logf("  broker refuses %s: cuts c%d (%d times)", tag, bc.n, m.cuts)
		b.cut(bc)
		return
	}
	// downgrade: QoS 2 taken as QoS 1 and answered with PUBACK, as RabbitMQ
	// does under MQTT 3.1.1 (an MQTT 5 broker that cannot take QoS 2 says
	// so with Maximum QoS instead).
	if p.QoS == 1 || w.d["downgrade"] && bc.ver == codec.V311 {
		if f := s.in[id]; f != nil {
			f.owedOn, f.inst = bc, bc.inst // the same message again
			return
		}
		s.in[id] = &inFlow{tag: tag, qos: 1, stage: inRecv, owedOn: bc, inst: bc.inst, seq: s.firstSeq(tag)}
		return
	}
	f := s.in[id]
	switch {
	case f == nil:
		if s.got2[tag] {
			w.violate("c%d: QoS 2 message %s came again as a new message (packet identifier %d) in the same broker session, after the broker accepted it (PUBREC): delivered twice", bc.n, tag, id)
			return
		}
		if !slices.Contains(m.newIn, b.sessN) {
			m.newIn = append(m.newIn, b.sessN)
		}
		s.in[id] = &inFlow{tag: tag, qos: 2, stage: inRecv, owedOn: bc, inst: bc.inst, seq: s.firstSeq(tag)}
	case f.stage == inRecv || f.stage == inRel:
		// The same message again: PUBREC is owed (again) [MQTT-4.3.3-10].
		f.owedOn = bc
		f.inst = bc.inst
	case f.stage == inComp:
		w.violate("c%d: PUBLISH %s (QoS 2) with packet identifier %d after its PUBREL", bc.n, tag, id)
	}
}

// resendOrder checks, on a connection that resumed the session, that what
// the client owes from before goes first, in its original order: PUBLISH
// again (DUP) in the order of the first sends [MQTT-4.4.0-1, 4.6.0-1], and
// before any new message (DUP 0, or QoS 0).
func (b *broker) resendOrder(bc *bconn, p *codec.Publish, tag string) {
	if bc.pre == nil {
		return
	}
	if p.QoS == 0 || !p.Dup {
		bc.newSeen = true
		return
	}
	// The PUBLISH again: the client did not get the PUBREC, and a PUBREL
	// that follows answers this connection's PUBREC.
	delete(bc.preRel, p.PacketID)
	f := b.sess.in[p.PacketID]
	if f == nil || bc.pre[p.PacketID] != tag {
		return // the broker never had it: nothing to order it by
	}
	if m := b.w.msgs[tag]; m != nil && m.ackedOnce() && m.op != nil && m.op.inst != bc.inst {
		// A message the broker already acknowledged, sent again because
		// the removal of its record was not synced before a crash (an
		// acknowledged removal need not be durable: at worst a
		// duplicate, which QoS 1 and the broker's dedup of QoS 2
		// allow) by a later client on the store. Its "first send" in
		// this session came after a session loss, from a client that
		// had forgotten it, so the order of first sends says nothing
		// about it (seed 8065614833154356426).
		return
	}
	switch {
	case bc.newSeen:
		b.w.violate("c%d: PUBLISH %s re-sent (DUP) after a new message on the resumed session [MQTT-4.4.0-1]", bc.n, tag)
	case f.seq < bc.lastPub:
		b.w.violate("c%d: PUBLISH %s re-sent out of the order of the first sends [MQTT-4.6.0-1]", bc.n, tag)
	}
	bc.lastPub = f.seq
}

func (b *broker) onPubrel(bc *bconn, p *codec.Pubrel) {
	w := b.w
	f := b.sess.in[p.PacketID]
	if f != nil && bc.pre[p.PacketID] == f.tag && bc.preRel[p.PacketID] {
		switch {
		case bc.newSeen:
			w.violate("c%d: PUBREL %d for %s, owed from before the reconnect, after a new message [MQTT-4.4.0-1]", bc.n, p.PacketID, f.tag)
		case f.relSeq > 0 && f.relSeq < bc.lastRel && (f.relInst == bc.inst || w.d["relorder"]):
			w.violate("c%d: PUBREL %d for %s re-sent out of the order of the PUBRECs [MQTT-4.6.0-4]", bc.n, p.PacketID, f.tag)
		}
		bc.lastRel = max(bc.lastRel, f.relSeq)
	}
	if f != nil && f.relSeq == 0 {
		b.sess.inSeq++
		f.relSeq, f.relInst = b.sess.inSeq, bc.inst
	}
	switch {
	case f == nil:
		// A flow the broker already completed (PUBCOMP lost), or one of a
		// session it lost: PUBCOMP anyway.
		bc.compOwed = append(bc.compOwed, p.PacketID)
	case f.qos != 2 && w.unseenQoS2(p.PacketID) != "":
		// The client finishes a QoS 2 flow it may have begun under this
		// identifier and cannot send again (F5's fix): a PUBLISH in a
		// failed write, or stored as sent before a crash, that never
		// reached the broker, whose last message under the identifier
		// was of QoS 1. A broker has no flow for it: PUBCOMP (seed
		// 4548025240643540266).
		w.logf("  c%d: PUBREL %d for %s, which the broker never read (the identifier last carried %s): no flow", bc.n, p.PacketID, w.unseenQoS2(p.PacketID), f.tag)
		bc.compOwed = append(bc.compOwed, p.PacketID)
	case f.qos != 2:
		w.violate("c%d: PUBREL %d for QoS 1 message %s", bc.n, p.PacketID, f.tag)
	case f.stage == inRecv:
		// PUBREL before PUBREC: the client finishes a flow it may not
		// send again (a new CONNACK's limits no longer fit it; F5's
		// fix). A broker that holds the identifier releases it: the
		// message is delivered, which the client's ErrOutcomeUnknown
		// allows.
		w.logf("  c%d: PUBREL %d for %s, which the broker has not acknowledged with PUBREC: released", bc.n, p.PacketID, f.tag)
		b.sess.got2[f.tag] = true
		f.stage, f.owedOn = inComp, bc
	default:
		f.stage, f.owedOn = inComp, bc
	}
}

// onClientAck checks the client's acknowledgement of a broker's publish.
func (b *broker) onClientAck(bc *bconn, id uint16, t codec.PacketType) {
	w := b.w
	f := b.sess.out[id]
	want := map[codec.PacketType]int{codec.TypePuback: outSent, codec.TypePubrec: outSent, codec.TypePubcomp: outRel}[t]
	if f == nil || f.stage != want || (t == codec.TypePuback) != (f.qos == 1) {
		what := "no message"
		if f != nil {
			what = fmt.Sprintf("message %s (QoS %d, stage %d)", f.tag, f.qos, f.stage)
		}
		if w.store != nil && f != nil && f.stage == outSent && !w.d["staleinbound"] {
			// F10: a restored inbound record of a session the broker
			// lost answers a new message of another QoS.
			w.logf("  c%d: %s %d for %s: the wrong kind (F10), ignored", bc.n, t, id, what)
			return
		}
		w.violate("c%d: the client sent %s %d; the broker has %s under that identifier", bc.n, t, id, what)
		return
	}
	// In arrival order, with ManualAck too: an ack the application gives
	// early waits for those before it [MQTT-4.6.0-2, 4.6.0-3].
	if t != codec.TypePubcomp {
		if ok, last := bc.ord[f.qos].acked(f.tag); !ok {
			w.violate("c%d: %s for %s out of order: a message that arrived after it was acknowledged first (position %d) [MQTT-4.6.0-2/3]", bc.n, t, f.tag, last)
			return
		}
	}
	im := w.inMsgs[f.tag]
	switch t {
	case codec.TypePuback:
		delete(b.sess.out, id)
		b.freeOut(bc)
	case codec.TypePubrec:
		f.stage = outRec
		im.pubrecd = true
	case codec.TypePubcomp:
		delete(b.sess.out, id)
		b.freeOut(bc)
	}
}

func (b *broker) freeOut(bc *bconn) {
	if bc.quotaOut >= 0 && bc.connect != nil {
		bc.quotaOut = min(bc.quotaOut+1, clientRecvMax(bc))
	}
}

// clientRecvMax is the Receive Maximum the client announced; -1 for none.
func clientRecvMax(bc *bconn) int {
	if p := bc.connect.Properties; p != nil && p.ReceiveMaximum != nil {
		return int(*p.ReceiveMaximum)
	}
	return -1
}

// connack answers bc's CONNECT: refuse (code != 0), or accept with lim,
// keeping the session unless lose.
func (b *broker) connack(bc *bconn, code codec.ReasonCode, lim limits, lose bool, ref string) {
	w := b.w
	if code != codec.Success {
		ack := &codec.Connack{ReasonCode: code}
		if ref != "" {
			ack.Properties = &codec.Properties{ServerReference: ref}
		}
		b.send(bc, ack)
		bc.finish()
		bc.dead = true
		return
	}
	present := b.sess != nil && !bc.connect.CleanStart && !lose
	if !present {
		b.sessN++
		b.sess = newSess(b.sessN)
		w.logf("  broker: new session %d", b.sessN)
	}
	// Take over: any other connection of the client ends.
	for _, o := range b.conns {
		if o != bc && !o.dead && o.up {
			w.logf("  broker: c%d takes over from c%d", bc.n, o.n)
			b.ended(o)
		}
	}
	ack := &codec.Connack{SessionPresent: present}
	if bc.ver == codec.V5 {
		pr := &codec.Properties{}
		if lim.recvMax > 0 {
			v := uint16(lim.recvMax)
			pr.ReceiveMaximum = &v
		}
		if lim.maxPacket > 0 {
			v := uint32(lim.maxPacket)
			pr.MaximumPacketSize = &v
		}
		if lim.maxQoS < 2 {
			v := byte(lim.maxQoS)
			pr.MaximumQoS = &v
		}
		if lim.noRetain {
			f := false
			pr.RetainAvailable = &f
		}
		ack.Properties = pr
	} else {
		lim = limits{maxQoS: 2}
	}
	bc.lim, bc.up = lim, true
	b.limitsSeen = append(b.limitsSeen, lim)
	bc.quotaIn = -1
	if lim.recvMax > 0 {
		bc.quotaIn = lim.recvMax
	}
	bc.quotaOut = clientRecvMax(bc)
	b.cur = bc
	b.send(bc, ack)
	// What the broker owes the session: PUBLISH again (DUP) and PUBREL,
	// in their original order [MQTT-4.4.0-1].
	if present {
		bc.pre, bc.preRel = map[uint16]string{}, map[uint16]bool{}
		for id, f := range b.sess.in {
			bc.pre[id] = f.tag
			bc.preRel[id] = f.stage == inRel || f.stage == inComp
		}
		for _, f := range b.outInOrder() {
			switch f.stage {
			case outSent:
				bc.resendQ = append(bc.resendQ, f.id)
			case outRel:
				// A PUBREL waits for no quota, but goes in order: after
				// the PUBLISHes before it. Simplest: flush the queue
				// first, as far as the quota lets it, then the PUBREL.
				bc.resendQ = append(bc.resendQ, f.id)
			}
		}
		b.pumpResend(bc)
	}
}

func (b *broker) outInOrder() []*outFlow {
	fs := slices.Collect(maps.Values(b.sess.out))
	slices.SortFunc(fs, func(x, y *outFlow) int { return int(x.seq) - int(y.seq) })
	return fs
}

// pumpResend sends what the broker owes again, in order, as the send
// quota allows.
func (b *broker) pumpResend(bc *bconn) {
	for len(bc.resendQ) > 0 {
		f := b.sess.out[bc.resendQ[0]]
		if f == nil || (f.stage != outSent && f.stage != outRel) {
			bc.resendQ = bc.resendQ[1:]
			continue
		}
		if f.stage == outRel {
			b.send(bc, &codec.Pubrel{PacketID: f.id})
			bc.resendQ = bc.resendQ[1:]
			continue
		}
		if bc.quotaOut == 0 {
			return
		}
		if bc.quotaOut > 0 {
			bc.quotaOut--
		}
		p := f.pkt
		p.Dup = true
		bc.ord[f.qos].arrived(f.tag)
		b.sendPublish(bc, p)
		bc.resendQ = bc.resendQ[1:]
	}
}

// canPublish reports whether the broker may send one more QoS>0 PUBLISH on bc.
func (b *broker) canPublish(bc *bconn) bool {
	return len(bc.resendQ) == 0 && bc.quotaOut != 0 && len(b.sess.out) < 12
}

// publish sends a new message to the client.
func (b *broker) publish(bc *bconn, qos codec.QoS, retain bool) {
	w := b.w
	w.nextIn++
	tag := fmt.Sprintf("b%d", w.nextIn)
	p := codec.Publish{Topic: fmt.Sprintf("in/%d", w.rng.IntN(3)), Payload: []byte(tag + "|" + strings.Repeat("x", w.rng.IntN(20))), QoS: qos, Retain: retain}
	w.inMsgs[tag] = &inMsg{tag: tag, topic: p.Topic, payload: string(p.Payload), qos: qos, retain: retain, delivered: map[int]int{}}
	if qos > 0 {
		// The lowest free identifier: reused as soon as the spec allows.
		id := uint16(1)
		for b.sess.out[id] != nil {
			id++
		}
		p.PacketID = id
		b.sess.outSeq++
		b.sess.out[id] = &outFlow{id: id, seq: b.sess.outSeq, tag: tag, qos: qos, pkt: p}
		if bc.quotaOut > 0 {
			bc.quotaOut--
		}
		bc.ord[qos].arrived(tag)
	}
	b.sendPublish(bc, p)
}

// owed lists what the broker could answer now on the live connection, in a
// stable order: each entry is a closure that sends it.
type owedAck struct {
	what string
	do   func(code codec.ReasonCode)
	kind codec.PacketType
}

func (b *broker) owed() []owedAck {
	bc := b.cur
	if !b.live(bc) {
		return nil
	}
	var out []owedAck
	for _, id := range slices.Sorted(maps.Keys(b.sess.in)) {
		f := b.sess.in[id]
		if f.owedOn != bc {
			continue
		}
		switch {
		case f.qos == 1:
			out = append(out, owedAck{what: "PUBACK " + f.tag, kind: codec.TypePuback, do: func(code codec.ReasonCode) {
				b.send(bc, &codec.Puback{PacketID: id, ReasonCode: code})
				m := b.w.msgs[f.tag]
				m.acks = append(m.acks, code)
				m.pubacked = true
				delete(b.sess.in, id)
				b.freeIn(bc)
			}})
		case f.stage == inRecv || f.stage == inRel:
			out = append(out, owedAck{what: "PUBREC " + f.tag, kind: codec.TypePubrec, do: func(code codec.ReasonCode) {
				if f.stage == inRel {
					code = codec.Success // the same answer again
				}
				b.send(bc, &codec.Pubrec{PacketID: id, ReasonCode: code})
				b.w.msgs[f.tag].acks = append(b.w.msgs[f.tag].acks, code)
				f.owedOn = nil
				if code.IsError() {
					delete(b.sess.in, id)
					b.freeIn(bc)
					return
				}
				b.sess.got2[f.tag] = true
				f.stage = inRel
			}})
		case f.stage == inComp:
			out = append(out, owedAck{what: "PUBCOMP " + f.tag, kind: codec.TypePubcomp, do: func(codec.ReasonCode) {
				b.send(bc, &codec.Pubcomp{PacketID: id})
				b.w.msgs[f.tag].comps++
				delete(b.sess.in, id)
				b.freeIn(bc)
			}})
		}
	}
	for i, id := range bc.compOwed {
		out = append(out, owedAck{what: fmt.Sprintf("PUBCOMP %d (no flow)", id), kind: codec.TypePubcomp, do: func(codec.ReasonCode) {
			p := &codec.Pubcomp{PacketID: id}
			if bc.ver == codec.V5 {
				p.ReasonCode = codec.PacketIdentifierNotFound
			}
			b.send(bc, p)
			if m := b.w.msgs[b.lastTag[id]]; m != nil {
				m.comps++
			}
			bc.compOwed = slices.Delete(bc.compOwed, i, i+1)
			b.freeIn(bc)
		}})
	}
	for _, id := range slices.Sorted(maps.Keys(bc.ctl)) {
		c := bc.ctl[id]
		kind := codec.TypeSuback
		if c.unsub != nil {
			kind = codec.TypeUnsuback
		}
		out = append(out, owedAck{what: fmt.Sprintf("%s %v", kind, c.filters), kind: kind, do: func(code codec.ReasonCode) {
			delete(bc.ctl, id)
			b.answerControl(bc, id, c, code)
		}})
	}
	for _, f := range b.outInOrder() {
		if f.stage == outRec && !slices.Contains(bc.resendQ, f.id) {
			out = append(out, owedAck{what: "PUBREL " + f.tag, kind: codec.TypePubrel, do: func(codec.ReasonCode) {
				b.send(bc, &codec.Pubrel{PacketID: f.id})
				f.stage = outRel
			}})
		}
	}
	return out
}

// freeIn gives the client back one of its send quota: the broker answered
// one of its QoS 1/2 publishes (PUBACK, PUBCOMP, a failed PUBREC).
func (b *broker) freeIn(bc *bconn) {
	if bc.quotaIn >= 0 {
		bc.quotaIn = min(bc.quotaIn+1, bc.lim.recvMax)
	}
}

// answerControl sends SUBACK/UNSUBACK; a failure code refuses every other
// filter (code 0: all granted).
func (b *broker) answerControl(bc *bconn, id uint16, c *ctlFlow, code codec.ReasonCode) {
	w := b.w
	codes := make([]codec.ReasonCode, len(c.filters))
	for i := range codes {
		if code.IsError() && i%2 == 0 {
			codes[i] = code
		} else if c.sub != nil {
			codes[i] = codec.ReasonCode(c.sub.Subscriptions[i].QoS)
		} else {
			codes[i] = codec.Success
		}
	}
	for i, f := range c.filters {
		if c.sub != nil {
			w.subAcked[f] = append(w.subAcked[f], codes[i])
		} else {
			w.unsubAcked[f] = append(w.unsubAcked[f], codes[i])
		}
	}
	if c.sub != nil {
		b.send(bc, &codec.Suback{PacketID: id, ReasonCodes: codes})
		return
	}
	if bc.ver != codec.V5 {
		codes = nil
		for _, f := range c.filters {
			w.unsubAcked[f] = []codec.ReasonCode{codec.Success}
		}
	}
	b.send(bc, &codec.Unsuback{PacketID: id, ReasonCodes: codes})
}

package mqtttest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robustmqtt/mqtt/codec"
)

// client checks a frame from the client: frame is all of it, or its first
// clientKeep bytes; total is its length. Called with mu held.
func (m *Monitor) client(frame []byte, total int, now time.Time) {
	s := &m.st
	if s.ended {
		return
	}
	s.history(true, frame, total)
	s.lastClient = now
	if s.dormant {
		return
	}
	t := codec.PacketType(frame[0] >> 4)
	if s.disconnected {
		if !s.afterDisc {
			s.afterDisc = true
			m.violate(ruleAfterDisconnect, fmt.Sprintf("the client sent %s after DISCONNECT", t), true)
		}
		return
	}
	if !s.connected {
		m.connect(frame, total)
		return
	}
	if r, why, ok := headerRule(frame[0], s.version); !ok {
		m.violate(r, why, true)
		return
	}
	if t == codec.TypeConnect {
		m.violate(ruleConnectOnce, "a second CONNECT on the connection", true)
		return
	}
	if s.connack && s.maxPacketSize > 0 && total > s.maxPacketSize {
		m.violate(ruleMaxPacketSize, fmt.Sprintf("a %d-byte %s; the server's Maximum Packet Size is %d", total, t, s.maxPacketSize), true)
	}
	if len(frame) < total {
		return // too large to decode: the header and size are all that was checked
	}
	p, _, err := codec.Decode(frame, s.version, 0)
	if err != nil {
		m.violate(decodeRule(err), fmt.Sprintf("a %s the server cannot accept: %v", t, err), true)
		return
	}
	switch p := p.(type) {
	case *codec.Publish:
		m.publish(p)
	case *codec.Puback:
		m.reasonCode(t, p.ReasonCode)
		m.ack(p.PacketID, 1)
	case *codec.Pubrec:
		m.reasonCode(t, p.ReasonCode)
		m.ack(p.PacketID, 2)
	case *codec.Pubrel:
		m.reasonCode(t, p.ReasonCode)
		m.pubrel(p.PacketID)
	case *codec.Pubcomp:
		m.reasonCode(t, p.ReasonCode)
		if _, ok := s.serverRel[p.PacketID]; !ok && s.follows() {
			m.violate(rulePubcompID, fmt.Sprintf("PUBCOMP for packet identifier %d, which no PUBREL from the server on this connection carried", p.PacketID), true)
		}
	case *codec.Subscribe:
		m.subscribe(p)
		m.newID(p.PacketID, codec.TypeSubscribe)
	case *codec.Unsubscribe:
		m.newID(p.PacketID, codec.TypeUnsubscribe)
	case *codec.Pingreq:
		s.pingAt, s.pongAt = now, time.Time{}
	case *codec.Disconnect:
		m.reasonCode(t, p.ReasonCode)
		s.disconnected = true
	case *codec.Auth:
		if !s.authMethod {
			m.violate(ruleAuthWithoutMethod, "AUTH from a client whose CONNECT has no Authentication Method", true)
		}
		m.reasonCode(t, p.ReasonCode)
	default:
		m.violate(ruleMalformed, fmt.Sprintf("the client sent %s, a packet only a server sends", t), true)
	}
}

// connect checks the client's first frame, which must be a CONNECT, and
// takes the protocol version and Keep Alive from it. Called with mu held.
func (m *Monitor) connect(frame []byte, total int) {
	s := &m.st
	s.connected = true
	t := codec.PacketType(frame[0] >> 4)
	if t != codec.TypeConnect {
		// Nothing more can be judged: the protocol version is not known.
		s.dormant = true
		m.violate(ruleConnectFirst, fmt.Sprintf("the client's first packet is %s, not CONNECT", t), true)
		return
	}
	if len(frame) < total {
		s.dormant = true
		return
	}
	p, _, err := codec.Decode(frame, codec.V5, 0) // CONNECT carries its own version
	var ce *codec.Error
	if err != nil && errors.As(err, &ce) && ce.Code == codec.UnsupportedProtocolVersion {
		s.dormant = true // MQTT 3.1, or not MQTT at all: not for this Monitor
		return
	}
	if err != nil {
		s.dormant = true
		m.violate(decodeRule(err), fmt.Sprintf("a CONNECT the server cannot accept: %v", err), true)
		return
	}
	c := p.(*codec.Connect)
	s.version = c.Version
	s.clientID = c.ClientID
	s.cleanStart = c.CleanStart
	s.keepAlive = time.Duration(c.KeepAlive) * time.Second
	s.authMethod = c.Properties != nil && c.Properties.AuthenticationMethod != ""
	s.owedRel = m.book.owed(s.clientID)
	if r, why, ok := headerRule(frame[0], s.version); !ok {
		m.violate(r, why, true)
	}
}

// reasonCode checks the reason code of a packet from the client against
// those a client may send. Called with mu held.
func (m *Monitor) reasonCode(t codec.PacketType, c codec.ReasonCode) {
	if m.st.version != codec.V5 {
		return
	}
	allowed, ok := clientCodes[t]
	if ok && !slices.Contains(allowed.codes, byte(c)) {
		m.violate(allowed.rule, fmt.Sprintf("%s with reason code 0x%02X (%s)", t, byte(c), c), true)
	}
}

// publish checks a PUBLISH from the client. Called with mu held.
func (m *Monitor) publish(p *codec.Publish) {
	s := &m.st
	if s.connack {
		if p.QoS > s.maxQoS {
			m.violate(ruleMaxQoS, fmt.Sprintf("PUBLISH at QoS %d; the server's Maximum QoS is %d", p.QoS, s.maxQoS), true)
		}
		if p.Retain && !s.retain {
			m.violate(ruleRetainAvailable, "a retained PUBLISH; the server said Retain Available 0", true)
		}
	}
	if pr := p.Properties; pr != nil {
		if len(pr.SubscriptionIdentifier) > 0 {
			m.violate(ruleSubIDInPublish, fmt.Sprintf("PUBLISH with Subscription Identifier %v", pr.SubscriptionIdentifier), true)
		}
		if pr.TopicAlias != nil {
			m.topicAlias(*pr.TopicAlias, p.Topic)
		}
	}
	if p.QoS == 0 {
		return
	}
	id := p.PacketID
	// Sent again, or a new message: either way the client does not owe a
	// PUBREL for an earlier PUBREC of this identifier.
	delete(s.owedRel, id)
	m.book.published(s.clientID, id, s.recs[id])
	f, inUse := s.out[id]
	if inUse && f.early {
		// The server's PUBREC crossed this PUBLISH: the PUBLISH of an
		// earlier connection, sent again as it should be, or a new one.
		f.early, f.qos, f.counted = false, p.QoS, true
		s.out[id] = f
		s.inflight++
		return
	}
	switch {
	case !s.follows():
		// Which flows ended is no longer known.
	case inUse && f.kind != codec.TypePublish:
		m.violate(ruleIDInUse, fmt.Sprintf("PUBLISH with packet identifier %d, in use by a %s waiting for its acknowledgement", id, f.kind), true)
	case inUse && f.pubrel:
		m.violate(rulePublishAfterPubrel, fmt.Sprintf("PUBLISH with packet identifier %d after the client sent PUBREL for it", id), true)
	case inUse && !p.Dup:
		m.violate(ruleIDInUse, fmt.Sprintf("a new PUBLISH (DUP 0) with packet identifier %d, in use by a PUBLISH not yet acknowledged", id), true)
	case inUse && s.version == codec.V5:
		m.violate(ruleResendInConnection, fmt.Sprintf("PUBLISH %d sent again (DUP) on the connection it was sent on", id), true)
	case inUse:
		// MQTT 3.1.1 allows a retransmission on the same connection.
	case p.Dup && s.newSession():
		m.dupFirst(p, "this connection started a new session, so the message cannot have been sent in it before")
	case p.Dup && s.version == codec.V5:
		if _, ok := s.done[id]; ok {
			m.dupFirst(p, "the message sent with this identifier earlier on this connection was acknowledged, so this is a new one")
		}
	}
	if inUse {
		if f.kind == codec.TypePublish && f.qos != p.QoS {
			f.qos = p.QoS
			s.out[id] = f
		}
		return
	}
	if s.follows() && s.receiveMax > 0 && s.inflight >= s.receiveMax {
		m.violate(ruleReceiveMaximum, fmt.Sprintf("QoS %d PUBLISH %d with %d unacknowledged already; the server's Receive Maximum is %d",
			p.QoS, id, s.inflight, s.receiveMax), true)
	}
	s.out[id] = outFlow{kind: codec.TypePublish, qos: p.QoS, counted: true}
	s.inflight++
	delete(s.done, id)
}

func (m *Monitor) dupFirst(p *codec.Publish, why string) {
	r := ruleDupFirstQoS1
	if p.QoS == 2 {
		r = ruleDupFirstQoS2
	}
	m.violate(r, fmt.Sprintf("PUBLISH %d with DUP set: %s", p.PacketID, why), true)
}

// topicAlias checks a Topic Alias the client sent with topic. Called with
// mu held.
func (m *Monitor) topicAlias(alias uint16, topic string) {
	s := &m.st
	if s.connack {
		switch {
		case s.aliasMax == 0:
			m.violate(ruleAliasNone, fmt.Sprintf("PUBLISH with Topic Alias %d; the server's CONNACK allows none", alias), true)
		case alias > s.aliasMax:
			m.violate(ruleAliasMaximum, fmt.Sprintf("PUBLISH with Topic Alias %d; the server's Topic Alias Maximum is %d", alias, s.aliasMax), true)
		}
	}
	if topic != "" {
		s.aliases[alias] = struct{}{}
		return
	}
	if _, ok := s.aliases[alias]; !ok {
		m.violate(ruleAliasUnset, fmt.Sprintf("PUBLISH with an empty topic and Topic Alias %d, which no PUBLISH on this connection set", alias), true)
	}
}

// newID checks the packet identifier of a new SUBSCRIBE or UNSUBSCRIBE.
// Called with mu held.
func (m *Monitor) newID(id uint16, kind codec.PacketType) {
	s := &m.st
	if f, ok := s.out[id]; ok && !f.early && s.follows() {
		m.violate(ruleIDInUse, fmt.Sprintf("%s with packet identifier %d, in use by a %s waiting for its acknowledgement", kind, id, f.kind), true)
	}
	s.out[id] = outFlow{kind: kind}
}

// subscribe checks a SUBSCRIBE against the subscription features the server
// said it lacks. Called with mu held.
func (m *Monitor) subscribe(p *codec.Subscribe) {
	s := &m.st
	if !s.connack || s.version != codec.V5 {
		return
	}
	if !s.subIDs && p.Properties != nil && len(p.Properties.SubscriptionIdentifier) > 0 {
		m.violate(ruleSubIDs, fmt.Sprintf("SUBSCRIBE with Subscription Identifier %v", p.Properties.SubscriptionIdentifier), true)
	}
	for _, sub := range p.Subscriptions {
		f := sub.Filter
		if rest, ok := strings.CutPrefix(f, "$share/"); ok {
			if !s.sharedSubs {
				m.violate(ruleSharedSub, fmt.Sprintf("SUBSCRIBE to the shared subscription %q", f), true)
			}
			if _, after, ok := strings.Cut(rest, "/"); ok {
				f = after
			}
		}
		if !s.wildcardSubs && strings.ContainsAny(f, "+#") {
			m.violate(ruleWildcardSub, fmt.Sprintf("SUBSCRIBE to the wildcard filter %q", sub.Filter), true)
		}
	}
}

// ack checks a PUBACK (qos 1) or PUBREC (qos 2) from the client: it answers
// a PUBLISH of that QoS from the server on this connection, and in the
// order they arrived. Called with mu held.
func (m *Monitor) ack(id uint16, qos codec.QoS) {
	s := &m.st
	if !s.follows() {
		return
	}
	t := codec.TypePuback
	order := rulePubackOrder
	if qos == 2 {
		t, order = codec.TypePubrec, rulePubrecOrder
	}
	a := s.arrivals[id]
	if a == nil || !a.qos[qos] {
		m.violate(ruleAckID, fmt.Sprintf("%s for packet identifier %d, which no QoS %d PUBLISH from the server on this connection carried", t, id, qos), true)
		return
	}
	if len(a.pending[qos]) == 0 {
		return // a second acknowledgement of the same copy
	}
	n := a.pending[qos][0]
	a.pending[qos] = a.pending[qos][1:]
	last := &s.lastAck[qos-1]
	if n < *last {
		m.violate(order, fmt.Sprintf("%s %d after the %s of a PUBLISH that arrived later", t, id, t), true)
	}
	*last = max(*last, n)
}

// pubrel checks a PUBREL from the client: it follows the server's PUBREC
// of its QoS 2 PUBLISH, on this connection or, re-sent, on an earlier one,
// in the order the PUBRECs arrived. Called with mu held.
func (m *Monitor) pubrel(id uint16) {
	s := &m.st
	f, ok := s.out[id]
	if !s.follows() {
		// Which flows ended is no longer known.
		s.out[id] = outFlow{kind: codec.TypePublish, qos: 2, counted: ok && f.counted, pubrel: true}
		return
	}
	switch {
	case ok && f.kind != codec.TypePublish:
		m.violate(rulePubrelAfterPubrec, fmt.Sprintf("PUBREL with packet identifier %d, in use by a %s", id, f.kind), true)
		return
	case ok && f.qos != 2:
		m.violate(rulePubrelAfterPubrec, fmt.Sprintf("PUBREL with packet identifier %d, that of a QoS %d PUBLISH", id, f.qos), true)
		return
	case ok && !f.pubrec && !f.pubrel:
		m.violate(rulePubrelAfterPubrec, fmt.Sprintf("PUBREL %d before the server's PUBREC", id), true)
	case !ok:
		// A PUBREL re-sent for a PUBLISH of an earlier connection.
		f = outFlow{kind: codec.TypePublish, qos: 2}
	}
	f.pubrel = true
	s.out[id] = f
	owed, recs := s.owedRel[id], s.recs[id]
	if len(owed) == 0 && len(recs) == 0 {
		return // no PUBREC is known: a flow this Monitor did not see begin
	}
	// The copy answered is the earliest that keeps the order: any copy the
	// server wrote may be the one the client read first, or the only one
	// it kept (see sessionBook). Taking the earliest that fits leaves the
	// most room for the PUBRELs after it, so the rule reports an order only
	// when no choice of copies explains it.
	n, fits, latest := uint64(0), false, uint64(0)
	for _, c := range slices.Concat(owed, recs) {
		if c >= s.lastRel && (!fits || c < n) {
			n, fits = c, true
		}
		latest = max(latest, c)
	}
	if !fits {
		n = latest
		m.violate(rulePubrelOrder, fmt.Sprintf("PUBREL %d after the PUBREL of a message whose PUBREC arrived later", id), true)
	}
	delete(s.owedRel, id)
	// The copies of this connection up to the one answered are answered;
	// a later one (a PUBREC the server sent again) waits for its own.
	s.recs[id] = slices.DeleteFunc(recs, func(c uint64) bool { return c <= n })
	s.lastRel = max(s.lastRel, n)
}

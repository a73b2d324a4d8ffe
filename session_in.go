package mqtt

import (
	"time"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
)

// receive handles one frame from the current connection.
func (s *session) receive(p codec.Packet) {
	switch p := p.(type) {
	case *codec.Publish:
		s.onPublish(p)
	case *codec.Pubrel:
		s.onPubrel(p)
	case *codec.Puback:
		s.onPuback(p)
	case *codec.Pubrec:
		s.onPubrec(p)
	case *codec.Pubcomp:
		s.onPubcomp(p)
	case *codec.Suback:
		s.onSuback(p)
	case *codec.Unsuback:
		s.onUnsuback(p)
	default:
		// conn screens out the rest; anything else is a new kind of bug.
		s.protocolError(codec.ProtocolError, p.Type(), "unexpected %s", p.Type())
	}
}

// receiveAck handles a plain acknowledgement that conn did not decode into
// a packet, to save its allocation.
func (s *session) receiveAck(t codec.PacketType, id uint16) {
	switch t {
	case codec.TypePuback:
		s.onPuback(&codec.Puback{PacketID: id})
	case codec.TypePubrec:
		s.onPubrec(&codec.Pubrec{PacketID: id})
	case codec.TypePubcomp:
		s.onPubcomp(&codec.Pubcomp{PacketID: id})
	}
}

// onPublish takes an inbound message: resolve its topic alias, drop a
// duplicate of a QoS 1/2 message still in hand, queue it for the
// application.
func (s *session) onPublish(p *codec.Publish) {
	topic, ok := s.resolveTopic(p)
	if !ok {
		return
	}
	m := Message{Topic: topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Duplicate: p.Dup, Properties: p.Properties}
	if p.QoS == AtMostOnce {
		if s.pending.len() >= s.cfg.MaxPending {
			s.dropped++
			s.c.stats.recvDropped.Add(1)
			if !s.dropping {
				s.dropping = true
				s.cfg.Logger.Warn("mqtt: the application is behind; dropping inbound QoS 0 messages", "pending", s.pending.len())
			}
			if time.Since(s.dropSaid) >= dropReportEvery {
				s.reportDrops(true) // news when it happens, then at most once a period
			}
			return
		}
		s.reportDrops(false)
		s.pending.push(delivery{msg: m})
		return
	}
	if st := s.in[p.PacketID]; st != nil {
		// The broker sent it again (a reconnect, or it did not see our
		// ack): it is the same message [MQTT-4.3.3-10].
		switch st.stage {
		case inAckOwed:
			s.sendAck(p.PacketID, st)
		case inAwaitRel:
			s.send(conn.Frame{Packet: &codec.Pubrec{PacketID: p.PacketID}})
		}
		return
	}
	st := &inState{qos: p.QoS, gen: s.gen}
	s.in[p.PacketID] = st
	if s.cfg.ManualAck {
		m.ack = &inboundAck{client: s.c, id: p.PacketID, gen: s.gen}
	}
	s.pending.push(delivery{msg: m, id: p.PacketID, gen: s.gen})
}

// dropReportEvery is the least time between two MessagesDropped events
// while the application stays behind.
const dropReportEvery = time.Second

// reportDrops emits a MessagesDropped event for the drops not yet
// reported: at the first drop of a run, at most once per dropReportEvery
// while it lasts (behind: true), and once more when the application has
// caught up enough for a message to be queued again (behind: false), which
// ends the run. The Counts add up to every drop.
func (s *session) reportDrops(behind bool) {
	if !s.dropping {
		return
	}
	if s.dropped > 0 {
		s.c.emit(Event{Kind: MessagesDropped, Count: s.dropped})
		s.dropSaid = time.Now()
	}
	s.dropped = 0
	s.dropping = behind
}

// resolveTopic applies an MQTT 5 topic alias [MQTT-3.3.2-12]. It fails the
// connection on an alias the broker may not use.
func (s *session) resolveTopic(p *codec.Publish) (string, bool) {
	if p.Properties == nil || p.Properties.TopicAlias == nil {
		if p.Topic == "" {
			s.protocolError(codec.ProtocolError, codec.TypePublish, "PUBLISH with an empty topic and no topic alias")
			return "", false
		}
		return p.Topic, true
	}
	alias := *p.Properties.TopicAlias
	if alias == 0 || alias > s.cfg.TopicAliasMaximum {
		s.protocolError(codec.TopicAliasInvalid, codec.TypePublish, "topic alias %d is outside the 1..%d this client allows [MQTT-3.3.2-9]", alias, s.cfg.TopicAliasMaximum)
		return "", false
	}
	if p.Topic != "" {
		if s.aliases == nil {
			s.aliases = make(map[uint16]string)
		}
		s.aliases[alias] = p.Topic
		return p.Topic, true
	}
	topic, ok := s.aliases[alias]
	if !ok {
		s.protocolError(codec.TopicAliasInvalid, codec.TypePublish, "topic alias %d was never set on this connection", alias)
		return "", false
	}
	return topic, true
}

// delivered is called once the application received the first pending
// message from Messages.
func (s *session) delivered() {
	d := s.pending.front()
	id, gen, qos := d.id, d.gen, d.msg.QoS
	s.pending.pop()
	s.c.stats.recv[qos].Add(1)
	if qos > AtMostOnce && !s.cfg.ManualAck {
		s.appReceived(id, gen)
	}
	if s.dropping && s.pending.len() == 0 {
		s.reportDrops(false)
	}
}

// appReceived acknowledges an inbound QoS 1/2 message the application has
// taken (or acked by hand). Acks for a session the broker has since lost
// are dropped: that broker no longer waits for them.
func (s *session) appReceived(id uint16, gen uint64) {
	st := s.in[id]
	if st == nil || st.gen != gen || st.stage != inDelivering {
		return
	}
	st.stage = inAckOwed
	if s.cur != nil {
		s.sendAck(id, st)
	}
}

// sendAck sends the PUBACK or PUBREC an inbound message is owed.
func (s *session) sendAck(id uint16, st *inState) {
	if st.qos == AtLeastOnce {
		if s.send(conn.Frame{Packet: &codec.Puback{PacketID: id}}) {
			delete(s.in, id)
		}
		return
	}
	s.storeInbound(id)
	if s.send(conn.Frame{Packet: &codec.Pubrec{PacketID: id}}) {
		st.stage = inAwaitRel
	}
}

// onPubrel completes an inbound QoS 2 flow; the packet identifier is free
// for a new message after PUBCOMP [MQTT-4.3.3-13].
func (s *session) onPubrel(p *codec.Pubrel) {
	st := s.in[p.PacketID]
	comp := &codec.Pubcomp{PacketID: p.PacketID}
	switch {
	case st == nil:
		// Already completed (our PUBCOMP was lost): complete again.
		if s.cfg.version == codec.V5 {
			comp.ReasonCode = codec.PacketIdentifierNotFound
		}
	case st.qos != ExactlyOnce || st.stage != inAwaitRel:
		s.protocolError(codec.ProtocolError, codec.TypePubrel, "PUBREL for packet identifier %d before this client sent PUBREC", p.PacketID)
		return
	default:
		delete(s.in, p.PacketID)
		s.unstoreInbound(p.PacketID)
	}
	s.send(conn.Frame{Packet: comp})
}

package mqtt

import (
	"fmt"
	"hash/maphash"
	"math"
	"strings"
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
	case *codec.Auth:
		s.onAuth(p)
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
	size := inboundSize(p, s.cfg.version)
	if p.QoS == AtMostOnce {
		if (s.pendingN >= s.cfg.MaxPending || s.pendingBytes >= s.cfg.MaxPendingBytes) && !s.isReply(&m) {
			s.dropped++
			s.c.stats.recvDropped.Add(1)
			if !s.dropping {
				s.dropping = true
				s.cfg.Logger.Warn("mqtt: the application is behind; dropping inbound QoS 0 messages", "pending", s.pendingN)
			}
			if time.Since(s.dropSaid) >= dropReportEvery {
				s.reportDrops(true) // news when it happens, then at most once a period
			}
			return
		}
		s.reportDrops(false)
		s.queueDelivery(delivery{msg: m, size: size})
		return
	}
	if s.cfg.version == codec.V5 && int(s.inQuota) >= s.receiveMaximum() {
		if int(s.inQuota) >= receiveMaximumTolerated(s.receiveMaximum()) {
			s.protocolError(codec.ReceiveMaximumExceeded, codec.TypePublish,
				"the broker sent %d unacknowledged QoS 1/2 messages, far more than the Receive Maximum of %d this client announced [MQTT-3.3.4-9]",
				s.inQuota+1, s.receiveMaximum())
			return
		}
		if !s.overrunSaid {
			s.overrunSaid = true
			s.cfg.Logger.Warn("mqtt: the broker exceeds the Receive Maximum this client announced; flow control holds the excess back",
				"receive_maximum", s.receiveMaximum())
		}
	}
	s.inQuota++
	var sum uint64
	if len(s.cfg.Servers) > 1 {
		// Only with other servers to go to can a session be kept
		// elsewhere (a redirect does not count: see presentElsewhere).
		sum = inboundSum(topic, p.Payload)
	}
	if st := s.in[p.PacketID]; st != nil && (st.qos != p.QoS || s.unknownSession && st.sum != 0 && st.sum != sum) {
		// Not a copy: a broker never reuses an identifier for another
		// QoS while its flow is open, so the record is of a flow the
		// broker no longer has (a session loss a failed store could not
		// record before a restart). Nor is another message under the
		// identifier in a session a broker kept while this one went on
		// at another server: the record is that server's message, this
		// one a message this server had in flight when the client left
		// it. Forgotten; the message is new.
		if err := s.unstoreInbound(p.PacketID); err != nil {
			s.storeFailed(err)
			return
		}
		delete(s.in, p.PacketID)
	}
	if st := s.in[p.PacketID]; st != nil {
		// The broker sent it again (after a reconnect): it is the same
		// message, not delivered again [MQTT-4.3.3-10]. It
		// is answered in its turn: PUBACK or PUBREC if the application
		// has taken it, PUBREC again if PUBREL is awaited.
		s.arrivals.push(arrival{id: p.PacketID, gen: st.gen})
		s.sendAcks()
		return
	}
	st := &inState{qos: p.QoS, gen: s.gen, sum: sum}
	s.putIn(p.PacketID, st)
	s.arrivals.push(arrival{id: p.PacketID, gen: s.gen})
	if s.cfg.ManualAck {
		m.ack = &inboundAck{client: s.c, id: p.PacketID, gen: s.gen}
	}
	s.queueDelivery(delivery{msg: m, id: p.PacketID, gen: s.gen, size: size})
}

// inboundSeed keys inboundSum, for this process only: sums are never
// stored.
var inboundSeed = maphash.MakeSeed()

// inboundSum is the fingerprint of an inbound message: its topic and
// payload, which a broker's copy sent again repeats (its properties may
// not: the Message Expiry Interval counts down). Never 0, which stands for
// none.
func inboundSum(topic string, payload []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(inboundSeed)
	h.WriteString(topic)
	h.WriteByte(0)
	h.Write(payload)
	return max(h.Sum64(), 1)
}

// refusePublish answers a PUBLISH the decoder refused as beyond this
// client's limits (more than codec.MaxUserProperties user properties, ...):
// the message is not delivered, and a QoS 1/2 one is refused with
// ImplementationSpecificError in PUBACK or PUBREC, which ends its flow, so
// that the broker does not send it again on every connection. Counted in
// Stats.ReceivedDropped.
func (s *session) refusePublish(e *codec.Error) {
	s.c.stats.recvDropped.Add(1)
	s.cfg.Logger.Warn("mqtt: refusing an inbound message beyond this client's limits", "qos", byte(e.QoS), "id", e.PacketID, "err", e)
	switch e.QoS {
	case AtLeastOnce:
		s.send(conn.Frame{Packet: &codec.Puback{PacketID: e.PacketID, ReasonCode: e.Code}})
	case ExactlyOnce:
		s.send(conn.Frame{Packet: &codec.Pubrec{PacketID: e.PacketID, ReasonCode: e.Code}})
	}
}

// queueDelivery adds d to the messages waiting for the application, in
// the queue of the route that takes it or of Messages (see Route), unless
// it is a reply to a Request, which is handed over at once.
func (s *session) queueDelivery(d delivery) {
	if s.isReply(&d.msg) {
		s.reply(d)
		return
	}
	s.pendingN++
	s.pendingBytes += d.size
	if d.msg.QoS > AtMostOnce {
		s.pendingQoS12++
	}
	s.place(d)
}

// inboundSize is what an inbound message counts against MaxPendingBytes:
// its topic and payload, and its properties, which a broker can make as
// large as the payload.
func inboundSize(p *codec.Publish, version byte) int {
	if p.Properties != nil {
		if n, err := codec.Size(p, version); err == nil {
			return n
		}
	}
	return len(p.Topic) + len(p.Payload)
}

// receiveMaximum is the Receive Maximum this client announces (MQTT 5).
func (s *session) receiveMaximum() int { return min(s.cfg.MaxPending, math.MaxUint16) }

// receiveMaximumTolerated is how many unacknowledged QoS 1/2 messages an
// MQTT 5 broker may send before the client disconnects it with 0x93
// (Receive Maximum exceeded). Section 4.9 lets the client do so at the
// first one over the limit, but Mosquitto 2.0.11, the broker of Debian 12,
// overruns a small Receive Maximum (with 3 announced it had 12 in flight,
// bounded by its own max_inflight_messages of 20) and after a reconnect
// sends them all again at once: disconnecting at once would reconnect for
// ever. A smaller overrun costs no memory either way: the client stops
// reading once MaxPending messages wait for the application.
func receiveMaximumTolerated(rm int) int { return 2*rm + 20 }

// inboundPaused says whether the session stops taking frames from the
// connection because the application is behind: MaxPendingBytes of
// messages wait, or MaxPending QoS 1/2 messages (which an MQTT 3.1.1
// broker cannot be told, and an MQTT 5 broker may overrun; see
// receiveMaximumTolerated). The reader then waits, and TCP holds the
// broker back. While the client awaits acknowledgements (which come on the
// same stream, and which the application may be waiting for on the
// goroutine that reads Messages) it reads on, up to twice the limits.
func (s *session) inboundPaused() bool {
	if s.pendingBytes < s.cfg.MaxPendingBytes && s.pendingQoS12 < s.cfg.MaxPending {
		return false
	}
	if s.flights.len() == 0 {
		return true
	}
	return s.pendingBytes >= 2*s.cfg.MaxPendingBytes || s.pendingQoS12 >= 2*s.cfg.MaxPending
}

// inboundOpen is !inboundPaused, for takeWaiting.
func (s *session) inboundOpen() bool { return !s.inboundPaused() }

// ackedOnCur notes a PUBACK or PUBCOMP sent on cur: the broker may send
// one more QoS 1/2 message. Acks for messages of an earlier connection
// count too, as the broker counts them, never below zero (section 4.9).
func (s *session) ackedOnCur() {
	s.inQuota = max(s.inQuota-1, 0)
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

// resolveTopic applies an MQTT 5 topic alias (section 3.3.2.3.4). It fails the
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
		s.protocolError(codec.TopicAliasInvalid, codec.TypePublish, "topic alias %d is outside the 1..%d this client allows [MQTT-3.1.2-26]", alias, s.cfg.TopicAliasMaximum)
		return "", false
	}
	if p.Topic != "" {
		if s.aliases == nil {
			s.aliases = make(map[uint16]string)
		}
		// A copy: the frame's topic is a view into the whole frame,
		// which the table would otherwise keep alive.
		topic := strings.Clone(p.Topic)
		s.aliases[alias] = topic
		return topic, true
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
	d := *s.pending.front()
	s.pending.pop()
	s.handedOver(d)
}

// handedOver is called once the application received d, from Messages or
// from a route: it is no longer pending, and a QoS 1/2 message is
// acknowledged in its turn (unless ManualAck).
func (s *session) handedOver(d delivery) {
	id, gen, qos := d.id, d.gen, d.msg.QoS
	s.pendingN--
	s.pendingBytes -= d.size
	if qos > AtMostOnce {
		s.pendingQoS12--
	}
	s.c.stats.recv[qos].Add(1)
	if qos > AtMostOnce && !s.cfg.ManualAck {
		s.appReceived(id, gen)
	}
	if s.dropping && s.pendingN == 0 {
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
	if st.qos == ExactlyOnce && !st.stored {
		// Recorded now, connected or not, acknowledged in turn or held
		// back by an earlier message: the application has it, and a
		// restart must answer the broker's copy with PUBREC, not deliver
		// it again. If this fails, sendAck tries again before PUBREC.
		if err := s.storeInbound(id); err != nil {
			s.cfg.Logger.Error("mqtt: cannot record an inbound QoS 2 message in the store", "id", id, "err", err)
		} else {
			st.stored = true
		}
	}
	if s.cur != nil {
		s.sendAcks()
	}
}

// arrival is a QoS 1/2 PUBLISH received on the current connection.
type arrival struct {
	id  uint16
	gen uint64
}

// sendAcks sends the PUBACKs and PUBRECs that are due, in the order their
// PUBLISHes arrived on this connection [MQTT-4.6.0-2, MQTT-4.6.0-3]: an
// ack waits while an earlier message is still with the application. With
// automatic acknowledgement the application takes messages in that order,
// so nothing waits; with ManualAck, an unacknowledged message holds back
// the acknowledgements of those after it.
func (s *session) sendAcks() {
	for s.arrivals.len() > 0 {
		a := *s.arrivals.front()
		if st := s.in[a.id]; st != nil && st.gen == a.gen {
			switch st.stage {
			case inDelivering:
				return
			case inAckOwed:
				if !s.sendAck(a.id, st) {
					return
				}
			case inAwaitRel:
				if !s.send(conn.Frame{Packet: &codec.Pubrec{PacketID: a.id}}) {
					return
				}
			}
		}
		s.arrivals.pop()
	}
}

// sendAck sends the PUBACK or PUBREC an inbound message is owed. It
// reports false when it could not be sent.
func (s *session) sendAck(id uint16, st *inState) bool {
	if st.qos == AtLeastOnce {
		if !s.send(conn.Frame{Packet: &codec.Puback{PacketID: id}}) {
			return false
		}
		delete(s.in, id)
		s.ackedOnCur()
		return true
	}
	if !st.stored {
		if err := s.storeInbound(id); err != nil {
			// Without its record, a restart could deliver the message twice:
			// no PUBREC, and the connection closes, so that the broker sends
			// it again later (3.1.1 [MQTT-4.8.0-2]).
			s.cfg.Logger.Error("mqtt: cannot record an inbound QoS 2 message in the store; closing the connection", "id", id, "err", err)
			s.cur.Fail(fmt.Errorf("mqtt: cannot record inbound QoS 2 message %d in the store: %w", id, err))
			s.lost()
			return false
		}
		st.stored = true
	}
	if !s.send(conn.Frame{Packet: &codec.Pubrec{PacketID: id}}) {
		return false
	}
	st.stage = inAwaitRel
	return true
}

// onPubrel completes an inbound QoS 2 flow; the packet identifier is free
// for a new message after PUBCOMP [MQTT-4.3.3-12].
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
		if !s.unknownSession {
			s.protocolError(codec.ProtocolError, codec.TypePubrel, "PUBREL for packet identifier %d before this client sent PUBREC", p.PacketID)
			return
		}
		// A session the broker kept while this one went on at another
		// server: the PUBREL is for a message of the session as the
		// broker kept it, and the entry here is another message's,
		// from the other server. Complete the broker's flow; the entry
		// stays for its own message.
		if s.cfg.version == codec.V5 {
			comp.ReasonCode = codec.PacketIdentifierNotFound
		}
	default:
		if err := s.unstoreInbound(p.PacketID); err != nil {
			// Still recorded, a restart would take the broker's next
			// message under this identifier for this one: no PUBCOMP
			// now; the broker's PUBREL comes again.
			s.storeFailed(err)
			return
		}
		delete(s.in, p.PacketID)
	}
	if s.send(conn.Frame{Packet: comp}) {
		s.ackedOnCur()
	}
}

package mqtttest

import (
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// takeoverTimeout bounds how long a reconnecting client waits for the
// message routings in progress to finish before its session is taken over
// (see brokerHook.OnSessionEstablish). Routings take microseconds; only a
// publisher whose socket is full can hold one up, and then the takeover
// goes ahead unprotected rather than wait for it.
const takeoverTimeout = 10 * time.Second

// brokerHook is the Broker's mochi hook. It allows every client everything
// (as mochi's auth.AllowHook does, whose package would pull in a YAML
// dependency), records which connection belongs to which client, wakes
// Broker.Wait on every event, and works around the bugs of mochi v2.7.9
// that lose, stall, reorder or misreport messages (see OnConnect,
// OnSessionEstablish, OnPacketEncode and book).
type brokerHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *brokerHook) ID() string { return "mqtttest" }

func (h *brokerHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnConnect,
		mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect,
		mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnPublish, mqtt.OnPublished,
		mqtt.OnWill, mqtt.OnWillSent, mqtt.OnQosPublish, mqtt.OnQosComplete,
		mqtt.OnQosDropped, mqtt.OnClientExpired, mqtt.OnPacketRead, mqtt.OnPacketEncode,
		mqtt.OnPacketSent:
		return true
	}
	return false
}

func (h *brokerHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (h *brokerHook) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }

// OnConnect runs once mochi has parsed the CONNECT, before the session is
// set up, on the connection's goroutine.
//
// It takes over mochi's flow control towards an MQTT 5 client that sent a
// Receive Maximum, which is broken in mochi v2.7.9 (upstream issue 340 is
// about the same code): a message routed while the quota is used up is
// kept in the session and not sent; a PUBACK that frees quota sends one
// such message and deletes it from the session, so its own PUBACK frees
// nothing, and after twice the Receive Maximum delivery stalls until the
// client reconnects (TestMochiReceiveMaximumStalls); and
// Inflight.NextImmediate read-locks the session twice, which deadlocks when
// a message is routed to the session at that moment. So mochi's is turned
// off, and mochi writes every message at once, as it does to 3.1.1
// clients; the connection's flowConn keeps back what the Receive Maximum
// does not allow yet.
func (h *brokerHook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	if fc, ok := cl.Net.Conn.(*flowConn); ok && cl.Properties.ProtocolVersion >= 5 {
		fc.setLimit(int(cl.Properties.Props.ReceiveMaximum)) // capped by mochi at Capabilities.MaximumInflight
	}
	cl.Properties.Props.ReceiveMaximum = 0 // also what a session takeover reads
	cl.State.Inflight.ResetSendQuota(0)
	h.b.mu.Lock()
	if bc, ok := h.b.conns[cl.Net.Conn]; ok {
		bc.client = cl
	}
	h.b.mu.Unlock()
	return nil
}

// OnSessionEstablish runs after the CONNECT was accepted, on the
// connection's goroutine, just before mochi takes over the client's existing
// session, if any.
//
// mochi's takeover copies the old session's messages and subscriptions to
// the new one, then empties the old one, and only then makes the new one
// reachable; a message routed to the client meanwhile lands in the old
// session and is lost. So a takeover here waits until the routings in
// progress have finished, and keeps new ones waiting until mochi has sent
// the CONNACK and resent the session's messages (OnSessionEstablished): no
// message is lost, and the resent ones come before the new ones.
func (h *brokerHook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	if pk.Connect.Clean {
		return // the old session, if any, is discarded with its messages
	}
	if _, ok := h.b.srv.Clients.Get(cl.ID); !ok {
		return // no takeover
	}
	if !h.b.gate.lock(takeoverTimeout) {
		h.b.srv.Log.Warn("mqtttest: session taken over while messages are routed", "client", cl.ID)
		return
	}
	h.b.mu.Lock()
	if bc, ok := h.b.conns[cl.Net.Conn]; ok {
		bc.takeover = true
	}
	h.b.mu.Unlock()
}

// OnPacketRead runs when mochi has read a packet from the client, on the
// connection's goroutine, before mochi processes it. It tells the
// connection's flowConn that a message to the client is complete, which
// frees its place under the Receive Maximum (MQTT 5 section 4.9: a PUBACK,
// a PUBCOMP, or a PUBREC with a failure code, which mochi takes to be one
// that is not valid too). And it notes the packet identifier of a QoS 2
// PUBLISH sent again (DUP) for OnPacketEncode.
func (h *brokerHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	t := pk.FixedHeader.Type
	if t == packets.Puback || t == packets.Pubcomp ||
		t == packets.Pubrec && (pk.ReasonCode >= packets.ErrUnspecifiedError.Code || !pk.ReasonCodeValid()) {
		if fc, ok := cl.Net.Conn.(*flowConn); ok {
			// A failed write has broken the connection; mochi's next read
			// or write notices.
			_ = fc.completed(pk.PacketID)
		}
	}
	if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos == 2 {
		h.b.mu.Lock()
		if bc, ok := h.b.conns[cl.Net.Conn]; ok {
			bc.dupQos2 = 0
			if pk.FixedHeader.Dup {
				bc.dupQos2 = pk.PacketID
			}
		}
		h.b.mu.Unlock()
	}
	return pk, nil
}

// OnPacketEncode runs before mochi writes a packet, on the goroutine that
// writes it. It corrects two of mochi's packets:
//
//   - Before the CONNACK of a resumed session, which mochi follows with the
//     session's stored packets, it drops the acknowledgements of client
//     messages that were never routed and puts the messages to the client in
//     the order they were queued (see book). The session is the new
//     connection's copy, which nothing else touches until it is resent.
//   - mochi answers a QoS 2 PUBLISH sent again (DUP) while its PUBREL is
//     awaited with a PUBREC "packet identifier in use" (0x91), so an MQTT 5
//     client takes a delivered message for a failed one. MQTT requires the
//     PUBREC of the first copy ([MQTT-4.3.3-10] does not deliver it twice):
//     it becomes a success.
func (h *brokerHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Connack:
		if pk.SessionPresent {
			if n := h.b.book.dropUnrouted(cl.ID, cl.State.Inflight); n > 0 {
				atomic.AddInt64(&h.b.srv.Info.Inflight, -int64(n))
			}
			h.b.book.sort(cl.ID, cl.State.Inflight, time.Now().Unix())
		}
	case packets.Pubrec:
		if pk.ReasonCode == packets.ErrPacketIdentifierInUse.Code && h.b.isDupQos2(cl, pk.PacketID) {
			pk.ReasonCode = packets.CodeSuccess.Code
			pk.Properties.ReasonString = ""
		}
	}
	return pk
}

// OnPacketSent runs after mochi wrote a packet to the client (to its
// flowConn, or to its write buffer), on the goroutine that wrote it. A
// PUBLISH wakes Broker.Wait, for tests that wait for Info.MessagesSent.
func (h *brokerHook) OnPacketSent(_ *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type == packets.Publish {
		h.b.changed.broadcast()
	}
}

// OnSessionEstablished runs after the CONNACK was written and the session's
// messages were resent, on the connection's goroutine.
func (h *brokerHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	h.b.mu.Lock()
	bc, ok := h.b.conns[cl.Net.Conn]
	if ok {
		bc.clientID = cl.ID
	}
	h.b.mu.Unlock()
	if ok {
		h.b.endTakeover(bc)
	}
	h.b.changed.broadcast()
}

// OnPublish runs before mochi routes a message a client (or Broker.Publish)
// published, on the publisher's goroutine; OnPublished after. mochi skips
// OnPublished only when writing the PUBACK fails, which ends the connection
// (see Broker.handle).
func (h *brokerHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.b.enterRoute(cl)
	return pk, nil
}

func (h *brokerHook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if pk.FixedHeader.Qos == 2 && !cl.Net.Inline {
		h.b.book.routed(cl.ID, pk.PacketID)
	}
	h.b.leaveRoute(cl)
	h.b.changed.broadcast()
}

// OnWill runs before mochi routes the will of a client whose connection
// ended, on that connection's goroutine, and OnWillSent after, unless the
// will is delayed. A delayed will is routed later by mochi's housekeeping
// goroutine, which calls OnWillSent alone.
func (h *brokerHook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if will.WillDelayInterval == 0 {
		h.b.enterRoute(cl)
	}
	return will, nil
}

func (h *brokerHook) OnWillSent(cl *mqtt.Client, _ packets.Packet) {
	h.b.leaveRoute(cl)
}

// OnQosPublish runs when mochi has put a message into a session, when it
// resends one (with DUP set: the message keeps its place, even if the
// resend is cut short), and when it has recorded a QoS 2 message a client
// published.
//
// This and the two hooks below ignore the old copy of a session taken over
// (IsTakenOver): its connection may still be finishing a packet, and its
// packet identifiers may already be reused by the new copy.
func (h *brokerHook) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type == packets.Publish && !pk.FixedHeader.Dup && !cl.IsTakenOver() {
		h.b.book.queued(cl.ID, pk.PacketID)
	}
	h.b.changed.broadcast()
}

// OnQosComplete runs when a QoS 1 or 2 flow ends, in either direction. mochi
// keeps both directions in one table keyed by packet identifier; the
// PUBACK or PUBCOMP that ends a message sent to the client is the one
// decoded from the wire, with no Created.
func (h *brokerHook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if !cl.IsTakenOver() {
		switch t := pk.FixedHeader.Type; {
		case (t == packets.Puback || t == packets.Pubcomp) && pk.Created == 0:
			h.b.book.done(cl.ID, pk.PacketID, cl.State.Inflight)
		case t == packets.Pubrel: // the end of a QoS 2 message from the client
			h.b.book.released(cl.ID, pk.PacketID)
		}
	}
	h.b.changed.broadcast()
}

// OnQosDropped runs when mochi removes a message from a session without
// completing it, including when a takeover empties the old copy of the
// session, whose order the new copy still needs.
func (h *brokerHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if !cl.IsTakenOver() {
		switch pk.FixedHeader.Type {
		case packets.Pubrec: // of a message from the client
			h.b.book.released(cl.ID, pk.PacketID)
		case packets.Pubrel: // of a message from or to the client
			h.b.book.released(cl.ID, pk.PacketID)
			h.b.book.done(cl.ID, pk.PacketID, cl.State.Inflight)
		default:
			h.b.book.done(cl.ID, pk.PacketID, cl.State.Inflight)
		}
	}
	h.b.changed.broadcast()
}

func (h *brokerHook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if expire && !cl.IsTakenOver() {
		h.b.book.forget(cl.ID)
	}
	h.b.changed.broadcast()
}

func (h *brokerHook) OnClientExpired(cl *mqtt.Client) {
	h.b.book.forget(cl.ID)
	h.b.changed.broadcast()
}

func (h *brokerHook) OnSubscribed(*mqtt.Client, packets.Packet, []byte) { h.b.changed.broadcast() }
func (h *brokerHook) OnUnsubscribed(*mqtt.Client, packets.Packet)       { h.b.changed.broadcast() }

// endTakeover gives back the gate if bc holds it for a takeover.
func (b *Broker) endTakeover(bc *brokerConn) {
	b.mu.Lock()
	held := bc.takeover
	bc.takeover = false
	b.mu.Unlock()
	if held {
		b.gate.unlock()
	}
}

// enterRoute is called before mochi routes a message published by cl, on
// cl's goroutine. A client enters the gate once, however many routings it
// nests (a will routed after a failed PUBACK): entering twice could wait
// for a takeover that waits for the first.
func (b *Broker) enterRoute(cl *mqtt.Client) {
	b.mu.Lock()
	n := b.routes[cl]
	b.routes[cl] = n + 1
	b.mu.Unlock()
	if n == 0 {
		b.gate.enter()
	}
}

// leaveRoute is called after mochi routed a message published by cl. It
// does nothing if cl has not entered (a delayed will).
func (b *Broker) leaveRoute(cl *mqtt.Client) {
	b.mu.Lock()
	n := b.routes[cl]
	switch {
	case n > 1:
		b.routes[cl] = n - 1
	case n == 1:
		delete(b.routes, cl)
	}
	b.mu.Unlock()
	if n == 1 {
		b.gate.leave()
	}
}

// isDupQos2 reports whether the QoS 2 PUBLISH cl's connection has just
// read, which mochi is answering, was a DUP with this packet identifier.
func (b *Broker) isDupQos2(cl *mqtt.Client, id uint16) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	bc, ok := b.conns[cl.Net.Conn]
	return ok && bc.dupQos2 == id
}

package mqtttest

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/robustmqtt/mqtt/codec"
)

// connState is what a Monitor knows of its connection. It is guarded by
// Monitor.mu.
type connState struct {
	seq        uint64 // frames seen, both ways
	sent, recv history
	violations int

	// From the client's CONNECT.
	connected  bool   // CONNECT seen
	dormant    bool   // not a connection the Monitor can judge (MQTT 3.1, ...)
	version    byte   // codec.V311 or codec.V5
	clientID   string // also the key of the session in Monitor.book
	cleanStart bool
	authMethod bool
	keepAlive  time.Duration

	// From the server's first CONNACK, if it accepted the connection.
	connack        bool
	sessionPresent bool
	maxPacketSize  int // 0: no limit
	maxQoS         codec.QoS
	retain         bool
	wildcardSubs   bool
	subIDs         bool
	sharedSubs     bool
	aliasMax       uint16
	receiveMax     int // 0: no limit (MQTT 3.1.1)

	disconnected bool // the client sent DISCONNECT
	afterDisc    bool // and then something else, reported
	ended        bool
	clientBroken bool // the client's stream cannot be framed any more
	serverLost   bool // what the client received is no longer known

	// Flows the client started on this connection, by packet identifier.
	out      map[uint16]outFlow
	inflight int                 // QoS 1/2 PUBLISHes sent on this connection, not complete
	done     map[uint16]struct{} // identifiers of PUBLISHes completed on this connection
	aliases  map[uint16]struct{} // topic aliases the client set on this connection

	// Flows the server started on this connection.
	arrivals  map[uint16]*arrival // QoS 1/2 PUBLISHes from the server, by identifier
	serverRel map[uint16]struct{} // identifiers the server sent PUBREL for
	arrived   uint64              // numbers the server's QoS 1/2 PUBLISHes, in arrival order
	lastAck   [2]uint64           // arrival number of the latest PUBACK [0] and PUBREC [1] sent

	// PUBREL order: the PUBRECs the client may answer, numbered in arrival
	// order by Monitor.book. A PUBREL answers one copy of its PUBREC: one
	// of an earlier connection, which it re-sends, or one of this one.
	owedRel map[uint16][]uint64 // the PUBRECs of earlier connections, if no PUBREL answered them here
	recs    map[uint16][]uint64 // PUBRECs that arrived on this connection, not yet answered
	lastRel uint64              // number of the PUBREC the latest PUBREL answered

	// Keep Alive: the client's silence since its last frame.
	armedAt    time.Time     // when the server accepted the connection
	quiet      time.Duration // time the tap waited in vain for the client since its last frame
	lastClient time.Time     // when its last frame arrived (Monitor fed frame by frame)
	pingAt     time.Time     // when its last PINGREQ arrived
	pongAt     time.Time     // when the PINGRESP to it was sent; zero: not yet
}

// outFlow is a flow the client started: a QoS 1 or 2 PUBLISH, a SUBSCRIBE
// or an UNSUBSCRIBE.
type outFlow struct {
	kind    codec.PacketType // TypePublish, TypeSubscribe or TypeUnsubscribe
	qos     codec.QoS
	counted bool // its PUBLISH went out on this connection: it takes a place in the Receive Maximum
	pubrec  bool // the server's PUBREC (success) arrived
	pubrel  bool // the client sent PUBREL
	early   bool // a PUBREC for a PUBLISH of an earlier connection, which the client may still send again
}

// arrival is a packet identifier of the server's QoS 1/2 PUBLISHes on this
// connection: at which QoS it came, and by QoS the arrival numbers of the
// copies not yet acknowledged, oldest first.
type arrival struct {
	qos     [3]bool
	pending [3][]uint64
}

// maxPending bounds the copies of one identifier a Monitor remembers: a
// server that sends one identifier again and again (a hostile test) gets
// its oldest copies forgotten.
const maxPending = 16

func (s *connState) init() {
	s.maxQoS = codec.QoS2
	s.retain, s.wildcardSubs, s.subIDs, s.sharedSubs = true, true, true, true
	s.out = make(map[uint16]outFlow)
	s.done = make(map[uint16]struct{})
	s.aliases = make(map[uint16]struct{})
	s.arrivals = make(map[uint16]*arrival)
	s.serverRel = make(map[uint16]struct{})
	s.recs = make(map[uint16][]uint64)
}

// armed reports whether the Keep Alive rule applies: the server accepted
// the connection, so the client knows it may go on, and nothing since has
// made the client's silence excusable.
func (s *connState) armed() bool {
	return s.connack && s.keepAlive > 0 && !s.disconnected && !s.serverLost && !s.dormant
}

// lose turns off the rules that depend on what the client received.
func (s *connState) lose() { s.serverLost = true }

// follows reports whether the rules that depend on the server's frames
// apply: the Monitor has seen every frame the client received.
func (s *connState) follows() bool { return !s.serverLost }

// newSession reports whether this connection starts a new session, in
// which no message can have been sent before: MQTT 5.0 after a CONNACK
// with Session Present 0 [MQTT-3.2.2-5], MQTT 3.1.1 with Clean Session 1
// [MQTT-3.1.2-6].
func (s *connState) newSession() bool {
	if s.version == codec.V311 {
		return s.cleanStart
	}
	return s.connack && !s.sessionPresent
}

// checkGap reports a Keep Alive breach if the client was silent for gap,
// more than 1.5 times its Keep Alive, while the server was responsive:
// its last PINGREQ, if any, was answered within half a Keep Alive (a
// client that waits longer for a PINGRESP may well close the connection
// rather than send anything).
func (s *connState) checkGap(m *Monitor, gap time.Duration) {
	if !s.armed() || gap <= s.keepAlive*3/2 {
		return
	}
	if !s.pingAt.IsZero() && (s.pongAt.IsZero() || s.pongAt.Sub(s.pingAt) > s.keepAlive/2) {
		return
	}
	m.violate(ruleKeepAlive, fmt.Sprintf("the client sent nothing for %s with a Keep Alive of %s",
		gap.Round(time.Millisecond), s.keepAlive), false)
	s.quiet = 0
}

// history records a frame for the reports.
func (s *connState) history(client bool, frame []byte, total int) {
	s.seq++
	if client {
		s.sent.add(s.seq, true, frame, total)
	} else {
		s.recv.add(s.seq, false, frame, total)
	}
}

// frames renders the remembered frames of both directions in the order
// they were seen.
func (s *connState) frames(offending bool) []string {
	all := append(s.sent.last(), s.recv.last()...)
	for i := 1; i < len(all); i++ { // insertion sort: at most 16, nearly sorted
		for j := i; j > 0 && all[j].seq < all[j-1].seq; j-- {
			all[j], all[j-1] = all[j-1], all[j]
		}
	}
	out := make([]string, len(all))
	for i, f := range all {
		mark := "← "
		if f.client {
			mark = "→ "
		}
		if offending && f.client && f.seq == s.lastClientSeq() {
			mark = "! " + mark
		} else {
			mark = "  " + mark
		}
		out[i] = mark + describe(f.head[:f.n], f.total, s.version)
	}
	return out
}

func (s *connState) lastClientSeq() uint64 {
	if s.sent.count == 0 {
		return 0
	}
	return s.sent.frames[(s.sent.next-1+historyLen)%historyLen].seq
}

// server takes note of a frame from the server: frame is all of it or its
// first serverKeep bytes, total its length. Called with mu held.
func (m *Monitor) server(frame []byte, total int, now time.Time) {
	s := &m.st
	if s.ended {
		return
	}
	s.history(false, frame, total)
	if s.dormant || s.serverLost || !s.connected {
		return
	}
	_, hlen, ok, _ := fixedHeader(frame)
	if !ok {
		return
	}
	vh := frame[hlen:]
	id := func() (uint16, bool) {
		if len(vh) < 2 {
			return 0, false
		}
		return binary.BigEndian.Uint16(vh), true
	}
	switch codec.PacketType(frame[0] >> 4) {
	case codec.TypeConnack:
		if !s.connack && len(frame) == total {
			m.connack(frame, now)
		}
	case codec.TypePublish:
		qos := codec.QoS(frame[0] >> 1 & 3)
		if qos == 0 || qos > 2 || len(vh) < 2 {
			return
		}
		at := 2 + int(binary.BigEndian.Uint16(vh))
		if at+2 > len(vh) {
			return
		}
		pid := binary.BigEndian.Uint16(vh[at:])
		a := s.arrivals[pid]
		if a == nil {
			a = &arrival{}
			s.arrivals[pid] = a
		}
		a.qos[qos] = true
		s.arrived++
		if len(a.pending[qos]) == maxPending {
			a.pending[qos] = a.pending[qos][1:]
		}
		a.pending[qos] = append(a.pending[qos], s.arrived)
	case codec.TypePuback:
		if pid, ok := id(); ok {
			s.complete(pid, codec.TypePublish)
		}
	case codec.TypePubrec:
		pid, ok := id()
		if !ok {
			return
		}
		if s.version == codec.V5 && len(vh) > 2 && vh[2] >= 0x80 {
			s.complete(pid, codec.TypePublish) // [MQTT-4.4.0-2]: the flow ends
			m.book.forget(s.clientID, pid)
			delete(s.recs, pid)
			return
		}
		switch f, ok := s.out[pid]; {
		case ok && f.kind == codec.TypePublish:
			f.pubrec = true
			s.out[pid] = f
		case !ok:
			// The PUBREC of a PUBLISH sent on an earlier connection: a
			// server may send it again when the session resumes, and it
			// may cross the client's PUBLISH sent again.
			s.out[pid] = outFlow{kind: codec.TypePublish, qos: 2, pubrec: true, early: true}
		}
		s.recs[pid] = appendCopy(s.recs[pid], m.book.pubrec(s.clientID, pid))
	case codec.TypePubcomp:
		if pid, ok := id(); ok {
			s.complete(pid, codec.TypePublish)
			m.book.forget(s.clientID, pid)
			delete(s.recs, pid)
		}
	case codec.TypePubrel:
		if pid, ok := id(); ok {
			s.serverRel[pid] = struct{}{}
		}
	case codec.TypeSuback:
		if pid, ok := id(); ok {
			s.complete(pid, codec.TypeSubscribe)
		}
	case codec.TypeUnsuback:
		if pid, ok := id(); ok {
			s.complete(pid, codec.TypeUnsubscribe)
		}
	case codec.TypePingresp:
		if !s.pingAt.IsZero() && s.pongAt.IsZero() {
			s.pongAt = now
		}
	}
}

// complete ends the client's flow with this identifier, if it is of kind:
// its identifier is free again, and a PUBLISH gives back its place in the
// Receive Maximum.
func (s *connState) complete(id uint16, kind codec.PacketType) {
	f, ok := s.out[id]
	if !ok || f.kind != kind {
		return
	}
	delete(s.out, id)
	if f.counted {
		s.inflight--
	}
	if kind == codec.TypePublish {
		s.done[id] = struct{}{}
	}
}

// connack takes the server's limits from its first CONNACK. Called with mu
// held.
func (m *Monitor) connack(frame []byte, now time.Time) {
	s := &m.st
	p, _, err := codec.Decode(frame, s.version, 0)
	if err != nil {
		return // the client refuses it too
	}
	ca, ok := p.(*codec.Connack)
	if !ok || ca.ReasonCode.IsError() {
		return
	}
	s.connack = true
	s.sessionPresent = ca.SessionPresent
	s.armedAt = now
	s.quiet = 0
	if s.version != codec.V5 {
		return
	}
	s.receiveMax = 65535
	pr := ca.Properties
	if pr == nil {
		return
	}
	if pr.MaximumPacketSize != nil {
		s.maxPacketSize = int(*pr.MaximumPacketSize)
	}
	if pr.MaximumQoS != nil {
		s.maxQoS = codec.QoS(*pr.MaximumQoS)
	}
	if pr.RetainAvailable != nil {
		s.retain = *pr.RetainAvailable
	}
	if pr.WildcardSubAvailable != nil {
		s.wildcardSubs = *pr.WildcardSubAvailable
	}
	if pr.SubIDAvailable != nil {
		s.subIDs = *pr.SubIDAvailable
	}
	if pr.SharedSubAvailable != nil {
		s.sharedSubs = *pr.SharedSubAvailable
	}
	if pr.TopicAliasMaximum != nil {
		s.aliasMax = *pr.TopicAliasMaximum
	}
	if pr.ReceiveMaximum != nil {
		s.receiveMax = int(*pr.ReceiveMaximum)
	}
	if pr.ServerKeepAlive != nil {
		s.keepAlive = time.Duration(*pr.ServerKeepAlive) * time.Second // [MQTT-3.1.2-21]
	}
}

// sessionBook numbers the server's PUBRECs of an endpoint in the order
// they arrived, and keeps, for each QoS 2 flow of each client's session
// that has no PUBCOMP yet, the numbers of the PUBRECs that came since the
// client last sent its PUBLISH, so that the PUBRELs a client re-sends on a
// new connection can be held to that order [MQTT-4.6.0-4]. Its methods are
// safe for concurrent use. A client with an empty identifier gets numbers
// but no record: its session cannot outlive the connection.
//
// It keeps every copy, not only the first or the latest, because it sees
// what the server wrote, not what the client read: a PUBREC written just
// before a connection died may never have reached the client, and a client
// restarted from a store knows only the PUBRECs it recorded. Which copy a
// PUBREL answers is the client's to know; see Monitor.pubrel.
type sessionBook struct {
	mu       sync.Mutex
	next     uint64
	sessions map[string]map[uint16][]uint64 // client identifier → packet identifier → PUBREC numbers, oldest first
}

// pubrec records that a PUBREC for id arrived now, and returns its number.
func (b *sessionBook) pubrec(client string, id uint16) uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	if client == "" {
		return b.next
	}
	if b.sessions == nil {
		b.sessions = make(map[string]map[uint16][]uint64)
	}
	s := b.sessions[client]
	if s == nil {
		s = make(map[uint16][]uint64)
		b.sessions[client] = s
	}
	s[id] = appendCopy(s[id], b.next)
	return b.next
}

// appendCopy appends n to the numbers of one identifier's copies, keeping
// at most maxPending: past that, the latest replaces the one before it,
// so the oldest and the newest are always known.
func appendCopy(ns []uint64, n uint64) []uint64 {
	if len(ns) == maxPending {
		ns[len(ns)-1] = n
		return ns
	}
	return append(ns, n)
}

// published records that the client sent a QoS 2 PUBLISH with id (again):
// the PUBRECs of its earlier copies are no longer owed. Those of this
// connection that crossed it, kept, stay.
func (b *sessionBook) published(client string, id uint16, kept []uint64) {
	if client == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.sessions[client]
	if s == nil {
		return
	}
	if len(kept) == 0 {
		delete(s, id)
		return
	}
	s[id] = slices.Clone(kept)
}

// forget ends the record of id: its flow is complete.
func (b *sessionBook) forget(client string, id uint16) {
	if client == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.sessions[client]; s != nil {
		delete(s, id)
		if len(s) == 0 {
			delete(b.sessions, client)
		}
	}
}

// owed returns a copy of the record of client: the PUBRECs its session
// may owe a PUBREL for, by packet identifier.
func (b *sessionBook) owed(client string) map[uint16][]uint64 {
	owed := make(map[uint16][]uint64)
	if client == "" {
		return owed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, ns := range b.sessions[client] {
		owed[id] = slices.Clone(ns)
	}
	return owed
}

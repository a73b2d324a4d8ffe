package mqtttest

import (
	"cmp"
	"slices"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// book keeps, for each session (by client identifier) and packet
// identifier, what mochi v2.7.9 does not keep and the Broker needs to resume
// a session correctly:
//
//   - the order in which messages to the client were queued. mochi resends
//     a session's messages sorted by the low 16 bits of Created, the Unix
//     second each arrived in, so the messages of one second come out in map
//     order; and their packet identifiers tell nothing either, since each
//     connection starts counting them again from 1. So the book numbers the
//     messages as mochi queues them, and before mochi resends a session,
//     sort rewrites Created to follow those numbers, as MQTT requires
//     ([MQTT-4.6.0-1], ordered topics).
//   - which QoS 2 messages from the client were routed. mochi records its
//     PUBREC in the session before it writes it and routes the message only
//     after, so when the write fails the session holds a PUBREC for a
//     message that went nowhere (and likewise a PUBACK, for QoS 1), which
//     it sends when the session resumes: the client would take the message
//     as delivered. dropUnrouted removes those.
type book struct {
	mu       sync.Mutex
	next     uint64
	sessions map[string]*bookSession
}

type bookSession struct {
	queued map[uint16]uint64 // messages to the client: when queued
	routed map[uint16]bool   // QoS 2 messages from the client: routed
}

// session returns the record of clientID, creating it. Called with mu held.
func (b *book) session(clientID string) *bookSession {
	if b.sessions == nil {
		b.sessions = make(map[string]*bookSession)
	}
	s := b.sessions[clientID]
	if s == nil {
		s = &bookSession{queued: make(map[uint16]uint64), routed: make(map[uint16]bool)}
		b.sessions[clientID] = s
	}
	return s
}

// queued records that a message to the client was queued now with this
// packet identifier.
func (b *book) queued(clientID string, id uint16) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	b.session(clientID).queued[id] = b.next
}

// done forgets a message to the client that left in, its session. mochi
// calls the hooks that report it after it removed the message, so a new
// message may have taken the packet identifier meanwhile: then in holds it,
// and its number, recorded or about to be, stays.
func (b *book) done(clientID string, id uint16, in *mqtt.Inflight) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := in.Get(id); !ok {
		delete(b.session(clientID).queued, id)
	}
}

// routed records that a QoS 2 message from the client was routed.
func (b *book) routed(clientID string, id uint16) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.session(clientID).routed[id] = true
}

// released forgets a QoS 2 message from the client whose flow ended.
func (b *book) released(clientID string, id uint16) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.session(clientID).routed, id)
}

// forget forgets a session.
func (b *book) forget(clientID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.sessions, clientID)
}

// dropUnrouted removes from in, the session of clientID about to resume,
// the acknowledgements of client messages that were never routed: every
// PUBACK (mochi removes those it wrote) and the PUBRECs of QoS 2 messages
// not routed. The client will send those messages again. It returns how
// many it removed.
func (b *book) dropUnrouted(clientID string, in *mqtt.Inflight) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.session(clientID)
	n := 0
	for _, pk := range in.GetAll(false) {
		t := pk.FixedHeader.Type
		if (t == packets.Puback || t == packets.Pubrec && !s.routed[pk.PacketID]) && in.Delete(pk.PacketID) {
			n++
		}
	}
	return n
}

// sort rewrites the Created of the messages to the client in in, the
// session of clientID about to resume, so that mochi resends them in the
// order they were queued: consecutive seconds ending at now, so that
// mochi's expiry does not drop them sooner. Messages it has no number for
// come first, by packet identifier.
func (b *book) sort(clientID string, in *mqtt.Inflight, now int64) {
	msgs := in.GetAll(false)
	if len(msgs) < 2 {
		return
	}
	b.mu.Lock()
	queued := b.session(clientID).queued
	slices.SortFunc(msgs, func(x, y packets.Packet) int {
		return cmp.Or(cmp.Compare(queued[x.PacketID], queued[y.PacketID]), cmp.Compare(x.PacketID, y.PacketID))
	})
	b.mu.Unlock()
	n := len(msgs)
	base := now - int64(n) + 1
	if over := int64(uint16(base)) + int64(n) - 65536; over > 0 {
		base -= over // keep the low 16 bits from wrapping within the run
	}
	for i, pk := range msgs {
		pk.Created = base + int64(i)
		in.Set(pk)
	}
}

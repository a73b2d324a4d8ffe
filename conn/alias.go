package conn

import (
	"math"

	"github.com/robustmqtt/mqtt/codec"
)

// minAliasTopic is the shortest topic given an alias. The alias costs
// three bytes (property identifier and value) in every PUBLISH that
// carries it and saves the topic's bytes in those that carry it alone: a
// shorter topic would save nothing.
const minAliasTopic = 4

// aliasTable chooses the Topic Aliases of the PUBLISH packets that one
// connection writes (MQTT 5 section 3.3.2.3.4). The writer owns it.
//
// It decides as the writer encodes, in the order frames go on the wire,
// not when the session queues them, because only then is it known which
// frames are written: a frame withdrawn while queued (its ctx ended) or
// put back for the next batch must not leave the broker without a
// mapping that a later frame relies on. So an alias goes alone only after
// a frame that carried it with its topic was encoded earlier on this
// connection. A table lives as long as its connection, as aliases do
// [MQTT-3.3.2-7]: a PUBLISH sent again after a reconnect carries its
// topic, with or without an alias of the new connection. The packets the
// writer is given are not changed; a copy with the alias is encoded in
// their place.
//
// When every alias is taken, the least recently used topic gives its alias
// up, but only to a topic that found the table full once already among
// the last max such misses: a device that publishes to more topics in
// turn than it has aliases sends them whole, as without aliases, instead
// of paying for an alias it loses before it is used again.
type aliasTable struct {
	max       int // aliases available, 1..65535
	maxPacket int // the broker's Maximum Packet Size; 0: none
	entries   map[string]*aliasEntry
	lru       aliasEntry // sentinel: lru.next is the most recently used entry, lru.prev the least
	used      int        // aliases 1..used have been handed out
	free      []uint16   // of those, the ones forgotten

	missed map[string]struct{} // topics that recently found the table full
	ring   []string            // the same, oldest first from at
	at     int

	// The packet encoded in place of the queued one: valid until the next
	// call of packet. The writer encodes it before that.
	wire  codec.Publish
	props codec.Properties
	value uint16
}

// aliasEntry is one topic with its alias, in the table's recency list.
type aliasEntry struct {
	topic      string
	alias      uint16
	prev, next *aliasEntry
}

func newAliasTable(max, maxPacket int) *aliasTable {
	t := &aliasTable{max: min(max, math.MaxUint16), maxPacket: maxPacket,
		entries: make(map[string]*aliasEntry), missed: make(map[string]struct{})}
	t.lru.next, t.lru.prev = &t.lru, &t.lru
	return t
}

// packet returns what to encode for p: p itself, or a copy with a Topic
// Alias (valid until the next call), and the entry used, if any. set
// reports that the copy carries the topic as well, which sets the alias at
// the broker: if it is not written after all, the caller forgets e.
func (t *aliasTable) packet(p *codec.Publish) (pkt codec.Packet, e *aliasEntry, set bool) {
	if len(p.Topic) < minAliasTopic {
		return p, nil, false
	}
	e = t.entries[p.Topic]
	if e == nil {
		if e = t.admit(p.Topic); e == nil {
			return p, nil, false
		}
		set = true
	}
	t.touch(e)
	t.wire = *p
	if !set {
		t.wire.Topic = ""
	}
	if p.Properties != nil {
		t.props = *p.Properties
	} else {
		t.props = codec.Properties{}
	}
	t.value = e.alias
	t.props.TopicAlias = &t.value
	t.wire.Properties = &t.props
	return &t.wire, e, set
}

// admit gives topic an alias: a free one, or the least recently used
// one if topic missed the full table recently. It returns nil when topic
// goes without.
func (t *aliasTable) admit(topic string) *aliasEntry {
	var alias uint16
	switch {
	case len(t.free) > 0:
		alias = t.free[len(t.free)-1]
		t.free = t.free[:len(t.free)-1]
	case t.used < t.max:
		t.used++
		alias = uint16(t.used) // 1..max, never 0 [MQTT-3.3.2-8], never above the broker's [MQTT-3.3.2-9]
	default:
		if _, ok := t.missed[topic]; !ok {
			t.miss(topic)
			return nil
		}
		// Its slot in ring may later forget a newer miss of the same
		// topic: a lost chance of an alias, nothing worse.
		delete(t.missed, topic)
		old := t.lru.prev
		t.unlink(old)
		delete(t.entries, old.topic)
		alias = old.alias
	}
	e := &aliasEntry{topic: topic, alias: alias}
	t.entries[topic] = e
	t.link(e)
	return e
}

// miss remembers that topic found the table full, forgetting the oldest
// such topic beyond max.
func (t *aliasTable) miss(topic string) {
	if len(t.ring) < t.max {
		t.ring = append(t.ring, topic)
	} else {
		if old := t.ring[t.at]; old != topic {
			delete(t.missed, old)
		}
		t.ring[t.at] = topic
		t.at = (t.at + 1) % t.max
	}
	t.missed[topic] = struct{}{}
}

// forget drops e, whose alias the broker may not know: the frame that
// was to set it was not encoded. Its alias is free again.
func (t *aliasTable) forget(e *aliasEntry) {
	if t.entries[e.topic] != e {
		return
	}
	t.unlink(e)
	delete(t.entries, e.topic)
	t.free = append(t.free, e.alias)
}

// tooLarge reports whether a frame of n bytes exceeds the broker's Maximum
// Packet Size: a PUBLISH that fits whole may not with its alias as well.
func (t *aliasTable) tooLarge(n int) bool { return t.maxPacket > 0 && n > t.maxPacket }

func (t *aliasTable) touch(e *aliasEntry) {
	if t.lru.next != e {
		t.unlink(e)
		t.link(e)
	}
}

func (t *aliasTable) link(e *aliasEntry) {
	e.prev, e.next = &t.lru, t.lru.next
	t.lru.next.prev = e
	t.lru.next = e
}

func (t *aliasTable) unlink(e *aliasEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

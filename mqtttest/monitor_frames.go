package mqtttest

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/robustmqtt/mqtt/codec"
)

// fixedHeader parses the fixed header at the start of b: the frame's total
// length (header included) and the header's length. ok is false while b
// does not hold the whole header; bad reports a remaining length of more
// than four bytes, after which the stream cannot be split into frames.
func fixedHeader(b []byte) (total, hlen int, ok, bad bool) {
	remaining, shift := 0, 0
	for i := 1; i < len(b); i++ {
		if i > 4 {
			return 0, 0, false, true
		}
		remaining |= int(b[i]&0x7f) << shift
		shift += 7
		if b[i]&0x80 == 0 {
			return i + 1 + remaining, i + 1, true, false
		}
	}
	if len(b) > 4 {
		return 0, 0, false, true
	}
	return 0, 0, false, false
}

// splitter cuts one direction of a connection into MQTT frames, however
// the bytes arrive: a frame split across reads, or many frames in one.
// Whole frames that arrive in one piece are handed on where they lie, so
// the usual case copies nothing.
type splitter struct {
	keep   int    // longest frame handed on whole; of a longer one only its first keep bytes
	buf    []byte // the start of the frame in progress, at most keep bytes
	total  int    // its length, once its fixed header is complete; 0 before
	got    int    // how many of its bytes arrived
	broken bool   // a malformed remaining length: nothing more can be framed
}

// idle reports whether the splitter is between frames.
func (s *splitter) idle() bool { return s.got == 0 }

// feed splits p and calls fn with each complete frame (all of it, or its
// first keep bytes) and the frame's length. fn must not keep frame. It
// returns false once the stream has a remaining length it cannot parse.
func (s *splitter) feed(p []byte, fn func(frame []byte, total int)) bool {
	for len(p) > 0 && !s.broken {
		if s.got == 0 {
			total, _, ok, bad := fixedHeader(p)
			if bad {
				s.broken = true
				return false
			}
			if ok && total <= len(p) && total <= s.keep {
				fn(p[:total], total)
				p = p[total:]
				continue
			}
		}
		if s.total == 0 {
			// The header is still incomplete: take one byte at a time, at
			// most five, until it parses.
			s.buf = append(s.buf, p[0])
			s.got++
			p = p[1:]
			total, _, ok, bad := fixedHeader(s.buf)
			if bad {
				s.broken = true
				return false
			}
			if !ok {
				continue
			}
			s.total = total
		}
		n := min(s.total-s.got, len(p))
		if room := s.keep - len(s.buf); room > 0 {
			s.buf = append(s.buf, p[:min(n, room)]...)
		}
		s.got += n
		p = p[n:]
		if s.got == s.total {
			fn(s.buf, s.total)
			s.buf, s.total, s.got = s.buf[:0], 0, 0
			if cap(s.buf) > 64<<10 {
				s.buf = nil // one large frame does not pin its memory
			}
		}
	}
	return !s.broken
}

// historyLen is how many frames of each direction a Monitor remembers for
// the report of a violation.
const historyLen = 8

// headLen is how many bytes of each remembered frame are kept: enough to
// describe most frames whole.
const headLen = 96

// seenFrame is a frame remembered for a report: its first bytes only.
type seenFrame struct {
	seq    uint64
	client bool // sent by the client
	total  int
	n      int // bytes in head
	head   [headLen]byte
}

// history is a ring of the last frames of one direction.
type history struct {
	frames [historyLen]seenFrame
	next   int
	count  int
}

func (h *history) add(seq uint64, client bool, frame []byte, total int) {
	f := &h.frames[h.next]
	f.seq, f.client, f.total = seq, client, total
	f.n = copy(f.head[:], frame)
	h.next = (h.next + 1) % historyLen
	h.count = min(h.count+1, historyLen)
}

// last returns the remembered frames, oldest first.
func (h *history) last() []seenFrame {
	out := make([]seenFrame, 0, h.count)
	for i := h.count; i > 0; i-- {
		out = append(out, h.frames[(h.next-i+historyLen)%historyLen])
	}
	return out
}

// describe renders a frame for a report: its type and the fields that
// matter to the rules, from as much of it as was kept. version is the
// connection's protocol level, 0 if not known yet.
func describe(head []byte, total int, version byte) string {
	if len(head) == 0 {
		return "(empty)"
	}
	t := codec.PacketType(head[0] >> 4)
	size := " (" + strconv.Itoa(total) + " bytes)"
	if len(head) == total && (version == codec.V311 || version == codec.V5 || t == codec.TypeConnect) {
		v := version
		if v == 0 {
			v = codec.V5
		}
		if p, _, err := codec.Decode(head, v, 0); err == nil {
			return describePacket(p) + size
		} else {
			return fmt.Sprintf("%s, malformed: %v: % x", t, err, head)
		}
	}
	// Cut short, or of an unknown version: what the fixed header and the
	// start of the variable header say.
	_, hlen, ok, _ := fixedHeader(head)
	if !ok {
		return fmt.Sprintf("%s%s: % x", t, size, head)
	}
	vh := head[hlen:]
	switch t {
	case codec.TypePublish:
		var b strings.Builder
		b.WriteString("PUBLISH")
		publishFlags(&b, codec.QoS(head[0]>>1&3), head[0]&8 != 0, head[0]&1 != 0)
		if len(vh) >= 2 {
			n := int(binary.BigEndian.Uint16(vh))
			if topic := vh[2:]; len(topic) >= n {
				fmt.Fprintf(&b, " topic=%q", topic[:n])
				if rest := topic[n:]; head[0]&6 != 0 && len(rest) >= 2 {
					fmt.Fprintf(&b, " id=%d", binary.BigEndian.Uint16(rest))
				}
			} else {
				fmt.Fprintf(&b, " topic=%q…", topic)
			}
		}
		return b.String() + size
	case codec.TypePuback, codec.TypePubrec, codec.TypePubrel, codec.TypePubcomp,
		codec.TypeSubscribe, codec.TypeSuback, codec.TypeUnsubscribe, codec.TypeUnsuback:
		if len(vh) >= 2 {
			return fmt.Sprintf("%s id=%d%s", t, binary.BigEndian.Uint16(vh), size)
		}
	}
	return t.String() + size
}

func publishFlags(b *strings.Builder, qos codec.QoS, dup, retain bool) {
	fmt.Fprintf(b, " qos=%d", qos)
	if dup {
		b.WriteString(" dup")
	}
	if retain {
		b.WriteString(" retain")
	}
}

// describePacket renders a decoded packet for a report.
func describePacket(p codec.Packet) string {
	var b strings.Builder
	b.WriteString(p.Type().String())
	code := func(c codec.ReasonCode) {
		if c != 0 {
			fmt.Fprintf(&b, " code=0x%02X", byte(c))
		}
	}
	switch p := p.(type) {
	case *codec.Connect:
		fmt.Fprintf(&b, " v%d client=%q keepalive=%d", p.Version, p.ClientID, p.KeepAlive)
		if p.CleanStart {
			b.WriteString(" clean")
		}
		props(&b, p.Properties)
	case *codec.Connack:
		fmt.Fprintf(&b, " code=0x%02X", byte(p.ReasonCode))
		if p.SessionPresent {
			b.WriteString(" session-present")
		}
		props(&b, p.Properties)
	case *codec.Publish:
		publishFlags(&b, p.QoS, p.Dup, p.Retain)
		fmt.Fprintf(&b, " topic=%q", p.Topic)
		if p.QoS > 0 {
			fmt.Fprintf(&b, " id=%d", p.PacketID)
		}
		props(&b, p.Properties)
	case *codec.Puback:
		fmt.Fprintf(&b, " id=%d", p.PacketID)
		code(p.ReasonCode)
	case *codec.Pubrec:
		fmt.Fprintf(&b, " id=%d", p.PacketID)
		code(p.ReasonCode)
	case *codec.Pubrel:
		fmt.Fprintf(&b, " id=%d", p.PacketID)
		code(p.ReasonCode)
	case *codec.Pubcomp:
		fmt.Fprintf(&b, " id=%d", p.PacketID)
		code(p.ReasonCode)
	case *codec.Subscribe:
		fmt.Fprintf(&b, " id=%d", p.PacketID)
		for _, s := range p.Subscriptions {
			fmt.Fprintf(&b, " %q/%d", s.Filter, s.QoS)
		}
		props(&b, p.Properties)
	case *codec.Suback:
		fmt.Fprintf(&b, " id=%d codes=% x", p.PacketID, p.ReasonCodes)
	case *codec.Unsubscribe:
		fmt.Fprintf(&b, " id=%d", p.PacketID)
		for _, f := range p.Filters {
			fmt.Fprintf(&b, " %q", f)
		}
	case *codec.Unsuback:
		fmt.Fprintf(&b, " id=%d", p.PacketID)
	case *codec.Disconnect:
		code(p.ReasonCode)
	case *codec.Auth:
		code(p.ReasonCode)
	}
	return b.String()
}

// props renders the properties the rules look at.
func props(b *strings.Builder, p *codec.Properties) {
	if p == nil {
		return
	}
	u16 := func(name string, v *uint16) {
		if v != nil {
			fmt.Fprintf(b, " %s=%d", name, *v)
		}
	}
	u16("receive-maximum", p.ReceiveMaximum)
	u16("topic-alias-maximum", p.TopicAliasMaximum)
	u16("topic-alias", p.TopicAlias)
	u16("server-keepalive", p.ServerKeepAlive)
	if p.MaximumPacketSize != nil {
		fmt.Fprintf(b, " maximum-packet-size=%d", *p.MaximumPacketSize)
	}
	if p.MaximumQoS != nil {
		fmt.Fprintf(b, " maximum-qos=%d", *p.MaximumQoS)
	}
	flag := func(name string, v *bool) {
		if v != nil {
			fmt.Fprintf(b, " %s=%t", name, *v)
		}
	}
	flag("retain-available", p.RetainAvailable)
	flag("wildcard-subscriptions", p.WildcardSubAvailable)
	flag("subscription-identifiers", p.SubIDAvailable)
	flag("shared-subscriptions", p.SharedSubAvailable)
	if len(p.SubscriptionIdentifier) > 0 {
		fmt.Fprintf(b, " subscription-identifier=%v", p.SubscriptionIdentifier)
	}
}

package codec

import (
	"slices"
	"unicode/utf8"
	"unsafe"
)

// Publish is a PUBLISH packet: an application message (section 3.3).
//
// Topic may be empty only in MQTT 5.0 with a Topic Alias property. PacketID is sent only
// at QoS 1 and 2, where it must not be 0; at QoS 0 it is ignored. Dup must be false at QoS
// 0 [MQTT-3.3.1-2]. Payload is nil when empty. A decoded Publish owns its Topic and
// Payload, which point into one buffer, a copy of the frame's body that nothing else uses
// or reuses; ReadPacket and Decode put the struct itself in the same allocation. Holding
// on to any of them keeps all of it, so clone the Topic (strings.Clone) to keep it alone
// for long.
type Publish struct {
	Topic      string
	Payload    []byte
	QoS        QoS
	Retain     bool
	Dup        bool
	PacketID   uint16
	Properties *Properties // MQTT 5.0 only
}

// Type returns TypePublish.
func (*Publish) Type() PacketType { return TypePublish }

func (p *Publish) header() byte {
	b := byte(TypePublish)<<4 | byte(p.QoS&3)<<1
	if p.Dup {
		b |= 0x08
	}
	if p.Retain {
		b |= 0x01
	}
	return b
}

// lens validates p and returns the Remaining Length and the size of its property list
// (without the Property Length prefix).
func (p *Publish) lens(version byte) (body, props int, err error) {
	// The common case (a plain ASCII topic of 8 bytes or more) is accepted by clean alone.
	if len(p.Topic) < 8 || len(p.Topic) > maxString || !clean(p.Topic) {
		if err := p.checkTopic(version); err != nil {
			return 0, 0, err
		}
	}
	body = 2 + len(p.Topic) + len(p.Payload)
	switch p.QoS {
	case QoS0:
		if p.Dup {
			return 0, 0, errorf(ProtocolError, TypePublish, -1, "DUP set on a QoS 0 message") // [MQTT-3.3.1-2]
		}
	case QoS1, QoS2:
		if p.PacketID == 0 {
			return 0, 0, checkPacketID(TypePublish, 0)
		}
		body += 2
	default:
		return 0, 0, errorf(MalformedPacket, TypePublish, -1, "QoS %d; it must be 0, 1 or 2", p.QoS) // [MQTT-3.3.1-4]
	}
	if p.Properties == nil {
		if version == V5 {
			body++ // Property Length 0
		}
		return body, 0, nil
	}
	if version != V5 {
		if !p.Properties.isEmpty() {
			return 0, 0, errV311Props(TypePublish)
		}
		return body, 0, nil
	}
	if props, err = p.Properties.encodedLen(cPublish); err != nil {
		return 0, 0, err
	}
	return body + varintLen(props) + props, props, nil
}

// checkTopic is the thorough check of the topic name, with an error that says what is
// wrong. An empty topic needs a Topic Alias in MQTT 5.0 and is invalid in 3.1.1.
func (p *Publish) checkTopic(version byte) error {
	if p.Topic == "" {
		if version == V311 {
			return errorf(TopicNameInvalid, TypePublish, -1, "topic name is empty") // [MQTT-4.7.3-1]
		}
		if p.Properties == nil || p.Properties.TopicAlias == nil {
			// Section 3.3.2.3.4: an empty Topic Name needs a Topic Alias.
			return errorf(ProtocolError, TypePublish, -1, "topic name is empty and there is no topic alias")
		}
		return nil
	}
	_, err := topicLen(TypePublish, "topic name", p.Topic)
	return err
}

func (p *Publish) bodyLen(version byte) (int, error) {
	n, _, err := p.lens(version)
	return n, err
}

// AppendTo appends p's frame to dst; see Packet. It allocates nothing when dst has room.
func (p *Publish) AppendTo(dst []byte, version byte) ([]byte, error) {
	if version != V311 && version != V5 {
		return dst, checkVersion(version)
	}
	n, props, err := p.lens(version)
	if err != nil {
		return dst, err
	}
	if n > maxRemaining {
		return dst, errorf(PacketTooLarge, TypePublish, -1,
			"remaining length %d is more than the protocol allows (%d)", n, maxRemaining)
	}
	// One capacity check, then plain stores: this is the hot path of every writer.
	total := 1 + varintLen(n) + n
	dst = slices.Grow(dst, total)
	start := len(dst)
	dst = dst[:start+total]
	b := dst[start:]
	b[0] = p.header()
	i := 1 + putVarint(b[1:], n)
	b[i], b[i+1] = byte(len(p.Topic)>>8), byte(len(p.Topic))
	i += 2 + copy(b[i+2:], p.Topic)
	if p.QoS > QoS0 {
		b[i], b[i+1] = byte(p.PacketID>>8), byte(p.PacketID)
		i += 2
	}
	if version == V5 {
		if props == 0 {
			b[i] = 0
			i++
		} else {
			i = len(appendProps(b[:i], p.Properties, props))
		}
	}
	copy(b[i:], p.Payload)
	return dst, nil
}

// errV311Props reports properties in a packet being encoded for MQTT 3.1.1.
func errV311Props(t PacketType) *Error {
	return errorf(MalformedPacket, t, -1, "MQTT 3.1.1 has no properties; set Properties to nil or encode for V5")
}

// publish decodes a PUBLISH body (section 3.3) into p; the fixed header was checked. It
// is the thorough path, with exact errors; plainPublish takes the common frames without
// it.
func (d *decoder) publish(p *Publish, first byte, version byte) error {
	p.QoS = QoS(first >> 1 & 3)
	p.Dup = first&0x08 != 0
	p.Retain = first&0x01 != 0
	topicAt := d.off
	var err error
	if p.Topic, err = d.string("topic name", true); err != nil {
		return err
	}
	if p.QoS > QoS0 {
		if p.PacketID, err = d.packetID(); err != nil {
			return err
		}
	}
	if version == V5 {
		if p.Properties, err = d.properties(cPublish); err != nil {
			if e, ok := err.(*Error); ok && e.Code == ImplementationSpecificError {
				e.QoS, e.PacketID = p.QoS, p.PacketID
			}
			return err
		}
		if p.Topic == "" && (p.Properties == nil || p.Properties.TopicAlias == nil) {
			return d.errAt(ProtocolError, topicAt, "topic name is empty and there is no topic alias") // 3.3.2.3.4
		}
	} else if p.Topic == "" {
		return d.errAt(TopicNameInvalid, topicAt, "topic name is empty") // [MQTT-4.7.3-1]
	}
	p.Payload = d.rest()
	return nil
}

// plainPublish decodes the frame at the start of b if it is the commonest kind: a PUBLISH
// under 16 KiB (a Remaining Length of one or two bytes) within maxSize, with a non-empty
// ASCII topic name free of NUL and wildcards, a non-zero packet identifier if its QoS
// needs one, and in MQTT 5.0 no properties. It is the hot path of every reader, written
// out in one function: check the frame where it lies, copy its body once into memory the
// result owns (see ownCopy), point the fields into the copy. ok is false for anything
// else, valid or not, which the general path then decodes or refuses with an exact error.
func plainPublish(b []byte, pub *Publish, version byte, maxSize int) (p *Publish, n int, ok bool) {
	// QoS 3 [MQTT-3.3.1-4] and DUP at QoS 0 [MQTT-3.3.1-2] are left to checkFrame.
	if len(b) < 2 || b[0]>>4 != byte(TypePublish) || b[0]&0x06 == 0x06 || b[0]&0x0E == 0x08 {
		return nil, 0, false
	}
	first := b[0]
	hlen, remaining := 2, int(b[1])
	if remaining >= 0x80 {
		if len(b) < 3 || b[2] >= 0x80 || b[2] == 0 { // b[2] == 0: longer than needed, see nonMinimal
			return nil, 0, false
		}
		hlen, remaining = 3, remaining&0x7F|int(b[2])<<7
	}
	n = hlen + remaining
	if n > len(b) || (maxSize != 0 && (maxSize < 0 || n > maxSize)) || (version != V311 && version != V5) {
		return nil, 0, false
	}
	body := b[hlen:n:n] // not kept: its copy is
	if len(body) < 3 {
		return nil, 0, false
	}
	topicLen := int(body[0])<<8 | int(body[1])
	i := 2 + topicLen
	if topicLen == 0 || i > len(body) {
		return nil, 0, false
	}
	if topicLen >= 8 {
		if !clean(unsafe.String(&body[2], topicLen)) {
			return nil, 0, false
		}
	} else {
		for _, c := range body[2:i] {
			if c == 0 || c >= utf8.RuneSelf || c == '+' || c == '#' {
				return nil, 0, false
			}
		}
	}
	var id uint16
	if first&0x06 != 0 { // QoS 1 or 2
		if i+2 > len(body) {
			return nil, 0, false
		}
		if id = uint16(body[i])<<8 | uint16(body[i+1]); id == 0 {
			return nil, 0, false
		}
		i += 2
	}
	if version == V5 {
		if i >= len(body) || body[i] != 0 { // Property Length
			return nil, 0, false
		}
		i++
	}
	var own []byte
	if p = pub; p != nil {
		own = make([]byte, len(body)) // ownCopy's, written out: it saves a call
		copy(own, body)
	} else {
		p, own = ownCopy(nil, body)
	}
	// One store per field: a composite literal would be built on the stack and copied,
	// and that copy stalls on the small stores that built it.
	p.Topic = unsafe.String(&own[2], topicLen)
	if i < len(own) {
		// The capacity ends with the frame, so an append cannot reach another's bytes.
		p.Payload = own[i:len(own):len(own)]
	} else {
		p.Payload = nil
	}
	p.QoS = QoS(first >> 1 & 3)
	p.Dup = first&0x08 != 0
	p.Retain = first&0x01 != 0
	p.PacketID = id
	if p.Properties != nil { // a store, even of nil, costs a write barrier while the GC marks
		p.Properties = nil
	}
	return p, n, true
}

// Puback is a PUBACK packet, the answer to a QoS 1 PUBLISH (section 3.4). ReasonCode and
// Properties are MQTT 5.0 only: in 3.1.1 they must be Success and nil.
type Puback struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties *Properties
}

// Pubrec is a PUBREC packet, the first answer to a QoS 2 PUBLISH (section 3.5).
// ReasonCode and Properties are MQTT 5.0 only.
type Pubrec struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties *Properties
}

// Pubrel is a PUBREL packet, the answer to a PUBREC (section 3.6). ReasonCode and
// Properties are MQTT 5.0 only.
type Pubrel struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties *Properties
}

// Pubcomp is a PUBCOMP packet, the answer to a PUBREL (section 3.7). ReasonCode and
// Properties are MQTT 5.0 only.
type Pubcomp struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties *Properties
}

// ack is the common shape of the four acknowledgements; *Puback and the others convert
// to *ack.
type ack struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties *Properties
}

// ackCodes returns the reason codes packet t may carry.
func ackCodes(t PacketType) *codeSet {
	if t == TypePuback || t == TypePubrec {
		return &pubackCodes
	}
	return &pubrelCodes
}

func (a *ack) bodyLen(t PacketType, version byte) (int, error) {
	if err := checkPacketID(t, a.PacketID); err != nil {
		return 0, err
	}
	if version == V311 {
		if a.ReasonCode != Success {
			return 0, errorf(MalformedPacket, t, -1, "reason code %s cannot be sent in MQTT 3.1.1", a.ReasonCode)
		}
		if !a.Properties.isEmpty() {
			return 0, errV311Props(t)
		}
		return 2, nil
	}
	if !ackCodes(t).permits(a.ReasonCode) {
		return 0, errorf(ProtocolError, t, -1, "reason code 0x%02X is not valid in %s", byte(a.ReasonCode), t)
	}
	n, err := a.Properties.encodedLen(propContext(t))
	switch {
	case err != nil:
		return 0, err
	case n > 0:
		return 3 + varintLen(n) + n, nil
	case a.ReasonCode != Success:
		return 3, nil
	}
	// Sections 3.4.2.1 etc.: reason code and properties may be left out for success.
	return 2, nil
}

func (a *ack) appendBody(dst []byte, t PacketType, version byte) []byte {
	dst = appendUint16(dst, a.PacketID)
	if version == V311 {
		return dst
	}
	n, _ := a.Properties.encodedLen(propContext(t))
	if n > 0 {
		return appendProps(append(dst, byte(a.ReasonCode)), a.Properties, n)
	}
	if a.ReasonCode != Success {
		dst = append(dst, byte(a.ReasonCode))
	}
	return dst
}

// ack decodes a PUBACK, PUBREC, PUBREL or PUBCOMP body.
func (d *decoder) ack(t PacketType, version byte) (Packet, error) {
	var p Packet
	var a *ack
	switch t {
	case TypePuback:
		x := new(Puback)
		p, a = x, (*ack)(x)
	case TypePubrec:
		x := new(Pubrec)
		p, a = x, (*ack)(x)
	case TypePubrel:
		x := new(Pubrel)
		p, a = x, (*ack)(x)
	default:
		x := new(Pubcomp)
		p, a = x, (*ack)(x)
	}
	if version == V311 {
		if err := d.exactLength(2); err != nil {
			return nil, err
		}
	}
	var err error
	if a.PacketID, err = d.packetID(); err != nil {
		return nil, err
	}
	if d.left() > 0 {
		// Section 3.4.2.1: with Remaining Length 2 the reason code is Success; below 4
		// there is no Property Length.
		if a.ReasonCode, err = d.reasonCode(ackCodes(t)); err != nil {
			return nil, err
		}
	}
	if d.left() > 0 {
		if a.Properties, err = d.properties(propContext(t)); err != nil {
			return nil, err
		}
	}
	return p, d.done()
}

// Type returns TypePuback.
func (*Puback) Type() PacketType { return TypePuback }

// Type returns TypePubrec.
func (*Pubrec) Type() PacketType { return TypePubrec }

// Type returns TypePubrel.
func (*Pubrel) Type() PacketType { return TypePubrel }

// Type returns TypePubcomp.
func (*Pubcomp) Type() PacketType { return TypePubcomp }

// AppendTo appends p's frame to dst; see Packet.
func (p *Puback) AppendTo(dst []byte, version byte) ([]byte, error) {
	return appendFrame(dst, p, version)
}

// AppendTo appends p's frame to dst; see Packet.
func (p *Pubrec) AppendTo(dst []byte, version byte) ([]byte, error) {
	return appendFrame(dst, p, version)
}

// AppendTo appends p's frame to dst; see Packet.
func (p *Pubrel) AppendTo(dst []byte, version byte) ([]byte, error) {
	return appendFrame(dst, p, version)
}

// AppendTo appends p's frame to dst; see Packet.
func (p *Pubcomp) AppendTo(dst []byte, version byte) ([]byte, error) {
	return appendFrame(dst, p, version)
}

func (*Puback) header() byte  { return byte(TypePuback) << 4 }
func (*Pubrec) header() byte  { return byte(TypePubrec) << 4 }
func (*Pubrel) header() byte  { return byte(TypePubrel)<<4 | 0x02 } // [MQTT-3.6.1-1]
func (*Pubcomp) header() byte { return byte(TypePubcomp) << 4 }

func (p *Puback) bodyLen(v byte) (int, error)  { return (*ack)(p).bodyLen(TypePuback, v) }
func (p *Pubrec) bodyLen(v byte) (int, error)  { return (*ack)(p).bodyLen(TypePubrec, v) }
func (p *Pubrel) bodyLen(v byte) (int, error)  { return (*ack)(p).bodyLen(TypePubrel, v) }
func (p *Pubcomp) bodyLen(v byte) (int, error) { return (*ack)(p).bodyLen(TypePubcomp, v) }

func (p *Puback) appendBody(dst []byte, v byte) []byte {
	return (*ack)(p).appendBody(dst, TypePuback, v)
}

func (p *Pubrec) appendBody(dst []byte, v byte) []byte {
	return (*ack)(p).appendBody(dst, TypePubrec, v)
}

func (p *Pubrel) appendBody(dst []byte, v byte) []byte {
	return (*ack)(p).appendBody(dst, TypePubrel, v)
}

func (p *Pubcomp) appendBody(dst []byte, v byte) []byte {
	return (*ack)(p).appendBody(dst, TypePubcomp, v)
}

package codec

import "strconv"

// Subscribe is a SUBSCRIBE packet (section 3.8): at least one subscription, a non-zero
// PacketID, and in MQTT 5.0 at most one Subscription Identifier and user properties.
type Subscribe struct {
	PacketID      uint16
	Subscriptions []Subscription
	Properties    *Properties // MQTT 5.0 only
}

// Subscription is one topic filter of a SUBSCRIBE and its options (section 3.8.3.1).
// NoLocal, RetainAsPublished and RetainHandling are MQTT 5.0 only and must be zero for
// 3.1.1. RetainHandling is 0 (send retained messages at subscribe), 1 (only if the
// subscription is new) or 2 (never). NoLocal may not be set on a shared subscription
// [MQTT-3.8.3-4].
type Subscription struct {
	Filter            string
	QoS               QoS
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
}

// Type returns TypeSubscribe.
func (*Subscribe) Type() PacketType { return TypeSubscribe }

// AppendTo appends p's frame to dst; see Packet.
func (p *Subscribe) AppendTo(dst []byte, version byte) ([]byte, error) {
	return appendFrame(dst, p, version)
}

func (*Subscribe) header() byte { return byte(TypeSubscribe)<<4 | 0x02 } // [MQTT-3.8.1-1]

// options returns the Subscription Options byte.
func (s *Subscription) options() byte {
	b := byte(s.QoS&3) | (s.RetainHandling&3)<<4
	if s.NoLocal {
		b |= 0x04
	}
	if s.RetainAsPublished {
		b |= 0x08
	}
	return b
}

// filterLen validates filter as the topic filter of packet t and returns its encoded size.
func filterLen(t PacketType, filter string) (int, error) {
	if err := ValidateTopicFilter(filter); err != nil {
		e := err.(*Error)
		return 0, encodeError(e.Code, t, "topic filter "+quote(filter), e.Reason, e.Offset)
	}
	return 2 + len(filter), nil
}

// quote shortens and quotes a filter for an error message.
func quote(s string) string {
	const max = 40
	if len(s) > max {
		return strconv.Quote(s[:max]) + "..."
	}
	return strconv.Quote(s)
}

func (p *Subscribe) bodyLen(version byte) (int, error) {
	if err := checkPacketID(TypeSubscribe, p.PacketID); err != nil {
		return 0, err
	}
	if len(p.Subscriptions) == 0 {
		return 0, errorf(ProtocolError, TypeSubscribe, -1, "no subscriptions; at least one is required") // [MQTT-3.8.3-2] (3.1.1: [MQTT-3.8.3-3])
	}
	n := 2
	if err := propsFor(&n, p.Properties, cSubscribe, version); err != nil {
		return 0, err
	}
	for i := range p.Subscriptions {
		s := &p.Subscriptions[i]
		m, err := filterLen(TypeSubscribe, s.Filter)
		if err != nil {
			return 0, err
		}
		n += m + 1
		switch {
		case !s.QoS.Valid():
			return 0, errorf(MalformedPacket, TypeSubscribe, -1, "QoS %d for %s; it must be 0, 1 or 2", s.QoS, quote(s.Filter)) // [MQTT-3.8.3-4]
		case version == V311 && (s.NoLocal || s.RetainAsPublished || s.RetainHandling != 0):
			return 0, errorf(MalformedPacket, TypeSubscribe, -1,
				"NoLocal, RetainAsPublished and RetainHandling are MQTT 5.0 only (%s)", quote(s.Filter))
		case s.RetainHandling > 2:
			return 0, errorf(ProtocolError, TypeSubscribe, -1, "retain handling %d for %s; it must be 0, 1 or 2", s.RetainHandling, quote(s.Filter)) // 3.8.3.1
		case s.NoLocal && isShared(s.Filter):
			return 0, errorf(ProtocolError, TypeSubscribe, -1, "NoLocal on the shared subscription %s", quote(s.Filter)) // [MQTT-3.8.3-4]
		}
	}
	return n, nil
}

func (p *Subscribe) appendBody(dst []byte, version byte) []byte {
	dst = appendUint16(dst, p.PacketID)
	if version == V5 {
		n, _ := p.Properties.encodedLen(cSubscribe)
		dst = appendProps(dst, p.Properties, n)
	}
	for i := range p.Subscriptions {
		s := &p.Subscriptions[i]
		dst = append(appendString(dst, s.Filter), s.options())
	}
	return dst
}

// filter reads a topic filter and checks its syntax.
func (d *decoder) filter() (string, error) {
	at := d.off
	f, err := d.string("topic filter", false)
	if err != nil {
		return "", err
	}
	if why, i := filterProblem(f); why != "" {
		if i < 0 {
			i = -2 // the length field
		}
		return "", d.errAt(TopicFilterInvalid, at+2+i, "topic filter %s: %s", quote(f), why)
	}
	return f, nil
}

// countFilters counts the topic filters in the payload b of a SUBSCRIBE (each followed
// by extra = 1 byte of options) or an UNSUBSCRIBE (extra = 0), so that the decoder can
// allocate its slice once at its final size. Grown by append instead, the slice and the
// garbage of its copies would cost up to 36 times the frame. It decides nothing: the
// decoder reports whatever is wrong with the payload.
func countFilters(b []byte, extra int) (n int) {
	for i := 0; i+2 <= len(b); n++ {
		i += 2 + (int(b[i])<<8 | int(b[i+1])) + extra
	}
	return n
}

// subscribe decodes a SUBSCRIBE body (section 3.8).
func (d *decoder) subscribe(p *Subscribe, version byte) error {
	var err error
	if p.PacketID, err = d.packetID(); err != nil {
		return err
	}
	if version == V5 {
		if p.Properties, err = d.properties(cSubscribe); err != nil {
			return err
		}
	}
	if d.left() == 0 {
		return d.errAt(ProtocolError, d.off, "no subscriptions; at least one is required") // [MQTT-3.8.3-2] (3.1.1: [MQTT-3.8.3-3])
	}
	p.Subscriptions = make([]Subscription, 0, countFilters(d.b[d.off:], 1))
	for d.left() > 0 {
		var s Subscription
		if s.Filter, err = d.filter(); err != nil {
			return err
		}
		o, err := d.byte1("subscription options")
		if err != nil {
			return err
		}
		at := d.off - 1
		s.QoS = QoS(o & 3)
		switch {
		case version == V311 && o&0xFC != 0:
			return d.errAt(MalformedPacket, at, "reserved bits of the requested QoS byte are set") // [MQTT-3.8.3-4]
		case o&0xC0 != 0:
			return d.errAt(MalformedPacket, at, "reserved subscription option bits are set") // [MQTT-3.8.3-5]
		case s.QoS == 3:
			return d.errAt(MalformedPacket, at, "QoS 3 requested") // [MQTT-3.8.3-4] (3.1.1)
		}
		s.NoLocal = o&0x04 != 0
		s.RetainAsPublished = o&0x08 != 0
		s.RetainHandling = o >> 4 & 3
		switch {
		case s.RetainHandling == 3:
			return d.errAt(ProtocolError, at, "retain handling 3") // 3.8.3.1
		case s.NoLocal && isShared(s.Filter):
			return d.errAt(ProtocolError, at, "NoLocal on a shared subscription") // [MQTT-3.8.3-4]
		}
		p.Subscriptions = append(p.Subscriptions, s)
	}
	return nil
}

// Suback is a SUBACK packet (section 3.9): one reason code per requested subscription, in
// order. In MQTT 3.1.1 the return codes 0x00, 0x01, 0x02 and 0x80 are the same bytes as
// GrantedQoS0, GrantedQoS1, GrantedQoS2 and UnspecifiedError, and no other is allowed.
// Properties are MQTT 5.0 only.
type Suback struct {
	PacketID    uint16
	ReasonCodes []ReasonCode
	Properties  *Properties
}

// Type returns TypeSuback.
func (*Suback) Type() PacketType { return TypeSuback }

// AppendTo appends p's frame to dst; see Packet.
func (p *Suback) AppendTo(dst []byte, version byte) ([]byte, error) {
	return appendFrame(dst, p, version)
}

func (*Suback) header() byte { return byte(TypeSuback) << 4 }

func (p *Suback) bodyLen(version byte) (int, error) {
	return ackListLen(TypeSuback, p.PacketID, p.ReasonCodes, p.Properties, version)
}

func (p *Suback) appendBody(dst []byte, version byte) []byte {
	return appendAckList(dst, TypeSuback, p.PacketID, p.ReasonCodes, p.Properties, version)
}

// listCodes returns the codes a SUBACK or UNSUBACK may carry at version.
func listCodes(t PacketType, version byte) *codeSet {
	switch {
	case t == TypeUnsuback:
		return &unsubackCodes
	case version == V311:
		return &subackCodesV311
	}
	return &subackCodes
}

// ackListLen validates a SUBACK or UNSUBACK (a packet identifier, properties and a list of
// reason codes) and returns its Remaining Length. An MQTT 3.1.1 UNSUBACK has no list.
func ackListLen(t PacketType, id uint16, codes []ReasonCode, props *Properties, version byte) (int, error) {
	if err := checkPacketID(t, id); err != nil {
		return 0, err
	}
	n := 2
	if err := propsFor(&n, props, propContext(t), version); err != nil {
		return 0, err
	}
	if t == TypeUnsuback && version == V311 {
		if len(codes) != 0 {
			return 0, errorf(MalformedPacket, t, -1, "MQTT 3.1.1 UNSUBACK has no reason codes; set ReasonCodes to nil")
		}
		return n, nil
	}
	if len(codes) == 0 {
		return 0, errorf(ProtocolError, t, -1, "no reason codes; there must be one per topic filter") // [MQTT-3.9.3-1] [MQTT-3.11.3-1]
	}
	allowed := listCodes(t, version)
	for i, c := range codes {
		if !allowed.permits(c) {
			return 0, errorf(ProtocolError, t, -1, "reason code %d (0x%02X) is not valid in %s", i, byte(c), t)
		}
	}
	return n + len(codes), nil
}

func appendAckList(dst []byte, t PacketType, id uint16, codes []ReasonCode, props *Properties, version byte) []byte {
	dst = appendUint16(dst, id)
	if version == V5 {
		n, _ := props.encodedLen(propContext(t))
		dst = appendProps(dst, props, n)
	}
	for _, c := range codes {
		dst = append(dst, byte(c))
	}
	return dst
}

// ackList decodes a SUBACK or UNSUBACK body into its parts.
func (d *decoder) ackList(version byte) (id uint16, codes []ReasonCode, props *Properties, err error) {
	if d.t == TypeUnsuback && version == V311 {
		if err = d.exactLength(2); err != nil {
			return
		}
	}
	if id, err = d.packetID(); err != nil {
		return
	}
	if version == V5 {
		if props, err = d.properties(propContext(d.t)); err != nil {
			return
		}
	} else if d.t == TypeUnsuback {
		return
	}
	if d.left() == 0 {
		err = d.errAt(ProtocolError, d.off, "no reason codes; there must be one per topic filter") // [MQTT-3.9.3-1] [MQTT-3.11.3-1]
		return
	}
	allowed := listCodes(d.t, version)
	codes = make([]ReasonCode, d.left())
	for i := range codes {
		if codes[i], err = d.reasonCode(allowed); err != nil {
			return 0, nil, nil, err
		}
	}
	return
}

// suback decodes a SUBACK body (section 3.9).
func (d *decoder) suback(p *Suback, version byte) (err error) {
	p.PacketID, p.ReasonCodes, p.Properties, err = d.ackList(version)
	return err
}

// Unsubscribe is an UNSUBSCRIBE packet (section 3.10): at least one topic filter and a
// non-zero PacketID. Properties (user properties only) are MQTT 5.0 only.
type Unsubscribe struct {
	PacketID   uint16
	Filters    []string
	Properties *Properties
}

// Type returns TypeUnsubscribe.
func (*Unsubscribe) Type() PacketType { return TypeUnsubscribe }

// AppendTo appends p's frame to dst; see Packet.
func (p *Unsubscribe) AppendTo(dst []byte, version byte) ([]byte, error) {
	return appendFrame(dst, p, version)
}

func (*Unsubscribe) header() byte { return byte(TypeUnsubscribe)<<4 | 0x02 } // [MQTT-3.10.1-1]

func (p *Unsubscribe) bodyLen(version byte) (int, error) {
	if err := checkPacketID(TypeUnsubscribe, p.PacketID); err != nil {
		return 0, err
	}
	if len(p.Filters) == 0 {
		return 0, errorf(ProtocolError, TypeUnsubscribe, -1, "no topic filters; at least one is required") // [MQTT-3.10.3-2]
	}
	n := 2
	if err := propsFor(&n, p.Properties, cUnsubscribe, version); err != nil {
		return 0, err
	}
	for _, f := range p.Filters {
		m, err := filterLen(TypeUnsubscribe, f)
		if err != nil {
			return 0, err
		}
		n += m
	}
	return n, nil
}

func (p *Unsubscribe) appendBody(dst []byte, version byte) []byte {
	dst = appendUint16(dst, p.PacketID)
	if version == V5 {
		n, _ := p.Properties.encodedLen(cUnsubscribe)
		dst = appendProps(dst, p.Properties, n)
	}
	for _, f := range p.Filters {
		dst = appendString(dst, f)
	}
	return dst
}

// unsubscribe decodes an UNSUBSCRIBE body (section 3.10).
func (d *decoder) unsubscribe(p *Unsubscribe, version byte) error {
	var err error
	if p.PacketID, err = d.packetID(); err != nil {
		return err
	}
	if version == V5 {
		if p.Properties, err = d.properties(cUnsubscribe); err != nil {
			return err
		}
	}
	if d.left() == 0 {
		return d.errAt(ProtocolError, d.off, "no topic filters; at least one is required") // [MQTT-3.10.3-2]
	}
	p.Filters = make([]string, 0, countFilters(d.b[d.off:], 0))
	for d.left() > 0 {
		f, err := d.filter()
		if err != nil {
			return err
		}
		p.Filters = append(p.Filters, f)
	}
	return nil
}

// Unsuback is an UNSUBACK packet (section 3.11). In MQTT 5.0 it carries one reason code
// per topic filter of the UNSUBSCRIBE; in MQTT 3.1.1 it has none (ReasonCodes must be nil)
// and no Properties.
type Unsuback struct {
	PacketID    uint16
	ReasonCodes []ReasonCode
	Properties  *Properties
}

// Type returns TypeUnsuback.
func (*Unsuback) Type() PacketType { return TypeUnsuback }

// AppendTo appends p's frame to dst; see Packet.
func (p *Unsuback) AppendTo(dst []byte, version byte) ([]byte, error) {
	return appendFrame(dst, p, version)
}

func (*Unsuback) header() byte { return byte(TypeUnsuback) << 4 }

func (p *Unsuback) bodyLen(version byte) (int, error) {
	return ackListLen(TypeUnsuback, p.PacketID, p.ReasonCodes, p.Properties, version)
}

func (p *Unsuback) appendBody(dst []byte, version byte) []byte {
	return appendAckList(dst, TypeUnsuback, p.PacketID, p.ReasonCodes, p.Properties, version)
}

// unsuback decodes an UNSUBACK body (section 3.11).
func (d *decoder) unsuback(p *Unsuback, version byte) (err error) {
	p.PacketID, p.ReasonCodes, p.Properties, err = d.ackList(version)
	return err
}

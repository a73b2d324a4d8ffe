package codec

import "slices"

// maxRemaining is the largest Remaining Length a four-byte Variable Byte Integer holds
// (section 1.5.5), and maxFrame the largest whole frame.
const (
	maxRemaining = 268435455
	maxFrame     = 1 + 4 + maxRemaining
)

// sizer is implemented by every packet type of this package.
type sizer interface {
	Packet
	// bodyLen validates the packet for version and returns its Remaining Length.
	bodyLen(version byte) (int, error)
}

// encoder is implemented by every packet type but *Publish, which has its own AppendTo.
// bodyLen does all the validation, so that appendBody cannot fail and AppendTo appends
// nothing on error.
type encoder interface {
	sizer
	// header returns the first byte of the fixed header.
	header() byte
	// appendBody appends the variable header and payload; call it only after bodyLen
	// returned n, and it appends exactly n bytes.
	appendBody(dst []byte, version byte) []byte
}

// appendFrame is AppendTo for every packet but PUBLISH (which inlines it for speed).
func appendFrame(dst []byte, p encoder, version byte) ([]byte, error) {
	n, err := frameBody(p, version)
	if err != nil {
		return dst, err
	}
	dst = slices.Grow(dst, 1+varintLen(n)+n)
	dst = append(dst, p.header())
	dst = appendVarint(dst, uint32(n))
	return p.appendBody(dst, version), nil
}

// frameBody checks version and the Remaining Length limit around p.bodyLen.
func frameBody(p sizer, version byte) (int, error) {
	if p.Type() != TypeConnect {
		if err := checkVersion(version); err != nil {
			return 0, err
		}
	}
	n, err := p.bodyLen(version)
	if err != nil {
		return 0, err
	}
	return n, checkRemaining(p.Type(), n)
}

// checkRemaining refuses a Remaining Length over the protocol's limit.
func checkRemaining(t PacketType, n int) error {
	if n > maxRemaining {
		return errorf(PacketTooLarge, t, -1, "remaining length %d is more than the protocol allows (%d)", n, maxRemaining)
	}
	return nil
}

// Size is the package's Size for a PUBLISH, without the interface: the
// caller's Publish can stay on its stack (Size(p, ...) moves it to the
// heap), which makes a check before every publish free of allocations.
func (p *Publish) Size(version byte) (int, error) {
	if err := checkVersion(version); err != nil {
		return 0, err
	}
	n, err := p.bodyLen(version)
	if err != nil {
		return 0, err
	}
	if err := checkRemaining(TypePublish, n); err != nil {
		return 0, err
	}
	return 1 + varintLen(n) + n, nil
}

// Size reports how many bytes p's frame takes at protocol level version, fixed header
// included, without encoding it; it fails exactly when p.AppendTo(nil, version) would.
func Size(p Packet, version byte) (int, error) {
	e, ok := p.(sizer)
	if !ok {
		b, err := p.AppendTo(nil, version)
		return len(b), err
	}
	n, err := frameBody(e, version)
	if err != nil {
		return 0, err
	}
	return 1 + varintLen(n) + n, nil
}

// varintLen is the size of v as a Variable Byte Integer.
func varintLen(v int) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	}
	return 4
}

// appendVarint appends v (at most maxRemaining) as a Variable Byte Integer (section 1.5.5),
// using the fewest bytes [MQTT-1.5.5-1].
func appendVarint(dst []byte, v uint32) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

// putVarint writes v (at most maxRemaining) as a Variable Byte Integer at the start of b
// and returns how many bytes it took.
func putVarint(b []byte, v int) int {
	i := 0
	for v >= 0x80 {
		b[i] = byte(v) | 0x80
		v >>= 7
		i++
	}
	b[i] = byte(v)
	return i + 1
}

func appendUint16(dst []byte, v uint16) []byte { return append(dst, byte(v>>8), byte(v)) }

func appendUint32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// appendString appends a UTF-8 Encoded String whose length was checked by bodyLen.
func appendString(dst []byte, s string) []byte {
	return append(appendUint16(dst, uint16(len(s))), s...)
}

// appendBinary appends Binary Data whose length was checked by bodyLen.
func appendBinary(dst []byte, b []byte) []byte {
	return append(appendUint16(dst, uint16(len(b))), b...)
}

// stringLen validates s as the string field what of packet t and returns its encoded size.
func stringLen(t PacketType, what, s string) (int, error) {
	if why, at := stringProblem(s, false); why != "" {
		return 0, encodeError(MalformedPacket, t, what, why, at)
	}
	return 2 + len(s), nil
}

// topicLen validates s as a Topic Name in packet t and returns its encoded size. An empty
// name is left to the caller, since a PUBLISH may use a Topic Alias instead.
func topicLen(t PacketType, what, s string) (int, error) {
	if why, at := stringProblem(s, true); why != "" {
		code := MalformedPacket
		if at >= 0 && (s[at] == '+' || s[at] == '#') {
			code = TopicNameInvalid
		}
		return 0, encodeError(code, t, what, why, at)
	}
	return 2 + len(s), nil
}

// binaryLen validates b as the Binary Data field what of packet t and returns its size.
func binaryLen(t PacketType, what string, b []byte) (int, error) {
	if len(b) > maxString {
		return 0, errorf(MalformedPacket, t, -1, "%s of %d bytes is longer than 65535", what, len(b))
	}
	return 2 + len(b), nil
}

// encodeError reports a field that cannot be encoded; at is an index in the field.
func encodeError(code ReasonCode, t PacketType, what, why string, at int) *Error {
	if at >= 0 {
		return errorf(code, t, -1, "%s: %s (byte %d of the field)", what, why, at)
	}
	return errorf(code, t, -1, "%s: %s", what, why)
}

// checkPacketID rejects identifier 0, which no packet may carry [MQTT-2.2.1-3].
func checkPacketID(t PacketType, id uint16) error {
	if id == 0 {
		return errorf(ProtocolError, t, -1, "packet identifier is 0; it must be 1 to 65535")
	}
	return nil
}

package codec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"unsafe"
)

// ReadPacket reads exactly one frame from r and decodes it.
//
// version (V311 or V5) says how to decode every packet but CONNECT, which carries its own
// protocol level. maxSize bounds the whole frame in bytes, fixed header included; 0 means
// the protocol maximum (268435460). A frame whose fixed header claims more than maxSize
// is rejected with an *Error whose Code is PacketTooLarge before anything is allocated or
// read past the fixed header, so an oversized frame costs nothing.
//
// A malformed or invalid frame yields an *Error, after which the connection should be
// closed (section 4.13). If the fault is in the fixed header (a reserved packet type or
// flag bits, a Remaining Length over four bytes, PacketTooLarge) the rest of the frame is
// left unread; otherwise the whole frame has been consumed. Errors from r are wrapped
// (errors.Is(err, io.EOF) reports a connection closed between frames,
// io.ErrUnexpectedEOF one closed inside a frame) and are never an *Error.
//
// Everything in the returned packet is owned by the caller: nothing points into r's
// buffer. A PUBLISH costs one allocation up to 1 MiB of body: the *Publish and its topic
// and payload bytes share it. Up to 1 MiB of body is allocated as the fixed header
// announces it; beyond that, memory grows with the bytes that actually arrive.
// ReadPacketInto saves the *Publish.
func ReadPacket(r *bufio.Reader, version byte, maxSize int) (Packet, error) {
	return readPacket(r, nil, version, maxSize)
}

// ReadPacketInto is ReadPacket with the Publish supplied by the caller: a PUBLISH is
// decoded into *pub, and the returned Packet is then pub itself. Any other packet is
// returned as by ReadPacket, and *pub is left alone; so is it on any error. A nil pub
// makes it ReadPacket.
//
// A PUBLISH then costs one pointer-free allocation, the frame's body, which pub's Topic
// and Payload point into (and in MQTT 5.0 its Properties, when it has any). That buffer
// is fresh and never reused, so the decoded message owns its memory as with ReadPacket: a
// copy of *pub (msg := *pub) stays valid after the next call overwrites pub, and so do a
// Topic or Payload taken from it. Only *pub itself is reused. This is for a read loop
// that hands each message on by value.
func ReadPacketInto(r *bufio.Reader, pub *Publish, version byte, maxSize int) (Packet, error) {
	return readPacket(r, pub, version, maxSize)
}

func readPacket(r *bufio.Reader, pub *Publish, version byte, maxSize int) (Packet, error) {
	// Usually the whole frame is buffered: decode it where it lies, then consume it.
	buf, _ := r.Peek(r.Buffered()) // cannot fail: that much is buffered
	if p, n, ok := plainPublish(buf, pub, version, maxSize); ok {
		_, _ = r.Discard(n) // cannot fail: n bytes are buffered
		return p, nil
	}
	if err := checkVersion(version); err != nil {
		return nil, err
	}
	limit, err := frameLimit(maxSize)
	if err != nil {
		return nil, err
	}
	var first byte
	var remaining, hlen int
	if err = errPending; wholeHeader(buf) {
		first, remaining, hlen, err = parseHeader(buf, limit, version)
	}
	switch n := hlen + remaining; {
	case err == nil && n <= len(buf):
		p, err := decodeBody(buf[hlen:n:n], pub, first, version, hlen)
		_, _ = r.Discard(n) // cannot fail: n bytes are buffered
		return p, err
	case err == nil:
		_, _ = r.Discard(hlen)
	default:
		// Not all of the header is buffered, or it is faulty: readHeader reads it byte by
		// byte, and consumes as much of a faulty one as it always has.
		if first, remaining, hlen, err = readHeader(r, limit, version); err != nil {
			return nil, err
		}
	}
	if PacketType(first>>4) == TypePublish {
		p, body, err := readOwned(r, pub, remaining)
		if err != nil {
			return nil, fmt.Errorf("codec: reading a %d-byte PUBLISH: %w", remaining, unexpected(err))
		}
		if err := decodePublish(p, body, first, version, hlen); err != nil {
			return nil, err
		}
		return p, nil
	}
	var d decoder
	if remaining <= r.Size() {
		// Small frames are decoded in place in r's buffer and copied out field by field.
		body, err := r.Peek(remaining)
		if err != nil {
			return nil, fmt.Errorf("codec: reading a %d-byte %s: %w", remaining, PacketType(first>>4), unexpected(err))
		}
		d = decoder{b: body, base: hlen, t: PacketType(first >> 4)}
		p, derr := d.packet(first, version)
		_, _ = r.Discard(remaining) // cannot fail: Peek returned as many
		return p, derr
	}
	body, err := readBody(r, remaining)
	if err != nil {
		return nil, fmt.Errorf("codec: reading a %d-byte %s: %w", remaining, PacketType(first>>4), unexpected(err))
	}
	d = decoder{b: body, base: hlen, own: true, t: PacketType(first >> 4)}
	return d.packet(first, version)
}

// Decode decodes the complete frame at the start of b and returns it and the number of
// bytes it took. version and maxSize are as for ReadPacket. If b holds less than one
// frame, the error wraps io.ErrUnexpectedEOF and is not an *Error. The packet is owned by
// the caller: it does not point into b. A PUBLISH costs one allocation, as with
// ReadPacket; DecodeInto saves the *Publish.
func Decode(b []byte, version byte, maxSize int) (Packet, int, error) {
	return decode(b, nil, version, maxSize)
}

// DecodeInto is Decode with the Publish supplied by the caller, as ReadPacketInto is
// ReadPacket's: a PUBLISH is decoded into *pub, which is then the returned Packet, and
// costs one pointer-free allocation (the frame's body, which pub owns and nothing
// reuses). Any other packet is returned as by Decode; *pub is left alone then and on any
// error. A nil pub makes it Decode.
func DecodeInto(b []byte, pub *Publish, version byte, maxSize int) (Packet, int, error) {
	return decode(b, pub, version, maxSize)
}

func decode(b []byte, pub *Publish, version byte, maxSize int) (Packet, int, error) {
	if p, n, ok := plainPublish(b, pub, version, maxSize); ok {
		return p, n, nil
	}
	return decodeFrame(b, pub, version, maxSize)
}

// decodeFrame is decode's general path, for every frame plainPublish leaves.
func decodeFrame(b []byte, pub *Publish, version byte, maxSize int) (Packet, int, error) {
	if err := checkVersion(version); err != nil {
		return nil, 0, err
	}
	limit, err := frameLimit(maxSize)
	if err != nil {
		return nil, 0, err
	}
	first, remaining, hlen, err := parseHeader(b, limit, version)
	if err != nil {
		return nil, 0, err
	}
	if len(b)-hlen < remaining {
		return nil, 0, fmt.Errorf("codec: %s frame of %d bytes cut short at %d: %w",
			PacketType(first>>4), hlen+remaining, len(b), io.ErrUnexpectedEOF)
	}
	n := hlen + remaining
	p, err := decodeBody(b[hlen:n:n], pub, first, version, hlen)
	if err != nil {
		return nil, 0, err
	}
	return p, n, nil
}

// decodeBody decodes a frame's body, which it does not keep: src may be r's buffer or the
// caller's bytes. first is the checked fixed header's first byte, hlen its length.
func decodeBody(src []byte, pub *Publish, first, version byte, hlen int) (Packet, error) {
	if PacketType(first>>4) != TypePublish {
		d := decoder{b: src, base: hlen, t: PacketType(first >> 4)}
		return d.packet(first, version)
	}
	p, body := ownCopy(pub, src)
	if err := decodePublish(p, body, first, version, hlen); err != nil {
		return nil, err
	}
	return p, nil
}

// ownCopy returns the Publish a PUBLISH body is decoded into and a fresh copy of the body
// src for it to own: pub and a pointer-free buffer, or with pub nil a new Publish that
// shares one block with the buffer (see newPublish).
func ownCopy(pub *Publish, src []byte) (*Publish, []byte) {
	if pub != nil {
		body := make([]byte, len(src)) // with the copy, one runtime call that skips zeroing
		copy(body, src)
		return pub, body
	}
	if len(src) > maxBlock {
		return new(Publish), bytes.Clone(src)
	}
	p, body := newPublish(len(src))
	copy(body, src)
	return p, body
}

// readOwned returns the Publish an n-byte PUBLISH body still to be read from r is decoded
// into and the body, read into memory the Publish will own: pub and a pointer-free buffer,
// or with pub nil a new Publish that shares one block with the buffer (see newPublish).
func readOwned(r *bufio.Reader, pub *Publish, n int) (*Publish, []byte, error) {
	if pub == nil && n <= maxBlock {
		p, body := newPublish(n)
		_, err := io.ReadFull(r, body)
		return p, body, err
	}
	if pub == nil {
		pub = new(Publish)
	}
	body, err := readBody(r, n)
	return pub, body, err
}

// decodePublish decodes into p the PUBLISH body held in body, a fresh buffer that p takes
// over. p is left unchanged on error.
func decodePublish(p *Publish, body []byte, first, version byte, hlen int) error {
	var q Publish
	d := decoder{b: body, base: hlen, own: true, t: TypePublish}
	if err := d.publish(&q, first, version); err != nil {
		return err
	}
	*p = q
	return nil
}

// trustedBody is the largest body ReadPacket allocates whole on the strength of the
// Remaining Length. A larger one is read in growing steps, so that memory follows the
// bytes that actually arrive: a peer that claims 256 MB and sends nothing costs at most
// this much.
const trustedBody = 1 << 20

// readBody reads an n-byte body from r into a fresh buffer.
func readBody(r *bufio.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, trustedBody))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			// Exactly twice as large, and exactly n at the end: slices.Grow would round
			// each step up by append's growth rule (to about 2.4 times), and the sum of
			// the steps would reach 2.6 times the body instead of under 2 (under 3 when n
			// is just over a power of two).
			grown := make([]byte, len(buf), min(n, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
		}
		m, err := io.ReadFull(r, buf[len(buf):min(n, cap(buf))])
		buf = buf[:len(buf)+m]
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}

func frameLimit(maxSize int) (int, error) {
	switch {
	case maxSize < 0:
		return 0, fmt.Errorf("codec: maximum packet size %d is negative; use 0 for no limit", maxSize)
	case maxSize == 0 || maxSize > maxFrame:
		return maxFrame, nil
	}
	return maxSize, nil
}

// nonMinimal reports whether a Variable Byte Integer of n bytes whose last byte is last
// takes more bytes than its value needs, which MQTT 5 forbids [MQTT-1.5.5-1]: it ends in a
// zero byte after a continuation byte (80 00 for 0, FF 00 for 127). MQTT 3.1.1 says
// nothing of it, and its Remaining Length is read as it comes.
func nonMinimal(n int, last byte) bool { return n > 1 && last == 0 }

// readHeader reads a fixed header: the first byte and the Remaining Length (at most four
// bytes, as few as its value needs in MQTT 5 [MQTT-1.5.5-1]), and checks it with
// checkFrame. It reads no byte past the header.
func readHeader(r *bufio.Reader, limit int, version byte) (first byte, remaining, hlen int, err error) {
	first, err = r.ReadByte()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("codec: reading a packet: %w", err)
	}
	for hlen = 1; ; {
		if hlen == 5 {
			return 0, 0, 0, errorf(MalformedPacket, PacketType(first>>4), 4,
				"remaining length is longer than 4 bytes")
		}
		b, err := r.ReadByte()
		if err != nil {
			return 0, 0, 0, fmt.Errorf("codec: reading the remaining length: %w", unexpected(err))
		}
		remaining |= int(b&0x7F) << (7 * (hlen - 1))
		hlen++
		if b < 0x80 {
			if version == V5 && nonMinimal(hlen-1, b) {
				return 0, 0, 0, longLength(first, remaining, hlen)
			}
			break
		}
	}
	return first, remaining, hlen, checkFrame(first, remaining, hlen, limit, version)
}

// errPending stands for a fixed header that is not all buffered yet; it is never returned.
var errPending = errors.New("codec: fixed header not all buffered")

// wholeHeader reports whether b holds a whole fixed header, or enough of one to show it
// is malformed, so that parseHeader has no reason to complain that it is cut short (and
// allocate the error).
func wholeHeader(b []byte) bool {
	for i := 1; i < min(len(b), 5); i++ {
		if b[i] < 0x80 {
			return true
		}
	}
	return len(b) >= 5
}

// parseHeader is readHeader for a frame in memory.
func parseHeader(b []byte, limit int, version byte) (first byte, remaining, hlen int, err error) {
	if len(b) >= 2 && b[1] < 0x80 { // a one-byte Remaining Length: frames under 128 bytes
		return b[0], int(b[1]), 2, checkFrame(b[0], int(b[1]), 2, limit, version)
	}
	if len(b) == 0 {
		return 0, 0, 0, fmt.Errorf("codec: empty buffer: %w", io.ErrUnexpectedEOF)
	}
	for hlen = 1; ; {
		if hlen == 5 {
			return 0, 0, 0, errorf(MalformedPacket, PacketType(b[0]>>4), 4,
				"remaining length is longer than 4 bytes")
		}
		if hlen == len(b) {
			return 0, 0, 0, fmt.Errorf("codec: fixed header cut short after %d bytes: %w", hlen, io.ErrUnexpectedEOF)
		}
		c := b[hlen]
		remaining |= int(c&0x7F) << (7 * (hlen - 1))
		hlen++
		if c < 0x80 {
			if version == V5 && nonMinimal(hlen-1, c) {
				return 0, 0, 0, longLength(b[0], remaining, hlen)
			}
			break
		}
	}
	return b[0], remaining, hlen, checkFrame(b[0], remaining, hlen, limit, version)
}

// longLength is the error for a Remaining Length of MQTT 5 in more bytes than it needs.
func longLength(first byte, remaining, hlen int) error {
	return errorf(MalformedPacket, PacketType(first>>4), 1,
		"remaining length %d is encoded in %d bytes, more than it needs [MQTT-1.5.5-1]", remaining, hlen-1)
}

// unexpected turns an EOF inside a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// checkFrame validates the fixed header: a known packet type, its reserved flag bits,
// and the frame size against limit.
func checkFrame(first byte, remaining, hlen, limit int, version byte) error {
	t := PacketType(first >> 4)
	flags := first & 0x0F
	switch {
	case t == 0:
		return errorf(MalformedPacket, 0, 0, "packet type 0 is reserved") // section 2.1.2
	case t == TypeAuth && version == V311:
		return errorf(MalformedPacket, 0, 0, "packet type 15 is reserved in MQTT 3.1.1 (AUTH is MQTT 5.0 only)")
	case t == TypePublish:
		if flags&0x06 == 0x06 {
			return errorf(MalformedPacket, t, 0, "QoS 3 in the fixed header") // [MQTT-3.3.1-4]
		}
		if flags&0x08 != 0 && flags&0x06 == 0 {
			return errorf(ProtocolError, t, 0, "DUP set on a QoS 0 message") // [MQTT-3.3.1-2]
		}
	case t == TypePubrel || t == TypeSubscribe || t == TypeUnsubscribe:
		if flags != 0x02 {
			// [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1]
			return errorf(MalformedPacket, t, 0, "reserved flags are 0x%X, must be 0x2", flags)
		}
	default:
		if flags != 0 {
			return errorf(MalformedPacket, t, 0, "reserved flags are 0x%X, must be 0", flags) // [MQTT-2.1.3-1] (3.1.1: [MQTT-2.2.2-2])
		}
	}
	if hlen+remaining > limit {
		return errorf(PacketTooLarge, t, 1, "frame of %d bytes exceeds the maximum packet size %d", hlen+remaining, limit)
	}
	return nil
}

// decoder reads the fields of one frame's body. Every read checks the length against what
// is left before slicing, so nothing is allocated or read on the strength of a length
// that the frame does not back.
type decoder struct {
	b    []byte     // the frame's body (variable header and payload)
	off  int        // next byte to read in b
	base int        // offset of b[0] in the frame, for error offsets
	t    PacketType // packet being decoded, for errors
	// own means b is a fresh buffer handed over to the result, so strings and slices may
	// point into it; otherwise (b is r's buffer or the caller's) every field is copied.
	own bool
	// in names the enclosing field whose end bounds the reads ("" for the frame).
	in string
}

// errAt returns an *Error at body offset off.
func (d *decoder) errAt(code ReasonCode, off int, format string, args ...any) *Error {
	return errorf(code, d.t, d.base+off, format, args...)
}

func (d *decoder) left() int { return len(d.b) - d.off }

func (d *decoder) end() string {
	if d.in != "" {
		return d.in
	}
	return fmt.Sprintf("the %d-byte frame", d.base+len(d.b))
}

// short reports that field what (n bytes at off) does not fit.
func (d *decoder) short(what string, n, off int) *Error {
	return d.errAt(MalformedPacket, off, "%s (%d bytes) runs past the end of %s", what, n, d.end())
}

func (d *decoder) byte1(what string) (byte, error) {
	if d.left() < 1 {
		return 0, d.short(what, 1, d.off)
	}
	d.off++
	return d.b[d.off-1], nil
}

func (d *decoder) uint16(what string) (uint16, error) {
	if d.left() < 2 {
		return 0, d.short(what, 2, d.off)
	}
	d.off += 2
	return uint16(d.b[d.off-2])<<8 | uint16(d.b[d.off-1]), nil
}

func (d *decoder) uint32(what string) (uint32, error) {
	if d.left() < 4 {
		return 0, d.short(what, 4, d.off)
	}
	b := d.b[d.off : d.off+4]
	d.off += 4
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), nil
}

// varint reads a Variable Byte Integer (section 1.5.5) of at most four bytes, in
// as few bytes as its value needs [MQTT-1.5.5-1]. Only MQTT 5 has them in a
// packet's body (properties and their lengths).
func (d *decoder) varint(what string) (uint32, error) {
	start := d.off
	var v uint32
	for i := 0; i < 4; i++ {
		c, err := d.byte1(what)
		if err != nil {
			return 0, err
		}
		v |= uint32(c&0x7F) << (7 * i)
		if c < 0x80 {
			if nonMinimal(i+1, c) {
				return 0, d.errAt(MalformedPacket, start, "%s %d is encoded in %d bytes, more than it needs [MQTT-1.5.5-1]", what, v, i+1)
			}
			return v, nil
		}
	}
	return 0, d.errAt(MalformedPacket, start, "%s is a variable byte integer longer than 4 bytes", what)
}

// field reads a two-byte length and that many bytes, without copying.
func (d *decoder) field(what string) ([]byte, int, error) {
	start := d.off
	if d.left() < 2 {
		return nil, start, d.short(what+" length", 2, start)
	}
	n := int(d.b[start])<<8 | int(d.b[start+1])
	d.off += 2
	if n > d.left() {
		return nil, start, d.errAt(MalformedPacket, start, "%s length %d runs past the end of %s", what, n, d.end())
	}
	d.off += n
	return d.b[d.off-n : d.off : d.off], start, nil
}

// binary reads Binary Data (section 1.5.6). The result is never nil, even when empty.
func (d *decoder) binary(what string) ([]byte, error) {
	b, _, err := d.field(what)
	if err != nil {
		return nil, err
	}
	if !d.own {
		return append(make([]byte, 0, len(b)), b...), nil
	}
	return b, nil
}

// string reads a UTF-8 Encoded String (section 1.5.4) and validates it [MQTT-1.5.4-1]
// [MQTT-1.5.4-2]; with topic set it must also be free of wildcards [MQTT-3.3.2-2].
func (d *decoder) string(what string, topic bool) (string, error) {
	b, start, err := d.field(what)
	if err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "", nil
	}
	s := unsafe.String(&b[0], len(b))
	if why, at := stringProblem(s, topic); why != "" {
		code := MalformedPacket
		if topic && (s[at] == '+' || s[at] == '#') {
			code = TopicNameInvalid
		}
		return "", d.errAt(code, start+2+at, "%s: %s", what, why)
	}
	if !d.own {
		s = string(b)
	}
	return s, nil
}

// rest returns what is left of the body, copied unless owned, nil when empty.
func (d *decoder) rest() []byte {
	b := d.b[d.off:len(d.b):len(d.b)]
	d.off = len(d.b)
	if len(b) == 0 {
		return nil
	}
	if !d.own {
		return append([]byte(nil), b...)
	}
	return b
}

// done reports bytes left over after the last field.
func (d *decoder) done() error {
	if d.left() != 0 {
		return d.errAt(MalformedPacket, d.off, "%d unexpected bytes after the last field", d.left())
	}
	return nil
}

// packetID reads a Packet Identifier, which must not be 0 [MQTT-2.3.1-1] [MQTT-2.2.1-3].
func (d *decoder) packetID() (uint16, error) {
	id, err := d.uint16("packet identifier")
	if err == nil && id == 0 {
		err = d.errAt(ProtocolError, d.off-2, "packet identifier is 0")
	}
	return id, err
}

// reasonCode reads a reason code and checks it against the codes the packet may carry.
func (d *decoder) reasonCode(allowed *codeSet) (ReasonCode, error) {
	c, err := d.byte1("reason code")
	if err != nil {
		return 0, err
	}
	if !allowed.permits(ReasonCode(c)) {
		return 0, d.errAt(ProtocolError, d.off-1, "reason code 0x%02X is not valid in %s", c, d.t)
	}
	return ReasonCode(c), nil
}

// exactLength rejects a frame whose body is not exactly n bytes. In an MQTT 3.1.1 stream
// this is how v5-only content (reason codes, properties) shows up.
func (d *decoder) exactLength(n int) error {
	if len(d.b) != n {
		return errorf(MalformedPacket, d.t, 1, "remaining length is %d; an MQTT 3.1.1 %s has %d", len(d.b), d.t, n)
	}
	return nil
}

// packet decodes a body of any type but PUBLISH.
func (d *decoder) packet(first byte, version byte) (Packet, error) {
	var p Packet
	var err error
	switch t := PacketType(first >> 4); t {
	case TypeConnect:
		c := new(Connect)
		p, err = c, d.connect(c)
	case TypeConnack:
		c := new(Connack)
		p, err = c, d.connack(c, version)
	case TypePuback, TypePubrec, TypePubrel, TypePubcomp:
		p, err = d.ack(t, version)
	case TypeSubscribe:
		s := new(Subscribe)
		p, err = s, d.subscribe(s, version)
	case TypeSuback:
		s := new(Suback)
		p, err = s, d.suback(s, version)
	case TypeUnsubscribe:
		u := new(Unsubscribe)
		p, err = u, d.unsubscribe(u, version)
	case TypeUnsuback:
		u := new(Unsuback)
		p, err = u, d.unsuback(u, version)
	case TypePingreq:
		p, err = &Pingreq{}, d.exactLength(0)
	case TypePingresp:
		p, err = &Pingresp{}, d.exactLength(0)
	case TypeDisconnect:
		x := new(Disconnect)
		p, err = x, d.disconnect(x, version)
	case TypeAuth:
		a := new(Auth)
		p, err = a, d.auth(a)
	default: // PUBLISH has its own path; checkFrame refused type 0.
		err = d.errAt(MalformedPacket, -d.base, "no decoder for packet type %d", t)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

package codec_test

// Tests for rows of the conformance matrix (docs/conformance.md) that
// belong to the codec.

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
	"testing/iotest"

	"github.com/robustmqtt/mqtt/codec"
)

// disconnectTable is the list of DISCONNECT reason codes of MQTT 5.0
// (section 3.14.2.1), written out here independently of the codec's own.
var disconnectTable = map[codec.ReasonCode]bool{
	0x00: true, 0x04: true, 0x80: true, 0x81: true, 0x82: true, 0x83: true, 0x87: true,
	0x89: true, 0x8B: true, 0x8D: true, 0x8E: true, 0x8F: true, 0x90: true, 0x93: true,
	0x94: true, 0x95: true, 0x96: true, 0x97: true, 0x98: true, 0x99: true, 0x9A: true,
	0x9B: true, 0x9C: true, 0x9D: true, 0x9E: true, 0x9F: true, 0xA0: true, 0xA1: true,
	0xA2: true,
}

// [MQTT-3.14.2-1]: the code a client puts in the DISCONNECT it sends for
// a broker's error is a DISCONNECT reason code, whatever error code the
// decoder found (0x84 Unsupported Protocol Version and 0x85 Client
// Identifier Not Valid are CONNACK codes): DisconnectReason keeps a listed
// failure code and maps any other failure to Malformed Packet or Protocol
// Error.
func TestDisconnectReasonIsListed(t *testing.T) {
	for i := 0x80; i <= 0xFF; i++ {
		c := codec.ReasonCode(i)
		d := codec.DisconnectReason(c)
		if !disconnectTable[d] || !d.IsError() {
			t.Errorf("DisconnectReason(%#x) = %#x, not a DISCONNECT failure code", i, byte(d))
		}
		if disconnectTable[c] && d != c {
			t.Errorf("DisconnectReason(%#x) = %#x, want the listed code kept", i, byte(d))
		}
		if !disconnectTable[c] && d != codec.ProtocolError {
			t.Errorf("DisconnectReason(%#x) = %#x, want protocol error for an unlisted code", i, byte(d))
		}
		if _, err := (&codec.Disconnect{ReasonCode: d}).AppendTo(nil, codec.V5); err != nil {
			t.Errorf("DISCONNECT %#x does not encode: %v", byte(d), err)
		}
	}
}

// [MQTT-1.5.4-3] (3.1.1: [MQTT-1.5.3-3]): the decoder keeps a leading
// U+FEFF (EF BB BF) in every string it decodes, never strips it: topic,
// and the MQTT 5 string properties and user properties.
func TestDecodeKeepsBOM(t *testing.T) {
	const bom = "\uFEFF"
	for _, v := range []byte{codec.V311, codec.V5} {
		p := &codec.Publish{Topic: bom + "t", Payload: []byte(bom)}
		if v == codec.V5 {
			p.Properties = &codec.Properties{ContentType: bom + "ct", ResponseTopic: bom + "rt",
				User: []codec.UserProperty{{Key: bom + "k", Value: bom + "v"}}}
		}
		b, err := p.AppendTo(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte{0xEF, 0xBB, 0xBF, 't'}) {
			t.Fatalf("v%d: encoded % x lacks the BOM", v, b)
		}
		got, _, err := codec.Decode(b, v, 0)
		if err != nil {
			t.Fatal(err)
		}
		q := got.(*codec.Publish)
		if q.Topic != p.Topic || string(q.Payload) != bom {
			t.Fatalf("v%d: decoded topic %q payload %q, want the BOM kept", v, q.Topic, q.Payload)
		}
		if v == codec.V5 {
			qp := q.Properties
			if qp.ContentType != bom+"ct" || qp.ResponseTopic != bom+"rt" || len(qp.User) != 1 || qp.User[0] != p.Properties.User[0] {
				t.Fatalf("decoded properties %+v, want the BOM kept", qp)
			}
		}
	}
}

// [MQTT-1.5.5-1]: a Variable Byte Integer takes as few bytes as its value
// needs. An MQTT 5 frame that spends more (a Remaining Length, a Property
// Length, a property identifier or a Subscription Identifier ending in a
// zero byte after a continuation byte) is malformed, on every decode path;
// MQTT 3.1.1 says nothing of it, and its Remaining Length is read as it
// comes.
func TestVariableByteIntegersInFewestBytes(t *testing.T) {
	paths := []struct {
		name   string
		decode func(frame []byte, v byte) (codec.Packet, error)
	}{
		{"Decode", func(b []byte, v byte) (codec.Packet, error) { p, _, err := codec.Decode(b, v, 0); return p, err }},
		{"DecodeInto", func(b []byte, v byte) (codec.Packet, error) {
			var pub codec.Publish
			p, _, err := codec.DecodeInto(b, &pub, v, 0)
			return p, err
		}},
		{"ReadPacket", func(b []byte, v byte) (codec.Packet, error) {
			return codec.ReadPacket(bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(b)), 16), v, 0)
		}},
		{"ReadPacket/buffered", func(b []byte, v byte) (codec.Packet, error) {
			r := bufio.NewReaderSize(bytes.NewReader(b), 256)
			if _, err := r.Peek(len(b)); err != nil {
				return nil, err
			}
			return codec.ReadPacket(r, v, 0)
		}},
	}
	for _, tc := range []struct {
		name  string
		v     byte
		frame []byte
		want  codec.Packet // nil: malformed
	}{
		{"PINGREQ, length 0 in two bytes", codec.V5, []byte{0xC0, 0x80, 0x00}, nil},
		{"PINGREQ, length 0 in two bytes, 3.1.1", codec.V311, []byte{0xC0, 0x80, 0x00}, &codec.Pingreq{}},
		{"PUBLISH, length 5 in two bytes", codec.V5, []byte{0x30, 0x85, 0x00, 0, 1, 'a', 0, 'x'}, nil},
		{"PUBLISH, length 4 in two bytes, 3.1.1", codec.V311, []byte{0x30, 0x84, 0x00, 0, 1, 'a', 'x'},
			&codec.Publish{Topic: "a", Payload: []byte("x")}},
		{"PUBLISH, length 127 in two bytes", codec.V5, append([]byte{0x30, 0xFF, 0x00, 0, 1, 'a', 0}, make([]byte, 123)...), nil},
		{"Property Length 0 in two bytes", codec.V5, []byte{0x30, 0x06, 0, 1, 'a', 0x80, 0x00, 'x'}, nil},
		{"property identifier 1 in two bytes", codec.V5, []byte{0x30, 0x08, 0, 1, 'a', 0x03, 0x81, 0x00, 0x01, 'x'}, nil},
		{"Subscription Identifier 1 in two bytes", codec.V5, []byte{0x30, 0x08, 0, 1, 'a', 0x03, 0x0B, 0x81, 0x00, 'x'}, nil},
		{"Subscription Identifier 128 in two bytes", codec.V5, []byte{0x30, 0x08, 0, 1, 'a', 0x03, 0x0B, 0x80, 0x01, 'x'},
			&codec.Publish{Topic: "a", Payload: []byte("x"), Properties: &codec.Properties{SubscriptionIdentifier: []uint32{128}}}},
	} {
		for _, path := range paths {
			got, err := path.decode(tc.frame, tc.v)
			if tc.want == nil {
				var e *codec.Error
				if !errors.As(err, &e) || e.Code != codec.MalformedPacket {
					t.Errorf("%s, %s: %v, %v; want a malformed packet", tc.name, path.name, got, err)
				}
				continue
			}
			if err != nil || !equal(got, tc.want) {
				t.Errorf("%s, %s: %s, %v; want %s", tc.name, path.name, dump(got), err, dump(tc.want))
			}
		}
	}
}

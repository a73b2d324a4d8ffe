package codec_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt/codec"
)

// malformed lists frames a receiver must refuse, by class, with the reason code it should
// answer with. at is the byte offset the error must name, or -2 not to check it.
var malformed = []struct {
	class, name string
	v           byte
	frame       string
	code        codec.ReasonCode
	at          int
}{
	// Reserved flag bits in the fixed header [MQTT-2.2.2-2].
	{"flags", "CONNECT", codec.V311, "11 00", codec.MalformedPacket, 0},
	{"flags", "CONNACK", codec.V5, "28 03 00 00 00", codec.MalformedPacket, 0},
	{"flags", "PUBACK", codec.V311, "42 02 00 01", codec.MalformedPacket, 0},
	{"flags", "PUBREL without 0010", codec.V311, "60 02 00 01", codec.MalformedPacket, 0}, // [MQTT-3.6.1-1]
	{"flags", "SUBSCRIBE without 0010", codec.V5, "80 07 00 01 00 00 01 61 00", codec.MalformedPacket, 0},
	{"flags", "UNSUBSCRIBE with 0011", codec.V311, "A3 05 00 01 00 01 61", codec.MalformedPacket, 0},
	{"flags", "PINGREQ", codec.V311, "C1 00", codec.MalformedPacket, 0},
	{"flags", "DISCONNECT", codec.V5, "E8 00", codec.MalformedPacket, 0},
	{"flags", "AUTH", codec.V5, "F4 00", codec.MalformedPacket, 0},
	{"flags", "reserved packet type 0", codec.V5, "00 00", codec.MalformedPacket, 0},
	{"flags", "CONNECT reserved flag", codec.V311, "10 0D 00 04 4D 51 54 54 04 03 00 00 00 01 61", codec.MalformedPacket, 9}, // [MQTT-3.1.2-3]
	{"flags", "CONNACK reserved flags", codec.V311, "20 02 02 00", codec.MalformedPacket, 2},
	{"flags", "subscription options bits 6-7", codec.V5, "82 07 00 01 00 00 01 61 C0", codec.MalformedPacket, 8}, // [MQTT-3.8.3-5]
	{"flags", "will QoS without will flag", codec.V311, "10 0D 00 04 4D 51 54 54 04 0A 00 00 00 01 61", codec.MalformedPacket, 9},

	// Remaining length longer than four bytes, or not matching the frame's content.
	{"length", "five-byte remaining length", codec.V311, "30 FF FF FF FF 01", codec.MalformedPacket, 4},
	{"length", "PINGREQ with a body", codec.V5, "C0 01 00", codec.MalformedPacket, 1},
	{"length", "trailing bytes after properties", codec.V5, "40 05 00 01 00 00 FF", codec.MalformedPacket, 6},
	{"length", "property length past the frame", codec.V5, "40 04 00 01 00 09", codec.MalformedPacket, 5},
	{"length", "packet identifier cut short", codec.V5, "40 01 00", codec.MalformedPacket, 2},
	{"length", "variable byte integer of 5 bytes in properties", codec.V5, "40 08 00 01 00 FF FF FF FF 01", codec.MalformedPacket, 5},

	// A string or binary length running past the frame.
	{"string", "topic length 300", codec.V311, "30 0A 01 2C 61 62 63 64 65 66 67 68", codec.MalformedPacket, 2},
	{"string", "client id length", codec.V311, "10 0D 00 04 4D 51 54 54 04 02 00 00 00 09 61", codec.MalformedPacket, 12},
	{"string", "content type past the properties", codec.V5, "30 08 00 01 74 03 03 00 05 61", codec.MalformedPacket, 7},
	{"string", "will payload", codec.V311, "10 13 00 04 4D 51 54 54 04 06 00 00 00 01 61 00 01 74 00 05 78", codec.MalformedPacket, 18},
	{"string", "user property value", codec.V5, "70 0A 00 01 00 06 26 00 01 6B 00 04", codec.MalformedPacket, 10},

	// QoS 3.
	{"qos", "PUBLISH", codec.V311, "36 05 00 01 74 00 01", codec.MalformedPacket, 0}, // [MQTT-3.3.1-4]
	{"qos", "will", codec.V5, "10 0E 00 04 4D 51 54 54 05 1C 00 00 00 00 01 61", codec.MalformedPacket, 9},
	{"qos", "subscription", codec.V311, "82 06 00 01 00 01 61 03", codec.MalformedPacket, 7},

	// Packet identifier 0 [MQTT-2.2.1-3].
	{"packet-id", "PUBLISH QoS 1", codec.V311, "32 05 00 01 74 00 00", codec.ProtocolError, 5},
	{"packet-id", "PUBACK", codec.V5, "40 02 00 00", codec.ProtocolError, 2},
	{"packet-id", "PUBREL", codec.V311, "62 02 00 00", codec.ProtocolError, 2},
	{"packet-id", "SUBSCRIBE", codec.V311, "82 06 00 00 00 01 61 00", codec.ProtocolError, 2},
	{"packet-id", "SUBACK", codec.V5, "90 04 00 00 00 00", codec.ProtocolError, 2},
	{"packet-id", "UNSUBSCRIBE", codec.V5, "A2 06 00 00 00 00 01 61", codec.ProtocolError, 2},

	// A property that may appear once, twice (2.2.2.2).
	{"duplicate", "Payload Format Indicator", codec.V5, "30 08 00 01 74 04 01 00 01 01", codec.ProtocolError, 8},
	{"duplicate", "Subscription Identifier in SUBSCRIBE", codec.V5, "82 0B 00 01 04 0B 01 0B 02 00 01 61 00", codec.ProtocolError, 7},
	{"duplicate", "Reason String", codec.V5, "20 0B 00 00 08 1F 00 01 61 1F 00 01 62", codec.ProtocolError, 9},
	{"duplicate", "Will Delay Interval", codec.V5,
		"10 1E 00 04 4D 51 54 54 05 06 00 00 00 00 01 61 0A 18 00 00 00 01 18 00 00 00 02 00 01 74 00 00", codec.ProtocolError, 22},

	// A property the packet may not carry (2.2.2.2) or that does not exist.
	{"not-allowed", "Session Expiry Interval in PUBLISH", codec.V5, "30 09 00 01 74 05 11 00 00 00 01", codec.MalformedPacket, 6},
	{"not-allowed", "Topic Alias in will properties", codec.V5,
		"10 17 00 04 4D 51 54 54 05 06 00 00 00 00 01 61 03 23 00 01 00 01 74 00 00", codec.MalformedPacket, 17},
	{"not-allowed", "Will Delay Interval in CONNECT", codec.V5, "10 12 00 04 4D 51 54 54 05 02 00 00 05 18 00 00 00 01 00 00", codec.MalformedPacket, 13},
	{"not-allowed", "Topic Alias in PUBACK", codec.V5, "40 07 00 01 00 03 23 00 01", codec.MalformedPacket, 6},
	{"not-allowed", "User Property in PINGREQ-like AUTH", codec.V5, "F0 04 00 02 01 00", codec.MalformedPacket, 4},
	{"not-allowed", "unknown identifier 0x05", codec.V5, "30 06 00 01 74 02 05 00", codec.MalformedPacket, 6},

	// Invalid UTF-8, U+0000, surrogates [MQTT-1.5.4-1] [MQTT-1.5.4-2].
	{"utf8", "byte FF in a topic", codec.V311, "30 04 00 02 61 FF", codec.MalformedPacket, 5},
	{"utf8", "surrogate U+D800 in a topic", codec.V311, "30 05 00 03 ED A0 80", codec.MalformedPacket, 4},
	{"utf8", "overlong NUL", codec.V5, "30 05 00 02 C0 80 00", codec.MalformedPacket, 4},
	{"utf8", "U+0000 in a topic", codec.V311, "30 04 00 02 61 00", codec.MalformedPacket, 5},
	{"utf8", "cut sequence in a client id", codec.V311, "10 0E 00 04 4D 51 54 54 04 02 00 00 00 02 61 E2", codec.MalformedPacket, 15},
	{"utf8", "user property key", codec.V5, "70 0A 00 01 00 06 26 00 01 FE 00 00", codec.MalformedPacket, 9},
	{"utf8", "topic filter", codec.V311, "82 06 00 01 00 01 80 00", codec.MalformedPacket, 6},

	// A 3.1.1 frame with MQTT 5.0 content.
	{"v5-in-v311", "PUBACK reason code", codec.V311, "40 03 00 01 10", codec.MalformedPacket, 1},
	{"v5-in-v311", "PUBREL with properties", codec.V311, "62 04 00 01 00 00", codec.MalformedPacket, 1},
	{"v5-in-v311", "CONNACK properties", codec.V311, "20 03 00 00 00", codec.MalformedPacket, 1},
	{"v5-in-v311", "DISCONNECT reason code", codec.V311, "E0 01 04", codec.MalformedPacket, 1},
	{"v5-in-v311", "UNSUBACK reason codes", codec.V311, "B0 03 00 01 00", codec.MalformedPacket, 1},
	{"v5-in-v311", "AUTH", codec.V311, "F0 00", codec.MalformedPacket, 0},
	{"v5-in-v311", "No Local subscription option", codec.V311, "82 06 00 01 00 01 61 04", codec.MalformedPacket, 7},
	{"v5-in-v311", "SUBACK code 0x03", codec.V311, "90 03 00 01 03", codec.ProtocolError, 4},
	{"v5-in-v311", "CONNACK return code 0x87", codec.V311, "20 02 00 87", codec.ProtocolError, 3},

	// Topic names and filters.
	{"topic", "wildcard in a topic name", codec.V311, "30 05 00 03 61 2F 23", codec.TopicNameInvalid, 6},
	{"topic", "empty topic name", codec.V311, "30 02 00 00", codec.TopicNameInvalid, 2},
	{"topic", "empty topic name without alias", codec.V5, "30 03 00 00 00", codec.ProtocolError, 2},
	{"topic", "wildcard in a will topic", codec.V311, "10 12 00 04 4D 51 54 54 04 06 00 00 00 01 61 00 01 2B 00 00", codec.TopicNameInvalid, 17},
	{"topic", "wildcard in a response topic", codec.V5, "30 09 00 01 74 05 08 00 02 61 2B", codec.TopicNameInvalid, 10},
	{"topic", "'#' not last", codec.V311, "82 07 00 01 00 02 23 2F 00", codec.TopicFilterInvalid, 6},
	{"topic", "'+' inside a level", codec.V5, "82 08 00 01 00 00 02 61 2B 00", codec.TopicFilterInvalid, 8},
	{"topic", "empty filter", codec.V311, "A2 04 00 01 00 00", codec.TopicFilterInvalid, 4},
	{"topic", "shared without ShareName", codec.V5, "82 0F 00 01 00 00 09 24 73 68 61 72 65 2F 2F 74 00", codec.TopicFilterInvalid, 14},

	// Other protocol errors.
	{"protocol", "DUP on QoS 0", codec.V311, "38 03 00 01 74", codec.ProtocolError, 0}, // [MQTT-3.3.1-2]
	{"protocol", "SUBSCRIBE without subscriptions", codec.V311, "82 02 00 01", codec.ProtocolError, 4},
	{"protocol", "UNSUBSCRIBE without filters", codec.V5, "A2 03 00 01 00", codec.ProtocolError, 5},
	{"protocol", "SUBACK without codes", codec.V5, "90 03 00 01 00", codec.ProtocolError, 5},
	{"protocol", "No Local on a shared subscription", codec.V5, "82 10 00 01 00 00 0A 24 73 68 61 72 65 2F 67 2F 74 04", codec.ProtocolError, 17},
	{"protocol", "retain handling 3", codec.V5, "82 07 00 01 00 00 01 61 30", codec.ProtocolError, 8},
	{"protocol", "success code 0x18 in PUBACK", codec.V5, "40 03 00 01 18", codec.ProtocolError, 4},
	{"protocol", "reason code 0x04 in AUTH", codec.V5, "F0 01 04", codec.ProtocolError, 2},
	{"protocol", "session present with an error", codec.V311, "20 02 01 05", codec.ProtocolError, 2},
	{"protocol", "CONNACK return code 6", codec.V311, "20 02 00 06", codec.ProtocolError, 3},
	{"protocol", "Topic Alias 0", codec.V5, "30 07 00 01 74 03 23 00 00", codec.ProtocolError, 6}, // [MQTT-3.3.2-8]
	{"protocol", "Receive Maximum 0", codec.V5, "20 06 00 00 03 21 00 00", codec.ProtocolError, 5},
	{"protocol", "Subscription Identifier 0", codec.V5, "30 06 00 01 74 02 0B 00", codec.ProtocolError, 6},
	{"protocol", "Maximum QoS 2", codec.V5, "20 05 00 00 02 24 02", codec.ProtocolError, 5},
	{"protocol", "Authentication Data without Method", codec.V5, "F0 06 18 04 16 00 01 78", codec.ProtocolError, 3},
	{"protocol", "password without user name", codec.V311, "10 10 00 04 4D 51 54 54 04 42 00 00 00 01 61 00 01 70", codec.MalformedPacket, 9}, // [MQTT-3.1.2-22]
	{"protocol", "empty client id without clean session", codec.V311, "10 0C 00 04 4D 51 54 54 04 00 00 00 00 00", codec.ClientIdentifierNotValid, 12},
	{"protocol", "protocol name", codec.V311, "10 0D 00 04 4D 51 54 58 04 02 00 00 00 01 61", codec.MalformedPacket, 2},
	{"protocol", "MQTT 3.1", codec.V311, "10 0F 00 06 4D 51 49 73 64 70 03 02 00 00 00 01 61", codec.UnsupportedProtocolVersion, 2},
	{"protocol", "protocol level 6", codec.V5, "10 0D 00 04 4D 51 54 54 06 02 00 00 00 01 61", codec.UnsupportedProtocolVersion, 8},
}

func TestMalformed(t *testing.T) {
	for _, tc := range malformed {
		t.Run(tc.class+"/"+tc.name, func(t *testing.T) {
			frame := h(tc.frame)
			check := func(how string, p codec.Packet, err error) {
				t.Helper()
				var e *codec.Error
				if !errors.As(err, &e) {
					t.Fatalf("%s = %s, %v; want an *Error", how, dump(p), err)
				}
				if p != nil {
					t.Errorf("%s returned a packet with its error", how)
				}
				if e.Code != tc.code || (tc.at != -2 && e.Offset != tc.at) {
					t.Errorf("%s: %v\ncode %s at byte %d, want %s at byte %d", how, err, e.Code, e.Offset, tc.code, tc.at)
				}
				if !strings.HasPrefix(err.Error(), "codec: ") || e.Reason == "" {
					t.Errorf("%s: message %q", how, err)
				}
			}
			p, _, err := codec.Decode(frame, tc.v, 0)
			check("Decode", p, err)
			// ReadPacket with a buffer smaller than most frames, to use both paths, and
			// the frame followed by a valid one, which must still be readable: the bad
			// frame was consumed whole.
			r := bufio.NewReaderSize(bytes.NewReader(append(frame[:len(frame):len(frame)], 0xC0, 0x00)), 16)
			p, err = codec.ReadPacket(r, tc.v, 0)
			check("ReadPacket", p, err)
			var e *codec.Error
			if errors.As(err, &e) && e.Offset > 0 && e.Code != codec.PacketTooLarge && !strings.Contains(tc.name, "five-byte") {
				if next, err := codec.ReadPacket(r, tc.v, 0); err != nil || next.Type() != codec.TypePingreq {
					t.Errorf("after the bad frame: %s, %v; want PINGREQ", dump(next), err)
				}
			}
		})
	}
}

// TestTooLarge checks that a frame claiming more than the maximum packet size is refused
// from its fixed header: nothing past it is read, nothing is allocated for the body.
func TestTooLarge(t *testing.T) {
	// 268435455 bytes claimed, and nothing behind it.
	huge := h("30 FF FF FF 7F")
	for _, max := range []int{0, 1 << 20} {
		r := bufio.NewReaderSize(bytes.NewReader(huge), 16)
		_, err := codec.ReadPacket(r, codec.V311, max)
		var e *codec.Error
		if max == 0 {
			if !errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &e) {
				t.Errorf("no limit: %v, want io.ErrUnexpectedEOF", err)
			}
			continue
		}
		if !errors.As(err, &e) || e.Code != codec.PacketTooLarge || e.Packet != codec.TypePublish {
			t.Fatalf("max %d: %v, want PacketTooLarge", max, err)
		}
		if r.Buffered() != 0 {
			t.Errorf("%d bytes left unread; the header is all it may read", r.Buffered())
		}
	}
	// Memory: the error and its message only, however much the frame claims.
	r := &endless{header: huge}
	br := bufio.NewReaderSize(r, 16)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		r.off = 0
		br.Reset(r)
		if _, err := codec.ReadPacket(br, codec.V311, 1000); err == nil {
			t.Fatal("no error")
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / 100; per > 512 {
		t.Errorf("%d bytes allocated to refuse a 256 MB frame", per)
	}
	// Exactly at the limit is fine; one byte over is not.
	frame, _ := (&codec.Publish{Topic: "t", Payload: []byte("12345")}).AppendTo(nil, codec.V311)
	if _, _, err := codec.Decode(frame, codec.V311, len(frame)); err != nil {
		t.Errorf("frame of exactly maxSize: %v", err)
	}
	if _, _, err := codec.Decode(frame, codec.V311, len(frame)-1); !errors.As(err, new(*codec.Error)) {
		t.Errorf("frame of maxSize+1: %v", err)
	}
}

// endless yields a fixed header and then zeros forever.
type endless struct {
	header []byte
	off    int
}

func (r *endless) Read(b []byte) (int, error) {
	n := copy(b, r.header[min(r.off, len(r.header)):])
	clear(b[n:])
	r.off += len(b)
	return len(b), nil
}

// TestTruncated checks that a frame cut short is reported as such, not as malformed: a
// stream cannot tell a truncated frame from one still arriving.
func TestTruncated(t *testing.T) {
	frame := h("32 0C 00 03 61 2F 62 00 0A 68 65 6C 6C 6F")
	for n := range len(frame) {
		_, _, err := codec.Decode(frame[:n], codec.V311, 0)
		if !errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, new(*codec.Error)) {
			t.Errorf("Decode of %d bytes: %v, want io.ErrUnexpectedEOF", n, err)
		}
		_, err = codec.ReadPacket(bufio.NewReader(bytes.NewReader(frame[:n])), codec.V311, 0)
		want := io.ErrUnexpectedEOF
		if n == 0 {
			want = io.EOF
		}
		if !errors.Is(err, want) || errors.As(err, new(*codec.Error)) {
			t.Errorf("ReadPacket of %d bytes: %v, want %v", n, err, want)
		}
	}
}

// TestReadError checks that a network error is wrapped, not turned into an *Error.
func TestReadError(t *testing.T) {
	boom := errors.New("connection reset")
	r := bufio.NewReader(io.MultiReader(bytes.NewReader(h("32 0C 00 03")), errReader{boom}))
	_, err := codec.ReadPacket(r, codec.V311, 0)
	if !errors.Is(err, boom) || errors.As(err, new(*codec.Error)) {
		t.Fatalf("ReadPacket = %v, want it to wrap %v", err, boom)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestBadArguments(t *testing.T) {
	frame := h("C0 00")
	if _, _, err := codec.Decode(frame, 3, 0); !errors.Is(err, codec.ErrVersion) {
		t.Errorf("Decode at version 3: %v", err)
	}
	if _, err := codec.ReadPacket(bufio.NewReader(bytes.NewReader(frame)), 6, 0); !errors.Is(err, codec.ErrVersion) {
		t.Errorf("ReadPacket at version 6: %v", err)
	}
	if _, _, err := codec.Decode(frame, codec.V5, -1); err == nil || errors.As(err, new(*codec.Error)) {
		t.Errorf("Decode with maxSize -1: %v", err)
	}
	if _, err := (&codec.Pingreq{}).AppendTo(nil, 0); !errors.Is(err, codec.ErrVersion) {
		t.Errorf("AppendTo at version 0: %v", err)
	}
	if _, err := (&codec.Publish{Topic: "t"}).AppendTo(nil, 3); !errors.Is(err, codec.ErrVersion) {
		t.Errorf("Publish.AppendTo at version 3: %v", err)
	}
}

// A failure code that the packet's table does not list still decodes, for
// every packet whose table has failure codes: the receiver learns that its
// request failed and why, and a protocol error would only turn a refusal
// into a reconnect loop (Mosquitto 2.0 answers an oversized PUBLISH with
// PUBACK 0x95).
func TestUnlistedFailureCodesDecode(t *testing.T) {
	for _, hex := range []string{"40 03 00 01 95", "50 03 00 01 97", "70 03 00 01 80", "90 04 00 01 00 9C", "B0 04 00 01 00 95", "20 03 00 A0 00", "E0 01 92"} {
		b := h(hex)
		if _, _, err := codec.Decode(b, codec.V5, 0); err != nil {
			t.Errorf("Decode(% x) = %v, want it accepted", b, err)
		}
	}
	// A 3.1.1 SUBACK's only failure is 0x80, but mochi-mqtt v2.7 answers a
	// SUBSCRIBE whose identifier is one of its own in flight with 0x91.
	for _, hex := range []string{"90 03 00 01 91", "90 04 00 01 01 87"} {
		b := h(hex)
		if _, _, err := codec.Decode(b, codec.V311, 0); err != nil {
			t.Errorf("Decode(% x) at 3.1.1 = %v, want it accepted", b, err)
		}
	}
}

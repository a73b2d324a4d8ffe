package codec_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/robustmqtt/mqtt/codec"
)

// The tests here hold decoding to what the package doc promises under "Memory": what
// decoding a frame allocates is a small multiple of the frame, whatever repeats in it.

// attackSize is the frame the security review measured: a 16 MiB PUBLISH.
const attackSize = 16 << 20

// propsFrame returns an MQTT 5.0 frame: the fixed header's first byte, then the bytes
// before the property list, the property list props, and the bytes after it.
func propsFrame(first byte, before, props, after []byte) []byte {
	body := append(append(bytes.Clone(before), varint(len(props))...), props...)
	body = append(body, after...)
	return append(append([]byte{first}, varint(len(body))...), body...)
}

// repeated returns a frame of about size bytes as propsFrame builds it, with the property
// list prop repeated; or if prop is nil an empty property list, and after repeated.
func repeated(first byte, before, prop, after []byte, size int) []byte {
	if prop == nil {
		return propsFrame(first, before, nil, bytes.Repeat(after, (size-16-len(before))/len(after)))
	}
	return propsFrame(first, before, bytes.Repeat(prop, (size-16-len(before)-len(after))/len(prop)), after)
}

// repeatedPropsPublish returns a PUBLISH to topic "t" at QoS 0, without payload, whose
// property list is prop repeated to fill a frame of about size bytes.
func repeatedPropsPublish(prop []byte, size int) []byte {
	return repeated(0x30, []byte{0, 1, 't'}, prop, nil, size)
}

func varint(n int) []byte {
	var b []byte
	for {
		c := byte(n & 0x7F)
		n >>= 7
		if n == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// emptyUserProp is the smallest User Property: identifier 0x26, an empty name and an
// empty value, 5 bytes that decode to a 32-byte UserProperty.
var emptyUserProp = []byte{0x26, 0, 0, 0, 0}

// smallSubID is the smallest Subscription Identifier: identifier 0x0B and the value 1, 2
// bytes that decode to a 4-byte uint32.
var smallSubID = []byte{0x0B, 1}

// decodePath is one of the ways a frame gets decoded: setup prepares what the decode
// needs (a reader, a Publish) outside the measurement and returns the decode itself.
type decodePath struct {
	name  string
	setup func(frame []byte) func() (codec.Packet, error)
}

var decodePaths = []decodePath{
	{"Decode", func(frame []byte) func() (codec.Packet, error) {
		return func() (codec.Packet, error) { p, _, err := codec.Decode(frame, codec.V5, 0); return p, err }
	}},
	{"DecodeInto", func(frame []byte) func() (codec.Packet, error) {
		var pub codec.Publish
		return func() (codec.Packet, error) { p, _, err := codec.DecodeInto(frame, &pub, codec.V5, 0); return p, err }
	}},
	// The frame arrives through a reader smaller than it: the body is read into memory
	// the packet owns.
	{"ReadPacket", func(frame []byte) func() (codec.Packet, error) {
		r := bufio.NewReaderSize(bytes.NewReader(frame), 4096)
		return func() (codec.Packet, error) { return codec.ReadPacket(r, codec.V5, 0) }
	}},
	{"ReadPacketInto", func(frame []byte) func() (codec.Packet, error) {
		r := bufio.NewReaderSize(bytes.NewReader(frame), 4096)
		var pub codec.Publish
		return func() (codec.Packet, error) { return codec.ReadPacketInto(r, &pub, codec.V5, 0) }
	}},
	// The whole frame is buffered already: it is decoded where it lies.
	{"ReadPacket/buffered", func(frame []byte) func() (codec.Packet, error) {
		r := bufio.NewReaderSize(bytes.NewReader(frame), len(frame))
		if _, err := r.Peek(len(frame)); err != nil {
			panic(err)
		}
		return func() (codec.Packet, error) { return codec.ReadPacket(r, codec.V5, 0) }
	}},
}

// allocated returns the bytes op allocates.
func allocated(op func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	op()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// amplifiers are frames of about attackSize bytes made of the smallest unit that a
// packet may repeat: a property, a reason code, a topic filter. refused is the code of
// the error decoding must give (0: it succeeds), bound how many times the frame's size
// it may allocate.
var amplifiers = []struct {
	name    string
	frame   func() []byte
	refused codec.ReasonCode
	bound   float64
}{
	{"PUBLISH/UserProperties", func() []byte { return repeatedPropsPublish(emptyUserProp, attackSize) },
		codec.ImplementationSpecificError, 4},
	{"PUBLISH/SubscriptionIdentifiers", func() []byte { return repeatedPropsPublish(smallSubID, attackSize) },
		codec.ImplementationSpecificError, 4},
	{"PUBACK/UserProperties", func() []byte { return repeated(0x40, []byte{0, 1, 0}, emptyUserProp, nil, attackSize) },
		codec.ImplementationSpecificError, 4},
	{"CONNACK/UserProperties", func() []byte { return repeated(0x20, []byte{0, 0}, emptyUserProp, nil, attackSize) },
		codec.ImplementationSpecificError, 4},
	{"DISCONNECT/UserProperties", func() []byte { return repeated(0xE0, []byte{0}, emptyUserProp, nil, attackSize) },
		codec.ImplementationSpecificError, 4},
	{"AUTH/UserProperties", func() []byte { return repeated(0xF0, []byte{0}, emptyUserProp, nil, attackSize) },
		codec.ImplementationSpecificError, 4},
	{"SUBACK/UserProperties", func() []byte { return repeated(0x90, []byte{0, 1}, emptyUserProp, []byte{0}, attackSize) },
		codec.ImplementationSpecificError, 4},
	{"UNSUBACK/UserProperties", func() []byte { return repeated(0xB0, []byte{0, 1}, emptyUserProp, []byte{0}, attackSize) },
		codec.ImplementationSpecificError, 4},
	// One byte on the wire, one in the ReasonCodes slice. The frames that decode whole are
	// smaller (decoding millions of values takes seconds under the race detector); what
	// they allocate is in proportion all the same.
	{"SUBACK/ReasonCodes", func() []byte { return repeated(0x90, []byte{0, 1}, nil, []byte{0}, attackSize/8) }, 0, 4},
	{"UNSUBACK/ReasonCodes", func() []byte { return repeated(0xB0, []byte{0, 1}, nil, []byte{0}, attackSize/8) }, 0, 4},
	// Only a server receives these two. A 4-byte subscription becomes a 24-byte
	// Subscription, a 3-byte filter a 16-byte string header; the codec sets no limit on
	// them (a server should set its own), so they cost up to 6 times the frame (8 with the
	// growing buffer ReadPacket reads a large body into).
	{"SUBSCRIBE/Filters", func() []byte { return repeated(0x82, []byte{0, 1}, nil, []byte{0, 1, 'a', 0}, attackSize/8) }, 0, 8},
	{"UNSUBSCRIBE/Filters", func() []byte { return repeated(0xA2, []byte{0, 1}, nil, []byte{0, 1, 'a'}, attackSize/8) }, 0, 8},
	{"CONNECT/UserProperties", func() []byte {
		return repeated(0x10, []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 60}, emptyUserProp, []byte{0, 1, 'a'}, attackSize)
	}, codec.ImplementationSpecificError, 4},
}

// TestAmplification decodes each amplifier on every decode path: each must be refused or
// decoded as its case says, and allocate no more than its bound. Before the limits, each
// 16 MiB frame of user properties allocated 630 to 673 MiB (39 to 42 times the frame),
// of subscription identifiers 208 to 234 MiB (13 to 15 times), and the frames of topic
// filters 31 to 39 times their size.
func TestAmplification(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes 16 MiB frames")
	}
	for _, tc := range amplifiers {
		frame := tc.frame()
		for _, path := range decodePaths {
			t.Run(tc.name+"/"+path.name, func(t *testing.T) {
				op := path.setup(frame)
				var err error
				got := allocated(func() { _, err = op() })
				ratio := float64(got) / float64(len(frame))
				t.Logf("%s frame: %s allocated (%.1fx): %v", mib(uint64(len(frame))), mib(got), ratio, err)
				if ratio > tc.bound {
					t.Errorf("decoding a %s frame allocated %s, more than %g times the frame",
						mib(uint64(len(frame))), mib(got), tc.bound)
				}
				var e *codec.Error
				switch {
				case tc.refused == 0 && err != nil:
					t.Errorf("error %v; want none", err)
				case tc.refused != 0 && (!errors.As(err, &e) || e.Code != tc.refused):
					t.Errorf("error %v; want an *Error with code %s", err, tc.refused)
				}
			})
		}
	}
}

// userProps returns n user properties, each with a distinct key.
func userProps(n int) []codec.UserProperty {
	u := make([]codec.UserProperty, n)
	for i := range u {
		u[i] = codec.UserProperty{Key: fmt.Sprint("k", i), Value: "v"}
	}
	return u
}

// userPropBytes is userProps(n)[i] on the wire.
func userPropBytes(i int) []byte {
	k := fmt.Sprint("k", i)
	return append(append([]byte{0x26, 0, byte(len(k))}, k...), 0, 1, 'v')
}

func subIDs(n int) []uint32 {
	ids := make([]uint32, n)
	for i := range ids {
		ids[i] = uint32(i + 1)
	}
	return ids
}

// subIDBytes is subIDs(n)[i] on the wire.
func subIDBytes(i int) []byte { return append([]byte{0x0B}, varint(i+1)...) }

// TestRepeatedLimits checks the limits at their edge, in every kind of property list, on
// every decode path: a list at the limit encodes, and decodes back to the same packet
// with each slice exactly as long as it needs; one value more, the encoder refuses the
// packet, and the decoder the frame, with ImplementationSpecificError at that value.
func TestRepeatedLimits(t *testing.T) {
	cases := []struct {
		name          string
		limit         int
		unit          func(i int) []byte       // the i-th repeated value on the wire
		first         byte                     // the frame, as propsFrame builds it
		before, after []byte                   // around the list
		packet        func(n int) codec.Packet // the same packet, with n values
		props         func(codec.Packet) *codec.Properties
	}{
		{"PUBLISH/User", codec.MaxUserProperties, userPropBytes, 0x30, []byte{0, 1, 't'}, []byte("x"),
			func(n int) codec.Packet {
				return &codec.Publish{Topic: "t", Payload: []byte("x"), Properties: &codec.Properties{User: userProps(n)}}
			},
			func(p codec.Packet) *codec.Properties { return p.(*codec.Publish).Properties }},
		{"PUBLISH/SubscriptionIdentifier", codec.MaxSubscriptionIdentifiers, subIDBytes, 0x32, []byte{0, 1, 't', 0, 9}, nil,
			func(n int) codec.Packet {
				return &codec.Publish{Topic: "t", QoS: 1, PacketID: 9, Properties: &codec.Properties{SubscriptionIdentifier: subIDs(n)}}
			},
			func(p codec.Packet) *codec.Properties { return p.(*codec.Publish).Properties }},
		{"PUBACK/User", codec.MaxUserProperties, userPropBytes, 0x40, []byte{0, 1, 0}, nil,
			func(n int) codec.Packet {
				return &codec.Puback{PacketID: 1, Properties: &codec.Properties{User: userProps(n)}}
			},
			func(p codec.Packet) *codec.Properties { return p.(*codec.Puback).Properties }},
		{"CONNACK/User", codec.MaxUserProperties, userPropBytes, 0x20, []byte{0, 0}, nil,
			func(n int) codec.Packet { return &codec.Connack{Properties: &codec.Properties{User: userProps(n)}} },
			func(p codec.Packet) *codec.Properties { return p.(*codec.Connack).Properties }},
		{"SUBACK/User", codec.MaxUserProperties, userPropBytes, 0x90, []byte{0, 1}, []byte{1},
			func(n int) codec.Packet {
				return &codec.Suback{PacketID: 1, ReasonCodes: []codec.ReasonCode{codec.GrantedQoS1},
					Properties: &codec.Properties{User: userProps(n)}}
			},
			func(p codec.Packet) *codec.Properties { return p.(*codec.Suback).Properties }},
		{"DISCONNECT/User", codec.MaxUserProperties, userPropBytes, 0xE0, []byte{0}, nil,
			func(n int) codec.Packet { return &codec.Disconnect{Properties: &codec.Properties{User: userProps(n)}} },
			func(p codec.Packet) *codec.Properties { return p.(*codec.Disconnect).Properties }},
		{"AUTH/User", codec.MaxUserProperties, userPropBytes, 0xF0, []byte{0x18}, nil,
			func(n int) codec.Packet {
				return &codec.Auth{ReasonCode: codec.ContinueAuthentication, Properties: &codec.Properties{User: userProps(n)}}
			},
			func(p codec.Packet) *codec.Properties { return p.(*codec.Auth).Properties }},
		// The will properties: after the CONNECT's own (none) and its client identifier.
		{"CONNECT/will/User", codec.MaxUserProperties, userPropBytes, 0x10,
			[]byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x06, 0, 0, 0, 0, 1, 'c'}, []byte{0, 1, 'w', 0, 0},
			func(n int) codec.Packet {
				return &codec.Connect{Version: codec.V5, CleanStart: true, ClientID: "c",
					Will: &codec.Will{Topic: "w", Properties: &codec.Properties{User: userProps(n)}}}
			},
			func(p codec.Packet) *codec.Properties { return p.(*codec.Connect).Will.Properties }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var props []byte
			for i := range tc.limit {
				props = append(props, tc.unit(i)...)
			}
			atLimit := propsFrame(tc.first, tc.before, props, tc.after)
			want := tc.packet(tc.limit)
			if frame, err := want.AppendTo(nil, codec.V5); err != nil || !bytes.Equal(frame, atLimit) {
				t.Fatalf("encoding %d values: %v\n got % x...\nwant % x...", tc.limit, err, frame[:min(len(frame), 40)], atLimit[:40])
			}
			for _, path := range decodePaths {
				got, err := path.setup(atLimit)()
				if err != nil || !equal(got, want) {
					t.Fatalf("%s of %d values: %v\n%s", path.name, tc.limit, err, dump(got))
				}
				if pr := tc.props(got); cap(pr.User) != len(pr.User) || cap(pr.SubscriptionIdentifier) != len(pr.SubscriptionIdentifier) {
					t.Errorf("%s: User %d of %d, SubscriptionIdentifier %d of %d: spare capacity", path.name,
						len(pr.User), cap(pr.User), len(pr.SubscriptionIdentifier), cap(pr.SubscriptionIdentifier))
				}
			}

			var e *codec.Error
			over := tc.packet(tc.limit + 1)
			if _, err := over.AppendTo(nil, codec.V5); !errors.As(err, &e) || e.Code != codec.ImplementationSpecificError {
				t.Errorf("encoding %d values: %v; want ImplementationSpecificError", tc.limit+1, err)
			}
			if _, err := codec.Size(over, codec.V5); !errors.As(err, &e) || e.Code != codec.ImplementationSpecificError {
				t.Errorf("Size of %d values: %v; want ImplementationSpecificError", tc.limit+1, err)
			}

			overFrame := propsFrame(tc.first, tc.before, append(props, tc.unit(tc.limit)...), tc.after)
			at := len(overFrame) - len(tc.after) - len(tc.unit(tc.limit))
			for _, path := range decodePaths {
				_, err := path.setup(overFrame)()
				if !errors.As(err, &e) || e.Code != codec.ImplementationSpecificError || e.Offset != at {
					t.Errorf("%s of %d values: %v; want ImplementationSpecificError at byte %d", path.name, tc.limit+1, err, at)
				}
			}
		})
	}
}

// TestRepeatedExact checks that an ordinary property list gets each repeated value's
// slice in one allocation of exactly its length, on every decode path, whatever else the
// list holds around the values.
func TestRepeatedExact(t *testing.T) {
	want := &codec.Publish{Topic: "a/b", QoS: 2, PacketID: 7, Payload: []byte("hello"), Properties: &codec.Properties{
		PayloadFormat: ptr(byte(1)), MessageExpiry: ptr(uint32(60)), ContentType: "text/plain", ResponseTopic: "r",
		CorrelationData: []byte{1, 2}, SubscriptionIdentifier: []uint32{1, 300, 70000, 268435455},
		TopicAlias: ptr(uint16(3)), User: []codec.UserProperty{{Key: "a", Value: "1"}, {Key: "", Value: ""}, {Key: "a", Value: "2"}},
	}}
	frame, err := want.AppendTo(nil, codec.V5)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range decodePaths {
		got, err := path.setup(frame)()
		if err != nil || !equal(got, want) {
			t.Fatalf("%s: %s, %v", path.name, dump(got), err)
		}
		pr := got.(*codec.Publish).Properties
		if cap(pr.User) != 3 || cap(pr.SubscriptionIdentifier) != 4 {
			t.Errorf("%s: capacities %d and %d, want 3 and 4", path.name, cap(pr.User), cap(pr.SubscriptionIdentifier))
		}
	}
	// Identifiers written as overlong Variable Byte Integers (0x8B 0x80 0x00 is 0x0B,
	// 0xA6 0x00 is 0x26), which the counting pass skips like the short forms: refused
	// [MQTT-1.5.5-1], at the first one, on every path.
	overlong := propsFrame(0x30, []byte{0, 1, 't'},
		bytes.Repeat([]byte{0x8B, 0x80, 0x00, 0x05, 0xA6, 0x00, 0, 1, 'k', 0, 0}, 5), nil)
	for _, path := range decodePaths {
		var e *codec.Error
		if _, err := path.setup(overlong)(); !errors.As(err, &e) || e.Code != codec.MalformedPacket {
			t.Errorf("%s: %v; want MalformedPacket for an overlong property identifier", path.name, err)
		}
	}
	// The same for the lists a server receives.
	sub := &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "a/+"}, {Filter: "b/#", QoS: 1}, {Filter: "c"}}}
	unsub := &codec.Unsubscribe{PacketID: 2, Filters: []string{"a/+", "b/#", "c"}}
	for _, p := range []codec.Packet{sub, unsub} {
		frame, err := p.AppendTo(nil, codec.V5)
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range decodePaths {
			got, err := path.setup(frame)()
			if err != nil || !equal(got, p) {
				t.Fatalf("%s: %s, %v", path.name, dump(got), err)
			}
			var n int
			switch got := got.(type) {
			case *codec.Subscribe:
				n = cap(got.Subscriptions)
			case *codec.Unsubscribe:
				n = cap(got.Filters)
			}
			if n != 3 {
				t.Errorf("%s of %s: capacity %d, want 3", path.name, p.Type(), n)
			}
		}
	}
}

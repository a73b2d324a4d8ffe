package codec

import (
	"reflect"
	"testing"
)

// BenchmarkParsePublish measures plainPublish, the decoder's hot path, into a reused
// Publish: the checks, one allocation and copy of the body, and the field stores. It is
// the counterpart of bench/'s DecodeInto row, without Decode's argument checks.
func BenchmarkParsePublish(b *testing.B) {
	p0 := &Publish{Topic: "sensors/building-7/temp01", Payload: make([]byte, 64), QoS: QoS1, PacketID: 4711}
	frame, err := p0.AppendTo(nil, V311)
	if err != nil {
		b.Fatal(err)
	}
	var p Publish
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := plainPublish(frame, &p, V311, 0); !ok {
			b.Fatal("not plain")
		}
	}
}

// FuzzPlainPublish checks the hot path against the general one, whose PUBLISH decoder is
// the thorough one: whatever frame plainPublish takes must decode there to the same
// packet and length.
func FuzzPlainPublish(f *testing.F) {
	for _, p := range []*Publish{
		{Topic: "sensors/building-7/temp01", Payload: make([]byte, 64), QoS: QoS1, PacketID: 4711},
		{Topic: "a/b", Payload: make([]byte, 200), QoS: QoS2, PacketID: 9, Dup: true, Retain: true},
		{Topic: "exactly8", Retain: true},
		{Topic: "a/long/topic/name/of/more/than/thirty-two/bytes", Payload: make([]byte, 20000)},
		{Topic: "t", Properties: &Properties{ContentType: "text/plain"}},
	} {
		for _, v := range []byte{V311, V5} {
			if frame, err := p.AppendTo(nil, v); err == nil {
				f.Add(frame, v == V5, 0)
				f.Add(frame, v == V5, len(frame)-1)
			}
		}
	}
	f.Add([]byte{0x30, 0x80, 0x00}, false, 0)
	f.Add([]byte{0x3A, 0x05, 0x00, 0x01, 't', 0x00, 0x01}, false, 0)
	f.Add([]byte{0x32, 0x07, 0x00, 0x03, 'a', '+', 'b', 0x00, 0x01}, false, 0)
	f.Add([]byte{0x30, 0x0B, 0x00, 0x09, 'a', 'b', 'c', 'd', 0xC3, 0xA9, 'e', 'f', 'g'}, true, 0)
	f.Fuzz(func(t *testing.T, frame []byte, v5 bool, maxSize int) {
		version := V311
		if v5 {
			version = V5
		}
		if maxSize > 1<<20 {
			maxSize = 0
		}
		for _, into := range []bool{false, true} {
			var pub *Publish
			if into {
				pub = &Publish{Topic: "junk", Payload: []byte("junk"), PacketID: 9, Properties: &Properties{}}
			}
			p, n, ok := plainPublish(frame, pub, version, maxSize)
			if !ok {
				continue
			}
			want, wantN, err := decodeFrame(frame, nil, version, maxSize)
			if err != nil || wantN != n || !reflect.DeepEqual(Packet(p), want) {
				t.Fatalf("plainPublish(% x) = %+v, %d; general path %+v, %d, %v", frame, p, n, want, wantN, err)
			}
		}
	})
}

// TestPlainPublish checks that the common shapes take the hot path.
func TestPlainPublish(t *testing.T) {
	for _, tc := range []struct {
		p     Publish
		v     byte
		plain bool
	}{
		{Publish{Topic: "sensors/building-7/temp01", Payload: []byte("x"), QoS: QoS1, PacketID: 1}, V311, true},
		{Publish{Topic: "sensors/building-7/temp01", Payload: make([]byte, 10000), QoS: QoS2, PacketID: 1}, V5, true},
		{Publish{Topic: "a/b", Retain: true}, V311, true},
		{Publish{Topic: "a/b"}, V5, true},
		{Publish{Topic: "a/b", Payload: make([]byte, 20000)}, V311, false}, // three-byte length
		{Publish{Topic: "température/salon"}, V311, false},
		{Publish{Topic: "a/b", Properties: &Properties{ContentType: "text/plain"}}, V5, false},
	} {
		frame, err := tc.p.AppendTo(nil, tc.v)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, plain := plainPublish(frame, nil, tc.v, 0); plain != tc.plain {
			t.Errorf("%q, %d-byte payload, v%d: plain = %t, want %t", tc.p.Topic, len(tc.p.Payload), tc.v, plain, tc.plain)
		}
	}
}

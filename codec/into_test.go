package codec_test

import (
	"bufio"
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/robustmqtt/mqtt/codec"
)

// sentinel is what *pub holds before a DecodeInto or ReadPacketInto that must leave it
// alone.
var sentinel = codec.Publish{Topic: "sentinel/topic", Payload: []byte("sentinel"), QoS: codec.QoS2, PacketID: 77}

// checkInto checks what DecodeInto or ReadPacketInto returned (p, err, and *pub, which
// held sentinel) against what Decode or ReadPacket returned for the same frame (want,
// wantErr): the same error, or the same PUBLISH in *pub with p == pub, or the same other
// packet with *pub untouched.
func checkInto(t *testing.T, pub *codec.Publish, p codec.Packet, err error, want codec.Packet, wantErr error) {
	t.Helper()
	if wantErr != nil {
		var e1, e2 *codec.Error
		if err == nil || p != nil || errors.As(wantErr, &e1) != errors.As(err, &e2) ||
			(e1 != nil && (e1.Code != e2.Code || e1.Offset != e2.Offset)) {
			t.Fatalf("Into = %s, %v; want error %v", dump(p), err, wantErr)
		}
		if !reflect.DeepEqual(*pub, sentinel) {
			t.Fatalf("Into changed *pub on error: %s", dump(pub))
		}
		return
	}
	if err != nil {
		t.Fatalf("Into: %v; want %s", err, dump(want))
	}
	if w, ok := want.(*codec.Publish); ok {
		if p != codec.Packet(pub) || !reflect.DeepEqual(pub, w) {
			t.Fatalf("Into = %s (pub %s), want pub %s", dump(p), dump(pub), dump(w))
		}
		return
	}
	if !reflect.DeepEqual(p, want) || !reflect.DeepEqual(*pub, sentinel) {
		t.Fatalf("Into = %s (pub %s), want %s and pub untouched", dump(p), dump(pub), dump(want))
	}
}

// TestInto checks DecodeInto and ReadPacketInto against Decode and ReadPacket on every
// vector, every malformed frame and generated packets of every type, through a reader
// that holds the whole frame and one that holds 16 bytes.
func TestInto(t *testing.T) {
	n := 0
	eachFrame(t, func(frame []byte, v byte) {
		n++
		want, wantN, wantErr := codec.Decode(frame, v, 0)
		pub := sentinel
		p, got, err := codec.DecodeInto(frame, &pub, v, 0)
		checkInto(t, &pub, p, err, want, wantErr)
		if got != wantN {
			t.Fatalf("DecodeInto used %d bytes, Decode %d", got, wantN)
		}
		for _, size := range []int{16, 4096} {
			want, wantErr := codec.ReadPacket(bufioReader(frame, size), v, 0)
			pub := sentinel
			p, err := codec.ReadPacketInto(bufioReader(frame, size), &pub, v, 0)
			checkInto(t, &pub, p, err, want, wantErr)
		}
	})
	if n < 200 {
		t.Fatalf("only %d frames", n)
	}
}

// eachFrame calls f with every vector and malformed frame and with generated packets of
// every type at both protocol levels.
func eachFrame(tb testing.TB, f func(frame []byte, v byte)) {
	for _, tc := range vectors {
		f(h(tc.frame), tc.v)
	}
	for _, tc := range malformed {
		f(h(tc.frame), tc.v)
	}
	for _, v := range []byte{codec.V311, codec.V5} {
		for seed := range uint64(8) {
			g := newGen(seed, v)
			for _, typ := range allTypes(v) {
				frame, err := g.packet(typ).AppendTo(nil, v)
				if err != nil {
					tb.Fatal(err)
				}
				f(frame, v)
			}
		}
	}
}

// TestIntoNil checks that a nil *Publish makes the Into functions Decode and ReadPacket.
func TestIntoNil(t *testing.T) {
	want := &codec.Publish{Topic: "a/b", Payload: []byte("x"), QoS: codec.QoS1, PacketID: 3}
	frame, _ := want.AppendTo(nil, codec.V5)
	p, n, err := codec.DecodeInto(frame, nil, codec.V5, 0)
	if err != nil || n != len(frame) || !reflect.DeepEqual(p, want) {
		t.Errorf("DecodeInto(nil) = %s, %d, %v", dump(p), n, err)
	}
	p, err = codec.ReadPacketInto(bufioReader(frame, 64), nil, codec.V5, 0)
	if err != nil || !reflect.DeepEqual(p, want) {
		t.Errorf("ReadPacketInto(nil) = %s, %v", dump(p), err)
	}
}

// TestIntoOwnership reads a stream of PUBLISH packets into one reused Publish, keeping a
// copy of each, then scribbles over the input and the kept payloads' neighbours: every
// copy must still hold its own message, and no payload may be grown over anything.
func TestIntoOwnership(t *testing.T) {
	for _, v := range []byte{codec.V311, codec.V5} {
		g := newGen(7, v)
		var stream []byte
		var want []*codec.Publish
		for range 100 {
			p := g.packet(codec.TypePublish).(*codec.Publish)
			stream, _ = p.AppendTo(stream, v)
			want = append(want, p)
		}
		for _, size := range []int{16, 256, 64 << 10} {
			input := bytes.Clone(stream)
			r := bufioReader(input, size)
			var pub codec.Publish
			var got []codec.Publish
			for range want {
				p, err := codec.ReadPacketInto(r, &pub, v, 0)
				if err != nil || p != codec.Packet(&pub) {
					t.Fatalf("ReadPacketInto = %s, %v", dump(p), err)
				}
				got = append(got, pub)
			}
			for i := range input {
				input[i] = 0xEE
			}
			for i := range got {
				if cap(got[i].Payload) != len(got[i].Payload) {
					t.Fatalf("payload capacity %d beyond its length %d", cap(got[i].Payload), len(got[i].Payload))
				}
				got[i].Payload = append(got[i].Payload, "XXXXXXXX"...)
			}
			for i := range got {
				got[i].Payload = got[i].Payload[:len(got[i].Payload)-8]
				if len(got[i].Payload) == 0 {
					got[i].Payload = nil
				}
				if !reflect.DeepEqual(&got[i], want[i]) {
					t.Fatalf("%s, reader of %d bytes: message %d is %s, want %s",
						versionName(v), size, i, dump(&got[i]), dump(want[i]))
				}
			}
		}
	}
}

// TestIntoAllocs checks that a PUBLISH decoded into a caller's Publish costs one
// allocation, its body, from memory and from a reader.
func TestIntoAllocs(t *testing.T) {
	for _, size := range []int{0, 10, 64, 1000, 70000} {
		p := &codec.Publish{Topic: "sensors/building-7/temp01", QoS: codec.QoS1, PacketID: 1, Payload: make([]byte, size)}
		for _, v := range []byte{codec.V311, codec.V5} {
			frame, _ := p.AppendTo(nil, v)
			var pub codec.Publish
			allocs := testing.AllocsPerRun(50, func() {
				if _, _, err := codec.DecodeInto(frame, &pub, v, 0); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 1 {
				t.Errorf("DecodeInto: %s PUBLISH of %d bytes: %v allocations", versionName(v), size, allocs)
			}
			r := bufio.NewReaderSize(&repeatReader{frame: frame}, 4096)
			allocs = testing.AllocsPerRun(50, func() {
				if _, err := codec.ReadPacketInto(r, &pub, v, 0); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 1 {
				t.Errorf("ReadPacketInto: %s PUBLISH of %d bytes: %v allocations", versionName(v), size, allocs)
			}
		}
	}
}

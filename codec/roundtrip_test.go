package codec_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"runtime"
	"testing"

	"github.com/robustmqtt/mqtt/codec"
)

func versionName(v byte) string {
	if v == codec.V5 {
		return "v5"
	}
	return "v311"
}

// TestRoundTrip encodes generated packets of every type at both protocol levels and
// checks that Size predicts the frame and that Decode and ReadPacket give the packet back.
func TestRoundTrip(t *testing.T) {
	for _, v := range []byte{codec.V311, codec.V5} {
		for _, typ := range allTypes(v) {
			t.Run(versionName(v)+"/"+typ.String(), func(t *testing.T) {
				g := newGen(uint64(typ)*1000+uint64(v), v)
				var stream []byte
				var want []codec.Packet
				for range 300 {
					p := g.packet(typ)
					frame, err := p.AppendTo(nil, v)
					if err != nil {
						t.Fatalf("AppendTo(%+v): %v", p, err)
					}
					if n, err := codec.Size(p, v); err != nil || n != len(frame) {
						t.Fatalf("Size = %d, %v; the frame has %d bytes", n, err, len(frame))
					}
					got, n, err := codec.Decode(frame, v, 0)
					if err != nil {
						t.Fatalf("Decode(% x) of %s: %v", frame, dump(p), err)
					}
					if n != len(frame) || !reflect.DeepEqual(got, p) {
						t.Fatalf("Decode(% x) = %s (%d bytes), want %s", frame, dump(got), n, dump(p))
					}
					stream = append(stream, frame...)
					want = append(want, p)
				}
				// The whole stream through a small reader exercises both of ReadPacket's
				// paths: frames decoded in the reader's buffer, and larger ones read out.
				r := bufio.NewReaderSize(bytes.NewReader(stream), 16)
				for i, p := range want {
					got, err := codec.ReadPacket(r, v, 0)
					if err != nil || !reflect.DeepEqual(got, p) {
						t.Fatalf("ReadPacket #%d = %s, %v; want %s", i, dump(got), err, dump(p))
					}
				}
				if _, err := codec.ReadPacket(r, v, 0); !errors.Is(err, io.EOF) {
					t.Fatalf("ReadPacket at the end = %v, want io.EOF", err)
				}
			})
		}
	}
}

// TestLargeFrames covers bodies above 1 MiB, which ReadPacket reads in growing steps
// rather than allocating what the header claims.
func TestLargeFrames(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	for _, p := range []codec.Packet{
		&codec.Publish{Topic: "big", QoS: codec.QoS1, PacketID: 9, Payload: payload},
		&codec.Publish{Topic: "exactly-at-the-block-limit", Payload: payload[:1<<20-56-2-26]},
		&codec.Suback{PacketID: 1, ReasonCodes: make([]codec.ReasonCode, 2<<20)},
	} {
		frame, err := p.AppendTo(nil, codec.V5)
		if err != nil {
			t.Fatal(err)
		}
		got, err := codec.ReadPacket(bufio.NewReader(bytes.NewReader(frame)), codec.V5, 0)
		if err != nil || !reflect.DeepEqual(got, p) {
			t.Fatalf("ReadPacket of %d bytes: %v", len(frame), err)
		}
		got, _, err = codec.Decode(frame, codec.V5, 0)
		if err != nil || !reflect.DeepEqual(got, p) {
			t.Fatalf("Decode of %d bytes: %v", len(frame), err)
		}
	}
	// A header claiming 256 MB, followed by 10 bytes and the end of the stream.
	frame := append(h("30 FF FF FF 7F 00 01 74"), make([]byte, 10)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := codec.ReadPacket(bufio.NewReader(bytes.NewReader(frame)), codec.V5, 0)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadPacket = %v, want io.ErrUnexpectedEOF", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 2<<20 {
		t.Errorf("a 256 MB claim backed by 10 bytes cost %d bytes", got)
	}
}

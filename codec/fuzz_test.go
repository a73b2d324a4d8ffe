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

func fuzzVersion(v5 bool) byte {
	if v5 {
		return codec.V5
	}
	return codec.V311
}

// addFrames seeds a fuzz target with every vector and malformed frame.
func addFrames(f *testing.F, add func(frame []byte, v5 bool)) {
	for _, tc := range vectors {
		add(h(tc.frame), tc.v == codec.V5)
	}
	for _, tc := range malformed {
		add(h(tc.frame), tc.v == codec.V5)
	}
	for _, v := range []byte{codec.V311, codec.V5} {
		g := newGen(1, v)
		for _, typ := range allTypes(v) {
			frame, err := g.packet(typ).AppendTo(nil, v)
			if err != nil {
				f.Fatal(err)
			}
			add(frame, v == codec.V5)
		}
	}
}

// allocBound is how much Decode may allocate for an n-byte frame. Decoded structures are
// larger than their wire form, up to 6.4 times (a 5-byte empty user property becomes a
// 32-byte UserProperty, a 4-byte subscription a 24-byte Subscription), but each repeated
// value's slice is allocated once at its final size, and nothing is allocated on the
// strength of a length field. The constant covers a Properties struct and an error.
func allocBound(n int) uint64 { return uint64(8*n + 4096) }

// checkDecodeError fails unless err is an *Error with a sensible code and offset, or a
// wrapped io.ErrUnexpectedEOF for a frame cut short.
func checkDecodeError(t *testing.T, err error, frameLen int) {
	t.Helper()
	var e *codec.Error
	switch {
	case errors.As(err, &e):
		if !e.Code.IsError() || e.Offset < -1 || e.Offset > max(frameLen, 5) || e.Reason == "" {
			t.Fatalf("bad *Error: %#v", e)
		}
	case errors.Is(err, io.ErrUnexpectedEOF):
	default:
		t.Fatalf("error is neither *Error nor io.ErrUnexpectedEOF: %v", err)
	}
}

var fuzzCalls int

// FuzzDecode feeds arbitrary bytes to Decode: it must not panic, must allocate in
// proportion to the bytes it was given and never to what a length field claims, must
// respect maxSize, and whatever it accepts must re-encode to a frame that decodes to the
// same packet.
func FuzzDecode(f *testing.F) {
	addFrames(f, func(frame []byte, v5 bool) { f.Add(frame, v5, uint16(0)) })
	f.Fuzz(func(t *testing.T, data []byte, v5 bool, maxSize uint16) {
		v := fuzzVersion(v5)
		orig := bytes.Clone(data)
		fuzzCalls++
		if fuzzCalls%16 == 0 {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, _ = codec.Decode(orig, v, int(maxSize))
			runtime.ReadMemStats(&after)
			if got := after.TotalAlloc - before.TotalAlloc; got > allocBound(len(orig)) {
				t.Fatalf("decoding %d bytes allocated %d", len(orig), got)
			}
		}
		p, n, err := codec.Decode(data, v, int(maxSize))
		pub := sentinel
		ip, in, ierr := codec.DecodeInto(data, &pub, v, int(maxSize))
		checkInto(t, &pub, ip, ierr, p, err)
		if in != n {
			t.Fatalf("DecodeInto used %d bytes, Decode %d", in, n)
		}
		if err != nil {
			checkDecodeError(t, err, len(data))
			return
		}
		if n > len(data) || (maxSize > 0 && n > int(maxSize)) {
			t.Fatalf("Decode used %d bytes of %d (max %d)", n, len(data), maxSize)
		}
		// The packet owns its memory: scribbling over the input changes nothing.
		for i := range data {
			data[i] ^= 0xFF
		}
		again, _, _ := codec.Decode(orig, v, int(maxSize))
		if !reflect.DeepEqual(p, again) {
			t.Fatalf("packet changed with its input:\n%s\n%s", dump(p), dump(again))
		}
		frame, err := p.AppendTo(nil, v)
		if err != nil {
			t.Fatalf("decoded %s from % x but cannot encode it: %v", dump(p), orig[:n], err)
		}
		if size, err := codec.Size(p, v); err != nil || size != len(frame) {
			t.Fatalf("Size = %d, %v; frame has %d bytes", size, err, len(frame))
		}
		p2, n2, err := codec.Decode(frame, v, 0)
		if err != nil || n2 != len(frame) || !reflect.DeepEqual(p, p2) {
			t.Fatalf("decode(encode(p)) differs:\nframe % x\nfirst  %s\nsecond %s (%v)", frame, dump(p), dump(p2), err)
		}
	})
}

// FuzzReadPacket reads a stream of frames through a small bufio.Reader and checks that
// ReadPacket, and ReadPacketInto with one reused Publish, agree with Decode frame by
// frame, errors included, and that packets read earlier are not changed by later reads
// (nothing points into the reader's buffer, nor into a buffer an earlier PUBLISH owns).
func FuzzReadPacket(f *testing.F) {
	addFrames(f, func(frame []byte, v5 bool) { f.Add(append(frame, frame...), v5, uint8(0)) })
	f.Fuzz(func(t *testing.T, data []byte, v5 bool, extra uint8) {
		v := fuzzVersion(v5)
		var want []codec.Packet
		var wantErr error
		for rest := data; ; {
			p, n, err := codec.Decode(rest, v, 0)
			if err != nil {
				wantErr = err
				break
			}
			want = append(want, p)
			rest = rest[n:]
		}
		var pub codec.Publish
		for _, into := range []bool{false, true} {
			r := bufio.NewReaderSize(bytes.NewReader(data), 16+int(extra))
			var got []codec.Packet
			for {
				var p codec.Packet
				var err error
				if into {
					if p, err = codec.ReadPacketInto(r, &pub, v, 0); p == &pub {
						msg := pub // the copy owns the message; pub is reused
						p = &msg
					}
				} else {
					p, err = codec.ReadPacket(r, v, 0)
				}
				if err != nil {
					var e1, e2 *codec.Error
					switch {
					case errors.As(wantErr, &e1):
						if !errors.As(err, &e2) || e1.Code != e2.Code || e1.Offset != e2.Offset {
							t.Fatalf("ReadPacket (into %t) error %v, Decode error %v", into, err, wantErr)
						}
					case len(got) == len(want) && errors.Is(wantErr, io.ErrUnexpectedEOF):
						if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
							t.Fatalf("ReadPacket (into %t) error %v at the end, Decode %v", into, err, wantErr)
						}
					default:
						t.Fatalf("ReadPacket (into %t) error %v after %d packets; Decode gave %d then %v",
							into, err, len(got), len(want), wantErr)
					}
					break
				}
				got = append(got, p)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("ReadPacket (into %t) and Decode disagree:\n%s\n%s", into, dump(got), dump(want))
			}
		}
	})
}

// FuzzRoundTrip builds valid packets from the fuzzer's bytes and checks that each encodes,
// that Size predicts its length, and that it decodes back to itself.
func FuzzRoundTrip(f *testing.F) {
	for i := range 32 {
		f.Add([]byte{byte(i), byte(i * 7), byte(i * 13), 0xFF, byte(i), 1, 2, 3}, i%2 == 0, uint8(i))
	}
	f.Fuzz(func(t *testing.T, choices []byte, v5 bool, typ uint8) {
		v := fuzzVersion(v5)
		types := allTypes(v)
		p := newGenFrom(choices, v).packet(types[int(typ)%len(types)])
		frame, err := p.AppendTo(nil, v)
		if err != nil {
			t.Fatalf("AppendTo(%s): %v", dump(p), err)
		}
		if size, err := codec.Size(p, v); err != nil || size != len(frame) {
			t.Fatalf("Size = %d, %v; frame has %d bytes", size, err, len(frame))
		}
		got, n, err := codec.Decode(frame, v, len(frame))
		if err != nil || n != len(frame) || !reflect.DeepEqual(got, p) {
			t.Fatalf("Decode(% x) = %s, %v; want %s", frame, dump(got), err, dump(p))
		}
	})
}

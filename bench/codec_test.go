package bench

import (
	"bufio"
	"bytes"
	"strconv"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/robustmqtt/mqtt/codec"
)

// The reference message: a QoS 1 PUBLISH with a 25-byte topic, and a 64-byte or
// 64 KiB payload.
const topic = "sensors/building-7/temp01"

var sizes = []int{64, 64 << 10}

func sizeName(n int) string {
	if n >= 1<<10 {
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

func ours(size int) *codec.Publish {
	return &codec.Publish{Topic: topic, Payload: bytes.Repeat([]byte{'x'}, size), QoS: codec.QoS1, PacketID: 4711}
}

func mochi(size int) *packets.Packet {
	return &packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1},
		TopicName:       topic,
		Payload:         bytes.Repeat([]byte{'x'}, size),
		PacketID:        4711,
		ProtocolVersion: 4,
	}
}

// BenchmarkEncode appends the frame to a reused buffer (robustmqtt) or writes it into a
// reused bytes.Buffer (mochi's packets.Packet.PublishEncode, its 3.1.1 path).
func BenchmarkEncode(b *testing.B) {
	for _, size := range sizes {
		b.Run("robustmqtt/"+sizeName(size), func(b *testing.B) { benchAppend(b, size, codec.V311) })
		b.Run("mochi/"+sizeName(size), func(b *testing.B) {
			pk := mochi(size)
			var buf bytes.Buffer
			if err := pk.PublishEncode(&buf); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(buf.Len()))
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if err := pk.PublishEncode(&buf); err != nil {
					b.Fatal(err)
				}
			}
		})
		encodePeers(b, size)
	}
}

// BenchmarkDecode decodes one frame held in memory into a packet the caller owns. mochi's
// decoders alias the buffer they are given (its server copies each frame's body first,
// twice, in clients.go ReadPacket: make and ReadFull, then append to a fresh slice), so its
// measured path is the least an owning decode costs there: fixed header, one copy of the
// body, PublishDecode into a packets.Packet that stays on the stack (its server returns
// it by value). robustmqtt-DecodeInto is the same shape: one copy of the body, into which
// the caller's Publish points. robustmqtt's codec.Decode also allocates the *Publish, in
// one block with the body's copy.
func BenchmarkDecode(b *testing.B) {
	for _, size := range sizes {
		frame, err := ours(size).AppendTo(nil, codec.V311)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("robustmqtt/"+sizeName(size), func(b *testing.B) { benchDecode(b, frame, codec.V311) })
		b.Run("robustmqtt-DecodeInto/"+sizeName(size), func(b *testing.B) {
			var pub codec.Publish
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := codec.DecodeInto(frame, &pub, codec.V311, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("robustmqtt-ReadPacket/"+sizeName(size), func(b *testing.B) {
			r := bufio.NewReaderSize(&repeatReader{frame: frame}, 64<<10)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := codec.ReadPacket(r, codec.V311, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("robustmqtt-ReadPacketInto/"+sizeName(size), func(b *testing.B) {
			r := bufio.NewReaderSize(&repeatReader{frame: frame}, 64<<10)
			var pub codec.Publish
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := codec.ReadPacketInto(r, &pub, codec.V311, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		// For scale only: mochi's PublishDecode alone on a body it may alias, which is
		// not an owning decode (its topic and payload point into the caller's bytes).
		b.Run("mochi-aliasing/"+sizeName(size), func(b *testing.B) {
			body := frame[len(frame)-(len(frame)-1-varintLen(frame)):]
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				pk := packets.Packet{ProtocolVersion: 4, FixedHeader: packets.FixedHeader{
					Type: packets.Publish, Qos: 1, Remaining: len(body)}}
				if err := pk.PublishDecode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("mochi/"+sizeName(size), func(b *testing.B) {
			var hdr bytes.Reader
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				pk := packets.Packet{ProtocolVersion: 4}
				if err := pk.FixedHeader.Decode(frame[0]); err != nil {
					b.Fatal(err)
				}
				hdr.Reset(frame[1:])
				n, used, err := packets.DecodeLength(&hdr)
				if err != nil {
					b.Fatal(err)
				}
				pk.FixedHeader.Remaining = n
				body := append([]byte(nil), frame[1+used:1+used+n]...)
				if err := pk.PublishDecode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
		decodePeers(b, size)
	}
}

// varintLen is the size of frame's Remaining Length field.
func varintLen(frame []byte) int {
	n := 1
	for frame[n]&0x80 != 0 {
		n++
	}
	return n
}

// repeatReader yields the same frame forever.
type repeatReader struct {
	frame []byte
	off   int
}

func (r *repeatReader) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		c := copy(b[n:], r.frame[r.off:])
		n += c
		r.off = (r.off + c) % len(r.frame)
	}
	return n, nil
}

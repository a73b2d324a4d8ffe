package bench

import (
	"bytes"
	"testing"

	pahov5packets "github.com/eclipse/paho.golang/packets"
	pahov3packets "github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/robustmqtt/mqtt/codec"
)

// The same message for both paho packets packages: paho.mqtt.golang's is
// MQTT 3.1.1, paho.golang's MQTT 5 only, so the MQTT 5 frame (one byte
// longer: an empty property length) is set against robustmqtt-v5.

func pahoV3Packet(size int) *pahov3packets.PublishPacket {
	pk := pahov3packets.NewControlPacket(pahov3packets.Publish).(*pahov3packets.PublishPacket)
	pk.Qos, pk.TopicName, pk.MessageID, pk.Payload = 1, topic, 4711, bytes.Repeat([]byte{'x'}, size)
	return pk
}

func pahoV5Packet(size int) *pahov5packets.Publish {
	return &pahov5packets.Publish{QoS: 1, Topic: topic, PacketID: 4711, Payload: bytes.Repeat([]byte{'x'}, size),
		Properties: &pahov5packets.Properties{}}
}

// encodePeers adds robustmqtt-v5 and the two paho encoders to
// BenchmarkEncode: each writes the frame into a reused bytes.Buffer, the
// way their clients do before writing to the socket.
func encodePeers(b *testing.B, size int) {
	b.Run("robustmqtt-v5/"+sizeName(size), func(b *testing.B) { benchAppend(b, size, codec.V5) })
	b.Run("paho.mqtt.golang/"+sizeName(size), func(b *testing.B) {
		pk := pahoV3Packet(size)
		benchWriter(b, func(buf *bytes.Buffer) error { return pk.Write(buf) })
	})
	b.Run("paho.golang/"+sizeName(size), func(b *testing.B) {
		pk := pahoV5Packet(size)
		benchWriter(b, func(buf *bytes.Buffer) error { _, err := pk.WriteTo(buf); return err })
	})
}

// benchAppend measures robustmqtt's encoder appending the reference
// message with a size-byte payload to a reused buffer.
func benchAppend(b *testing.B, size int, version byte) {
	p := ours(size)
	buf, err := p.AppendTo(nil, version)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = p.AppendTo(buf[:0], version); err != nil {
			b.Fatal(err)
		}
	}
}

// benchDecode measures robustmqtt's decoder on frame, held in memory.
func benchDecode(b *testing.B, frame []byte, version byte) {
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := codec.Decode(frame, version, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// benchWriter measures write, which encodes one frame into buf.
func benchWriter(b *testing.B, write func(*bytes.Buffer) error) {
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := write(&buf); err != nil {
			b.Fatal(err)
		}
	}
}

// decodePeers adds robustmqtt-v5 and the two paho decoders to
// BenchmarkDecode: each reads one frame held in memory into a packet the
// caller owns (both paho decoders copy the body out of the reader).
func decodePeers(b *testing.B, size int) {
	var v3frame bytes.Buffer
	if err := pahoV3Packet(size).Write(&v3frame); err != nil {
		b.Fatal(err)
	}
	v5frame, err := ours(size).AppendTo(nil, codec.V5)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("robustmqtt-v5/"+sizeName(size), func(b *testing.B) { benchDecode(b, v5frame, codec.V5) })
	b.Run("paho.mqtt.golang/"+sizeName(size), func(b *testing.B) {
		benchReader(b, v3frame.Bytes(), func(r *bytes.Reader) error { _, err := pahov3packets.ReadPacket(r); return err })
	})
	b.Run("paho.golang/"+sizeName(size), func(b *testing.B) {
		benchReader(b, v5frame, func(r *bytes.Reader) error { _, err := pahov5packets.ReadPacket(r); return err })
	})
}

// benchReader measures read, which decodes frame from r.
func benchReader(b *testing.B, frame []byte, read func(*bytes.Reader) error) {
	r := bytes.NewReader(frame)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(frame)
		if err := read(r); err != nil {
			b.Fatal(err)
		}
	}
}

package codec_test

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt/codec"
)

// benchTopic is 25 bytes, the size the comparison figures use.
const benchTopic = "sensors/building-7/temp01"

func benchPublish(qos codec.QoS, size int) *codec.Publish {
	p := &codec.Publish{Topic: benchTopic, Payload: bytes.Repeat([]byte{'x'}, size), QoS: qos}
	if qos > 0 {
		p.PacketID = 4711
	}
	return p
}

func withProps(p *codec.Publish, props *codec.Properties) *codec.Publish {
	p.Properties = props
	return p
}

// repeatReader yields the same frame forever, so ReadPacket can be measured without
// refilling a reader per iteration.
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

func benchEncode(b *testing.B, p codec.Packet, version byte) {
	buf, err := p.AppendTo(nil, version)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf, err = p.AppendTo(buf[:0], version)
		if err != nil {
			b.Fatal(err)
		}
	}
}

// benchOp measures an operation on p's frame: setup is given the frame and returns the
// operation, which runs once per iteration.
func benchOp(b *testing.B, p codec.Packet, version byte, setup func(frame []byte) func() error) {
	frame, err := p.AppendTo(nil, version)
	if err != nil {
		b.Fatal(err)
	}
	op := setup(frame)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if err := op(); err != nil {
			b.Fatal(err)
		}
	}
}

func benchRead(b *testing.B, p codec.Packet, version byte) {
	benchOp(b, p, version, func(frame []byte) func() error {
		r := bufio.NewReaderSize(&repeatReader{frame: frame}, 64<<10)
		return func() error { _, err := codec.ReadPacket(r, version, 0); return err }
	})
}

func benchReadInto(b *testing.B, p codec.Packet, version byte) {
	benchOp(b, p, version, func(frame []byte) func() error {
		r := bufio.NewReaderSize(&repeatReader{frame: frame}, 64<<10)
		var pub codec.Publish
		return func() error { _, err := codec.ReadPacketInto(r, &pub, version, 0); return err }
	})
}

func benchDecode(b *testing.B, p codec.Packet, version byte) {
	benchOp(b, p, version, func(frame []byte) func() error {
		return func() error { _, _, err := codec.Decode(frame, version, 0); return err }
	})
}

func benchDecodeInto(b *testing.B, p codec.Packet, version byte) {
	benchOp(b, p, version, func(frame []byte) func() error {
		var pub codec.Publish
		return func() error { _, _, err := codec.DecodeInto(frame, &pub, version, 0); return err }
	})
}

var benchCases = []struct {
	name string
	p    codec.Packet
}{
	{"Publish/QoS0/64B", benchPublish(codec.QoS0, 64)},
	{"Publish/QoS1/64B", benchPublish(codec.QoS1, 64)},
	{"Publish/QoS0/64KiB", benchPublish(codec.QoS0, 64<<10)},
	{"Publish/QoS1/64KiB", benchPublish(codec.QoS1, 64<<10)},
	// MQTT 5.0 only: what a broker forwards with a traced message, and what it adds for a
	// subscription made with an identifier. These take the general path, not plainPublish.
	{"Publish/QoS1/64B/UserProps", withProps(benchPublish(codec.QoS1, 64), &codec.Properties{
		ContentType: "application/json",
		User: []codec.UserProperty{{Key: "traceparent", Value: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			{Key: "source", Value: "building-7"}, {Key: "unit", Value: "celsius"}}})},
	{"Publish/QoS1/64B/SubID", withProps(benchPublish(codec.QoS1, 64), &codec.Properties{SubscriptionIdentifier: []uint32{42}})},
	{"Puback", &codec.Puback{PacketID: 4711}},
	{"Connect", &codec.Connect{Version: codec.V311, CleanStart: true, KeepAlive: 30,
		ClientID: "robustmqtt-bench-client", HasUsername: true, Username: "user",
		HasPassword: true, Password: []byte("secret"),
		Will: &codec.Will{Topic: "clients/robustmqtt-bench-client/status", Payload: []byte("offline"), QoS: 1, Retain: true}}},
	{"Subscribe", &codec.Subscribe{PacketID: 7, Subscriptions: []codec.Subscription{
		{Filter: "sensors/+/temp", QoS: 1}, {Filter: "alarms/#", QoS: 2}, {Filter: "cmd/" + strings.Repeat("x", 20), QoS: 0}}}},
}

// eachCase runs bench for every case at both protocol levels.
func eachCase(b *testing.B, bench func(*testing.B, codec.Packet, byte)) {
	eachCaseOf(b, "", bench)
}

// eachCaseOf runs bench for the cases whose name starts with prefix.
func eachCaseOf(b *testing.B, prefix string, bench func(*testing.B, codec.Packet, byte)) {
	for _, c := range benchCases {
		if !strings.HasPrefix(c.name, prefix) {
			continue
		}
		for _, v := range []byte{codec.V311, codec.V5} {
			p := c.p
			if _, err := p.AppendTo(nil, v); err != nil && v == codec.V311 {
				continue // MQTT 5.0 only
			}
			if conn, ok := p.(*codec.Connect); ok {
				cc := *conn
				cc.Version = v
				p = &cc
			}
			b.Run(c.name+"/"+versionName(v), func(b *testing.B) { bench(b, p, v) })
		}
	}
}

// BenchmarkEncode measures AppendTo into a reused buffer.
func BenchmarkEncode(b *testing.B) { eachCase(b, benchEncode) }

// BenchmarkReadPacket measures ReadPacket from a bufio.Reader.
func BenchmarkReadPacket(b *testing.B) { eachCase(b, benchRead) }

// BenchmarkDecode measures Decode of a frame in memory.
func BenchmarkDecode(b *testing.B) { eachCase(b, benchDecode) }

// BenchmarkReadPacketInto measures ReadPacketInto of a PUBLISH into a reused Publish.
func BenchmarkReadPacketInto(b *testing.B) { eachCaseOf(b, "Publish/", benchReadInto) }

// BenchmarkDecodeInto measures DecodeInto of a PUBLISH into a reused Publish.
func BenchmarkDecodeInto(b *testing.B) { eachCaseOf(b, "Publish/", benchDecodeInto) }

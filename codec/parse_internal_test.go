package codec

import "testing"

// BenchmarkParsePublish measures the decoding work alone, without the allocation that
// ReadPacket and Decode make for the result: a PUBLISH body parsed from a buffer the
// result may keep. It is the counterpart of mochi's PublishDecode, which aliases the
// caller's buffer, in bench/.
func BenchmarkParsePublish(b *testing.B) {
	p0 := &Publish{Topic: "sensors/building-7/temp01", Payload: make([]byte, 64), QoS: QoS1, PacketID: 4711}
	frame, err := p0.AppendTo(nil, V311)
	if err != nil {
		b.Fatal(err)
	}
	var p Publish
	b.ReportAllocs()
	for b.Loop() {
		d := decoder{b: frame[2:], base: 2, own: true, t: TypePublish}
		if err := d.publish(&p, frame[0], V311); err != nil {
			b.Fatal(err)
		}
	}
}

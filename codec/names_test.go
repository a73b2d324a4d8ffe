package codec_test

import (
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt/codec"
)

func TestNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{codec.QoS0.String(), "QoS0"}, {codec.QoS2.String(), "QoS2"}, {codec.QoS(3).String(), "QoS(3)"},
		{codec.TypeConnect.String(), "CONNECT"}, {codec.TypeAuth.String(), "AUTH"},
		{codec.PacketType(0).String(), "PacketType(0)"}, {codec.PacketType(16).String(), "PacketType(16)"},
		{codec.Success.String(), "success"}, {codec.NormalDisconnection.String(), "success"},
		{codec.MalformedPacket.String(), "malformed packet"}, {codec.QoSNotSupported.String(), "QoS not supported"},
		{codec.WildcardSubscriptionsNotSupported.String(), "wildcard subscriptions not supported"},
		{codec.ReasonCode(0x03).String(), "reason code 0x03"},
		{(&codec.Error{Code: codec.ProtocolError, Offset: -1, Reason: "x"}).Error(), "codec: protocol error: x"},
		{(&codec.Error{Code: codec.PacketTooLarge, Packet: codec.TypeSuback, Offset: 1, Reason: "big"}).Error(),
			"codec: packet too large: SUBACK: big at byte 1"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if !codec.QoS2.Valid() || codec.QoS(3).Valid() {
		t.Error("QoS.Valid")
	}
	if codec.GrantedQoS2.IsError() || !codec.UnspecifiedError.IsError() {
		t.Error("ReasonCode.IsError")
	}
	// Every code from 0x81 to 0xA2 has a name of its own.
	for c := 0x81; c <= 0xA2; c++ {
		if s := codec.ReasonCode(c).String(); strings.HasPrefix(s, "reason code") {
			t.Errorf("0x%02X has no name", c)
		}
	}
}

// TestOwnership checks that decoded packets share nothing with the reader's buffer or
// the caller's bytes, and that a PUBLISH's payload cannot be grown over its topic.
func TestOwnership(t *testing.T) {
	for _, v := range []byte{codec.V311, codec.V5} {
		g := newGen(99, v)
		var frames []byte
		var want []codec.Packet
		for range 20 {
			for _, typ := range allTypes(v) {
				p := g.packet(typ)
				f, _ := p.AppendTo(nil, v)
				frames = append(frames, f...)
				want = append(want, p)
			}
		}
		input := append([]byte(nil), frames...)
		r := bufioReader(input, 64)
		var got []codec.Packet
		for range want {
			p, err := codec.ReadPacket(r, v, 0)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p)
		}
		for i := range input {
			input[i] = 0xEE
		}
		for i := range want {
			if !equal(got[i], want[i]) {
				t.Fatalf("packet %d changed after later reads: %s, want %s", i, dump(got[i]), dump(want[i]))
			}
		}
	}
	frame, _ := (&codec.Publish{Topic: "sensors/building-7/temp01", Payload: []byte("abc")}).AppendTo(nil, codec.V311)
	p, _, _ := codec.Decode(frame, codec.V311, 0)
	pub := p.(*codec.Publish)
	if cap(pub.Payload) != len(pub.Payload) {
		t.Errorf("payload capacity %d beyond its length %d", cap(pub.Payload), len(pub.Payload))
	}
	pub.Payload = append(pub.Payload, "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"...)
	pub.Payload[0] = 'Z'
	if pub.Topic != "sensors/building-7/temp01" {
		t.Errorf("topic changed to %q", pub.Topic)
	}
}

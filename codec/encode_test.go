package codec_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt/codec"
)

// TestEncodeRefuses checks that AppendTo refuses what may not be sent, with the right
// code, and appends nothing.
func TestEncodeRefuses(t *testing.T) {
	long := strings.Repeat("a", 65536)
	// A payload that takes the frame past 268435455 bytes of remaining length. AppendTo
	// refuses it from its length alone; the pages are never touched, so it costs address
	// space rather than memory.
	huge := make([]byte, 268435456)
	for _, tc := range []struct {
		name string
		v    byte
		p    codec.Packet
		code codec.ReasonCode
	}{
		{"PUBLISH QoS 3", codec.V311, &codec.Publish{Topic: "t", QoS: 3, PacketID: 1}, codec.MalformedPacket},
		{"PUBLISH DUP at QoS 0", codec.V5, &codec.Publish{Topic: "t", Dup: true}, codec.ProtocolError},
		{"PUBLISH packet id 0", codec.V311, &codec.Publish{Topic: "t", QoS: 1}, codec.ProtocolError},
		{"PUBLISH wildcard", codec.V311, &codec.Publish{Topic: "a/+/b"}, codec.TopicNameInvalid},
		{"PUBLISH long wildcard", codec.V5, &codec.Publish{Topic: "sensors/building/#"}, codec.TopicNameInvalid},
		{"PUBLISH empty topic", codec.V311, &codec.Publish{}, codec.TopicNameInvalid},
		{"PUBLISH empty topic without alias", codec.V5, &codec.Publish{}, codec.ProtocolError},
		{"PUBLISH topic of 65536 bytes", codec.V311, &codec.Publish{Topic: long}, codec.MalformedPacket},
		{"PUBLISH invalid UTF-8", codec.V311, &codec.Publish{Topic: "a\xffb/c/d/e/f"}, codec.MalformedPacket},
		{"PUBLISH NUL", codec.V5, &codec.Publish{Topic: "a\x00"}, codec.MalformedPacket},
		{"PUBLISH properties in 3.1.1", codec.V311, &codec.Publish{Topic: "t", Properties: &codec.Properties{ContentType: "x"}}, codec.MalformedPacket},
		{"PUBLISH Session Expiry", codec.V5, &codec.Publish{Topic: "t", Properties: &codec.Properties{SessionExpiryInterval: ptr(uint32(1))}}, codec.MalformedPacket},
		{"PUBLISH Topic Alias 0", codec.V5, &codec.Publish{Topic: "t", Properties: &codec.Properties{TopicAlias: ptr(uint16(0))}}, codec.ProtocolError},
		{"PUBLISH Subscription Identifier too big", codec.V5, &codec.Publish{Topic: "t", Properties: &codec.Properties{SubscriptionIdentifier: []uint32{1 << 28}}}, codec.ProtocolError},
		{"PUBLISH Payload Format 2", codec.V5, &codec.Publish{Topic: "t", Properties: &codec.Properties{PayloadFormat: ptr(byte(2))}}, codec.ProtocolError},
		{"PUBLISH Response Topic wildcard", codec.V5, &codec.Publish{Topic: "t", Properties: &codec.Properties{ResponseTopic: "r/#"}}, codec.TopicNameInvalid},
		{"PUBLISH user property invalid", codec.V5, &codec.Publish{Topic: "t", Properties: &codec.Properties{User: []codec.UserProperty{{Key: "\xc0"}}}}, codec.MalformedPacket},
		{"PUBLISH correlation data too long", codec.V5, &codec.Publish{Topic: "t", Properties: &codec.Properties{CorrelationData: []byte(long)}}, codec.MalformedPacket},
		{"PUBLISH frame too large", codec.V311, &codec.Publish{Topic: "t", Payload: huge}, codec.PacketTooLarge},
		{"CONNECT version 0", codec.V311, &codec.Connect{ClientID: "c"}, codec.UnsupportedProtocolVersion},
		{"CONNECT password without user name", codec.V311, &codec.Connect{Version: codec.V311, ClientID: "c", HasPassword: true}, codec.MalformedPacket},
		{"CONNECT Username without HasUsername", codec.V5, &codec.Connect{Version: codec.V5, Username: "u"}, codec.ProtocolError},
		{"CONNECT Password without HasPassword", codec.V5, &codec.Connect{Version: codec.V5, Password: []byte("p")}, codec.ProtocolError},
		{"CONNECT empty id without clean session", codec.V311, &codec.Connect{Version: codec.V311}, codec.ClientIdentifierNotValid},
		{"CONNECT invalid client id", codec.V311, &codec.Connect{Version: codec.V311, ClientID: "\xff", CleanStart: true}, codec.ClientIdentifierNotValid},
		{"CONNECT will QoS 3", codec.V311, &codec.Connect{Version: codec.V311, ClientID: "c", Will: &codec.Will{Topic: "w", QoS: 3}}, codec.MalformedPacket},
		{"CONNECT empty will topic", codec.V311, &codec.Connect{Version: codec.V311, ClientID: "c", Will: &codec.Will{}}, codec.TopicNameInvalid},
		{"CONNECT will topic wildcard", codec.V5, &codec.Connect{Version: codec.V5, Will: &codec.Will{Topic: "#"}}, codec.TopicNameInvalid},
		{"CONNECT will properties in 3.1.1", codec.V311, &codec.Connect{Version: codec.V311, ClientID: "c",
			Will: &codec.Will{Topic: "w", Properties: &codec.Properties{WillDelayInterval: ptr(uint32(1))}}}, codec.MalformedPacket},
		{"CONNECT Topic Alias in will", codec.V5, &codec.Connect{Version: codec.V5,
			Will: &codec.Will{Topic: "w", Properties: &codec.Properties{TopicAlias: ptr(uint16(1))}}}, codec.MalformedPacket},
		{"CONNECT Will Delay outside will", codec.V5, &codec.Connect{Version: codec.V5, Properties: &codec.Properties{WillDelayInterval: ptr(uint32(1))}}, codec.MalformedPacket},
		{"CONNECT Authentication Data without Method", codec.V5, &codec.Connect{Version: codec.V5, Properties: &codec.Properties{AuthenticationData: []byte{}}}, codec.ProtocolError},
		{"CONNECT Receive Maximum 0", codec.V5, &codec.Connect{Version: codec.V5, Properties: &codec.Properties{ReceiveMaximum: ptr(uint16(0))}}, codec.ProtocolError},
		{"CONNACK session present with error", codec.V5, &codec.Connack{SessionPresent: true, ReasonCode: codec.ServerBusy}, codec.ProtocolError},
		{"CONNACK 5.0 code in 3.1.1", codec.V311, &codec.Connack{ReasonCode: codec.ServerBusy}, codec.MalformedPacket},
		{"CONNACK code not for CONNACK", codec.V5, &codec.Connack{ReasonCode: codec.NoMatchingSubscribers}, codec.ProtocolError},
		{"PUBACK reason code in 3.1.1", codec.V311, &codec.Puback{PacketID: 1, ReasonCode: codec.NoMatchingSubscribers}, codec.MalformedPacket},
		{"PUBACK properties in 3.1.1", codec.V311, &codec.Puback{PacketID: 1, Properties: &codec.Properties{ReasonString: "x"}}, codec.MalformedPacket},
		{"PUBACK packet id 0", codec.V5, &codec.Puback{}, codec.ProtocolError},
		{"PUBREC success code 0x04", codec.V5, &codec.Pubrec{PacketID: 1, ReasonCode: codec.DisconnectWithWill}, codec.ProtocolError},
		{"PUBREL success code 0x10", codec.V5, &codec.Pubrel{PacketID: 1, ReasonCode: codec.NoMatchingSubscribers}, codec.ProtocolError},
		{"PUBCOMP packet id 0", codec.V311, &codec.Pubcomp{}, codec.ProtocolError},
		{"SUBSCRIBE without subscriptions", codec.V311, &codec.Subscribe{PacketID: 1}, codec.ProtocolError},
		{"SUBSCRIBE bad filter", codec.V311, &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "a/#/b"}}}, codec.TopicFilterInvalid},
		{"SUBSCRIBE QoS 3", codec.V5, &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "a", QoS: 3}}}, codec.MalformedPacket},
		{"SUBSCRIBE No Local in 3.1.1", codec.V311, &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "a", NoLocal: true}}}, codec.MalformedPacket},
		{"SUBSCRIBE retain handling 3", codec.V5, &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "a", RetainHandling: 3}}}, codec.ProtocolError},
		{"SUBSCRIBE No Local shared", codec.V5, &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "$share/g/a", NoLocal: true}}}, codec.ProtocolError},
		{"SUBSCRIBE two identifiers", codec.V5, &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "a"}},
			Properties: &codec.Properties{SubscriptionIdentifier: []uint32{1, 2}}}, codec.ProtocolError},
		{"SUBACK without codes", codec.V5, &codec.Suback{PacketID: 1}, codec.ProtocolError},
		{"SUBACK reserved code in 3.1.1", codec.V311, &codec.Suback{PacketID: 1, ReasonCodes: []codec.ReasonCode{3}}, codec.ProtocolError},
		{"UNSUBSCRIBE without filters", codec.V5, &codec.Unsubscribe{PacketID: 1}, codec.ProtocolError},
		{"UNSUBSCRIBE bad filter", codec.V311, &codec.Unsubscribe{PacketID: 1, Filters: []string{"a+"}}, codec.TopicFilterInvalid},
		{"UNSUBACK codes in 3.1.1", codec.V311, &codec.Unsuback{PacketID: 1, ReasonCodes: []codec.ReasonCode{codec.Success}}, codec.MalformedPacket},
		{"UNSUBACK without codes", codec.V5, &codec.Unsuback{PacketID: 1}, codec.ProtocolError},
		{"DISCONNECT reason in 3.1.1", codec.V311, &codec.Disconnect{ReasonCode: codec.DisconnectWithWill}, codec.MalformedPacket},
		{"DISCONNECT code not for DISCONNECT", codec.V5, &codec.Disconnect{ReasonCode: codec.GrantedQoS1}, codec.ProtocolError},
		{"AUTH in 3.1.1", codec.V311, &codec.Auth{}, codec.MalformedPacket},
		{"AUTH code", codec.V5, &codec.Auth{ReasonCode: codec.NotAuthorized}, codec.ProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := tc.p.AppendTo(dst, tc.v)
			var e *codec.Error
			if !errors.As(err, &e) || e.Code != tc.code {
				t.Fatalf("AppendTo: %v; want an *Error with code %s", err, tc.code)
			}
			if string(out) != "keep" {
				t.Errorf("AppendTo appended %q on error", out[4:])
			}
			if e.Packet != tc.p.Type() || !strings.HasPrefix(err.Error(), "codec: "+tc.code.String()) {
				t.Errorf("error %q names packet %s", err, e.Packet)
			}
			if _, serr := codec.Size(tc.p, tc.v); serr == nil || serr.Error() != err.Error() {
				t.Errorf("Size: %v, want %v", serr, err)
			}
		})
	}
}

// TestEncodeAllocs checks that encoding into a buffer with room allocates nothing.
func TestEncodeAllocs(t *testing.T) {
	for _, v := range []byte{codec.V311, codec.V5} {
		g := newGen(7, v)
		for _, typ := range allTypes(v) {
			p := g.packet(typ)
			buf := make([]byte, 0, 4096)
			allocs := testing.AllocsPerRun(50, func() {
				if _, err := p.AppendTo(buf, v); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%s %s: %v allocations", versionName(v), typ, allocs)
			}
		}
	}
}

// TestDecodeAllocs checks that decoding a PUBLISH allocates once: the *Publish and its
// topic and payload share a block.
func TestDecodeAllocs(t *testing.T) {
	for _, size := range []int{0, 10, 64, 1000, 70000} {
		p := &codec.Publish{Topic: "sensors/building-7/temp01", QoS: codec.QoS1, PacketID: 1, Payload: make([]byte, size)}
		for _, v := range []byte{codec.V311, codec.V5} {
			frame, _ := p.AppendTo(nil, v)
			allocs := testing.AllocsPerRun(50, func() {
				if _, _, err := codec.Decode(frame, v, 0); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 1 {
				t.Errorf("%s PUBLISH of %d bytes: %v allocations", versionName(v), size, allocs)
			}
		}
	}
}

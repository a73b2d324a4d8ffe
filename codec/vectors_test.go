package codec_test

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt/codec"
)

// h decodes hex written with spaces and "|" between fields.
func h(s string) []byte {
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "|", "", "\n", "", "\t", "").Replace(s))
	if err != nil {
		panic(err)
	}
	return b
}

// vectors are frames worked out by hand from the specifications' figures: MQTT 3.1.1
// (OASIS Standard, 29 October 2014) and MQTT 5.0 (OASIS Standard, 7 March 2019). Each
// encodes to exactly these bytes and decodes back to the packet.
var vectors = []struct {
	name  string
	v     byte
	p     codec.Packet
	frame string
}{
	// MQTT 3.1.1. Variable header of 3.1.2.10 Figure 3.6 (protocol name, level 4, flags
	// 0xCE = user name, password, will QoS 1, will, clean session; keep alive 10), and a
	// one-letter client id, will topic, will message, user name and password.
	{"CONNECT", codec.V311, &codec.Connect{Version: codec.V311, CleanStart: true, KeepAlive: 10, ClientID: "c",
		Will:        &codec.Will{Topic: "w", Payload: []byte("m"), QoS: codec.QoS1},
		HasUsername: true, Username: "u", HasPassword: true, Password: []byte("p")},
		"10 19 | 00 04 4D 51 54 54 | 04 | CE | 00 0A | 00 01 63 | 00 01 77 | 00 01 6D | 00 01 75 | 00 01 70"},
	// Clean session (0x02) with an empty client id [MQTT-3.1.3-6], keep alive 60.
	{"CONNECT/empty-id", codec.V311, &codec.Connect{Version: codec.V311, CleanStart: true, KeepAlive: 60},
		"10 0C | 00 04 4D 51 54 54 | 04 | 02 | 00 3C | 00 00"},
	// Will retain (0x20) with will QoS 2 (0x10): flags 0x34 with clean session off.
	{"CONNECT/will-retain", codec.V311, &codec.Connect{Version: codec.V311, ClientID: "id",
		Will: &codec.Will{Topic: "a/b", QoS: codec.QoS2, Retain: true}},
		"10 15 | 00 04 4D 51 54 54 | 04 | 34 | 00 00 | 00 02 69 64 | 00 03 61 2F 62 | 00 00"},
	// 3.2: session present, return code 0.
	{"CONNACK", codec.V311, &codec.Connack{SessionPresent: true}, "20 02 | 01 | 00"},
	// Return code 4, bad user name or password.
	{"CONNACK/refused", codec.V311, &codec.Connack{ReasonCode: codec.BadUserNameOrPassword}, "20 02 | 00 | 04"},
	{"CONNACK/not-authorized", codec.V311, &codec.Connack{ReasonCode: codec.NotAuthorized}, "20 02 | 00 | 05"},
	// 3.3.2.3 Figure 3.11: topic "a/b", packet identifier 10; QoS 1 (0x32), payload "hello".
	{"PUBLISH", codec.V311, &codec.Publish{Topic: "a/b", QoS: codec.QoS1, PacketID: 10, Payload: []byte("hello")},
		"32 0C | 00 03 61 2F 62 | 00 0A | 68 65 6C 6C 6F"},
	// QoS 0 with retain (0x31): no packet identifier.
	{"PUBLISH/qos0-retain", codec.V311, &codec.Publish{Topic: "a/b", Retain: true, Payload: []byte("hi")},
		"31 07 | 00 03 61 2F 62 | 68 69"},
	// QoS 2 (0x04) with DUP (0x08), empty payload.
	{"PUBLISH/qos2-dup", codec.V311, &codec.Publish{Topic: "a/b", QoS: codec.QoS2, Dup: true, PacketID: 11},
		"3C 07 | 00 03 61 2F 62 | 00 0B"},
	// 200-byte payload: remaining length 2+1+200 = 203 = 0x4B + 1*128 -> CB 01 (2.2.3).
	{"PUBLISH/two-byte-length", codec.V311, &codec.Publish{Topic: "t", Payload: bytes.Repeat([]byte("x"), 200)},
		"30 CB 01 | 00 01 74 |" + strings.Repeat("78", 200)},
	// A topic with a two-byte UTF-8 character: "é" is C3 A9.
	{"PUBLISH/utf8", codec.V311, &codec.Publish{Topic: "é/x"}, "30 06 | 00 04 C3 A9 2F 78"},
	{"PUBACK", codec.V311, &codec.Puback{PacketID: 10}, "40 02 | 00 0A"},
	{"PUBREC", codec.V311, &codec.Pubrec{PacketID: 10}, "50 02 | 00 0A"},
	// PUBREL has the fixed-header flags 0010 [MQTT-3.6.1-1].
	{"PUBREL", codec.V311, &codec.Pubrel{PacketID: 10}, "62 02 | 00 0A"},
	{"PUBCOMP", codec.V311, &codec.Pubcomp{PacketID: 0xFFFF}, "70 02 | FF FF"},
	// 3.8.3 Figure 3.22: "a/b" at QoS 1 and "c/d" at QoS 2, packet identifier 10.
	{"SUBSCRIBE", codec.V311, &codec.Subscribe{PacketID: 10, Subscriptions: []codec.Subscription{
		{Filter: "a/b", QoS: codec.QoS1}, {Filter: "c/d", QoS: codec.QoS2}}},
		"82 0E | 00 0A | 00 03 61 2F 62 | 01 | 00 03 63 2F 64 | 02"},
	{"SUBSCRIBE/wildcards", codec.V311, &codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: "+/#"}}},
		"82 08 | 00 01 | 00 03 2B 2F 23 | 00"},
	// 3.9.3 Figure 3.26: return codes 0, 1, 2 and 0x80 (failure).
	{"SUBACK", codec.V311, &codec.Suback{PacketID: 10, ReasonCodes: []codec.ReasonCode{
		codec.GrantedQoS0, codec.GrantedQoS1, codec.GrantedQoS2, codec.UnspecifiedError}},
		"90 06 | 00 0A | 00 01 02 80"},
	// 3.10.3 Figure 3.30: "a/b" and "c/d".
	{"UNSUBSCRIBE", codec.V311, &codec.Unsubscribe{PacketID: 10, Filters: []string{"a/b", "c/d"}},
		"A2 0C | 00 0A | 00 03 61 2F 62 | 00 03 63 2F 64"},
	{"UNSUBACK", codec.V311, &codec.Unsuback{PacketID: 10}, "B0 02 | 00 0A"},
	{"PINGREQ", codec.V311, &codec.Pingreq{}, "C0 00"},
	{"PINGRESP", codec.V311, &codec.Pingresp{}, "D0 00"},
	{"DISCONNECT", codec.V311, &codec.Disconnect{}, "E0 00"},

	// MQTT 5.0. 3.1.2.11 Figure 3-6: level 5, flags 0xCE, keep alive 10, properties:
	// Session Expiry Interval (0x11) 10; then client id, will properties (Will Delay
	// Interval 0x18 = 5), will topic, will payload, user name, password.
	{"CONNECT", codec.V5, &codec.Connect{Version: codec.V5, CleanStart: true, KeepAlive: 10, ClientID: "c",
		Properties: &codec.Properties{SessionExpiryInterval: ptr(uint32(10))},
		Will: &codec.Will{Topic: "w", Payload: []byte("m"), QoS: codec.QoS1,
			Properties: &codec.Properties{WillDelayInterval: ptr(uint32(5))}},
		HasUsername: true, Username: "u", HasPassword: true, Password: []byte("p")},
		"10 25 | 00 04 4D 51 54 54 | 05 | CE | 00 0A | 05 | 11 00 00 00 0A | 00 01 63 | 05 | 18 00 00 00 05 |" +
			"00 01 77 | 00 01 6D | 00 01 75 | 00 01 70"},
	// A password without a user name is allowed in 5.0 (flags 0x42); a User Property
	// (0x26) "k"="v"; an empty client id asks the server to assign one.
	{"CONNECT/password-only", codec.V5, &codec.Connect{Version: codec.V5, CleanStart: true,
		Properties:  &codec.Properties{User: []codec.UserProperty{{Key: "k", Value: "v"}}},
		HasPassword: true, Password: []byte("pw")},
		"10 18 | 00 04 4D 51 54 54 | 05 | 42 | 00 00 | 07 | 26 00 01 6B 00 01 76 | 00 00 | 00 02 70 77"},
	// Every CONNECT property, in identifier order: 11, 15, 16, 17, 19, 21, 22, 26, 27.
	{"CONNECT/all-properties", codec.V5, &codec.Connect{Version: codec.V5, ClientID: "x", Properties: &codec.Properties{
		SessionExpiryInterval: ptr(uint32(0xFFFFFFFF)), AuthenticationMethod: "m", AuthenticationData: []byte{},
		RequestProblemInfo: ptr(byte(0)), RequestResponseInfo: ptr(byte(1)), ReceiveMaximum: ptr(uint16(100)),
		TopicAliasMaximum: ptr(uint16(0)), User: []codec.UserProperty{{Key: "a", Value: ""}, {Key: "a", Value: "b"}},
		MaximumPacketSize: ptr(uint32(1 << 20))}},
		"10 36 | 00 04 4D 51 54 54 | 05 | 00 | 00 00 | 28 | 11 FF FF FF FF | 15 00 01 6D | 16 00 00 | 17 00 | 19 01 |" +
			"21 00 64 | 22 00 00 | 26 00 01 61 00 00 | 26 00 01 61 00 01 62 | 27 00 10 00 00 | 00 01 78"},
	// 3.2.2.3: Receive Maximum (0x21) 20 and Topic Alias Maximum (0x22) 10.
	{"CONNACK", codec.V5, &codec.Connack{Properties: &codec.Properties{
		ReceiveMaximum: ptr(uint16(20)), TopicAliasMaximum: ptr(uint16(10))}},
		"20 09 | 00 | 00 | 06 | 21 00 14 | 22 00 0A"},
	{"CONNACK/session-present", codec.V5, &codec.Connack{SessionPresent: true, Properties: &codec.Properties{
		AssignedClientID: "abc"}},
		"20 09 | 01 | 00 | 06 | 12 00 03 61 62 63"},
	// A refusal still carries a Property Length, here 0.
	{"CONNACK/refused", codec.V5, &codec.Connack{ReasonCode: codec.NotAuthorized}, "20 03 | 00 | 87 | 00"},
	// Every CONNACK capability: 13, 1A, 1C, 1F, 24, 25, 28, 29, 2A.
	{"CONNACK/capabilities", codec.V5, &codec.Connack{Properties: &codec.Properties{
		ServerKeepAlive: ptr(uint16(30)), ResponseInfo: "r", ServerReference: "s", ReasonString: "ok",
		MaximumQoS: ptr(byte(1)), RetainAvailable: ptr(false), WildcardSubAvailable: ptr(true),
		SubIDAvailable: ptr(false), SharedSubAvailable: ptr(true)}},
		"20 1D | 00 | 00 | 1A | 13 00 1E | 1A 00 01 72 | 1C 00 01 73 | 1F 00 02 6F 6B | 24 01 | 25 00 | 28 01 | 29 00 | 2A 01"},
	// QoS 1, "a/b", packet identifier 10, properties: Payload Format Indicator (0x01) 1,
	// Message Expiry Interval (0x02) 60, Topic Alias (0x23) 5; payload "hi".
	{"PUBLISH", codec.V5, &codec.Publish{Topic: "a/b", QoS: codec.QoS1, PacketID: 10, Payload: []byte("hi"),
		Properties: &codec.Properties{PayloadFormat: ptr(byte(1)), MessageExpiry: ptr(uint32(60)), TopicAlias: ptr(uint16(5))}},
		"32 14 | 00 03 61 2F 62 | 00 0A | 0A | 01 01 | 02 00 00 00 3C | 23 00 05 | 68 69"},
	// No properties: Property Length 0.
	{"PUBLISH/plain", codec.V5, &codec.Publish{Topic: "a/b"}, "30 06 | 00 03 61 2F 62 | 00"},
	// 3.3.2.3.4: an empty topic name with a Topic Alias.
	{"PUBLISH/alias", codec.V5, &codec.Publish{Topic: "", Payload: []byte("x"), Properties: &codec.Properties{TopicAlias: ptr(uint16(5))}},
		"30 07 | 00 00 | 03 | 23 00 05 | 78"},
	// Two Subscription Identifiers (0x0B), 1 and 300 = 0x2C + 2*128 -> AC 02.
	{"PUBLISH/subscription-ids", codec.V5, &codec.Publish{Topic: "t", Properties: &codec.Properties{
		SubscriptionIdentifier: []uint32{1, 300}}},
		"30 09 | 00 01 74 | 05 | 0B 01 | 0B AC 02"},
	// Request/response: Content Type (0x03), Response Topic (0x08), Correlation Data (0x09).
	{"PUBLISH/request", codec.V5, &codec.Publish{Topic: "q", Properties: &codec.Properties{
		ContentType: "j", ResponseTopic: "r", CorrelationData: []byte{7}}},
		"30 10 | 00 01 71 | 0C | 03 00 01 6A | 08 00 01 72 | 09 00 01 07"},
	// 3.4.2.1: Success and no properties: Remaining Length 2.
	{"PUBACK", codec.V5, &codec.Puback{PacketID: 10}, "40 02 | 00 0A"},
	{"PUBACK/code", codec.V5, &codec.Puback{PacketID: 10, ReasonCode: codec.NoMatchingSubscribers}, "40 03 | 00 0A | 10"},
	{"PUBACK/reason-string", codec.V5, &codec.Puback{PacketID: 10, ReasonCode: codec.UnspecifiedError,
		Properties: &codec.Properties{ReasonString: "no"}},
		"40 09 | 00 0A | 80 | 05 | 1F 00 02 6E 6F"},
	{"PUBREC", codec.V5, &codec.Pubrec{PacketID: 10, ReasonCode: codec.QuotaExceeded}, "50 03 | 00 0A | 97"},
	{"PUBREL", codec.V5, &codec.Pubrel{PacketID: 10, ReasonCode: codec.PacketIdentifierNotFound}, "62 03 | 00 0A | 92"},
	{"PUBCOMP", codec.V5, &codec.Pubcomp{PacketID: 10, Properties: &codec.Properties{
		User: []codec.UserProperty{{Key: "k", Value: "v"}}}},
		"70 0B | 00 0A | 00 | 07 | 26 00 01 6B 00 01 76"},
	// 3.8.3.1: "a/b" with QoS 1, No Local (0x04), Retain As Published (0x08) and Retain
	// Handling 2 (0x20) = 0x2D; "c/d" at QoS 2; Subscription Identifier 5.
	{"SUBSCRIBE", codec.V5, &codec.Subscribe{PacketID: 10, Properties: &codec.Properties{SubscriptionIdentifier: []uint32{5}},
		Subscriptions: []codec.Subscription{
			{Filter: "a/b", QoS: codec.QoS1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
			{Filter: "c/d", QoS: codec.QoS2}}},
		"82 11 | 00 0A | 02 | 0B 05 | 00 03 61 2F 62 | 2D | 00 03 63 2F 64 | 02"},
	// A shared subscription (4.8.2) with Retain Handling 1.
	{"SUBSCRIBE/shared", codec.V5, &codec.Subscribe{PacketID: 2, Subscriptions: []codec.Subscription{
		{Filter: "$share/g/t/#", RetainHandling: 1}}},
		"82 12 | 00 02 | 00 | 00 0C 24 73 68 61 72 65 2F 67 2F 74 2F 23 | 10"},
	{"SUBACK", codec.V5, &codec.Suback{PacketID: 10, ReasonCodes: []codec.ReasonCode{
		codec.GrantedQoS1, codec.GrantedQoS2, codec.TopicFilterInvalid}},
		"90 06 | 00 0A | 00 | 01 02 8F"},
	{"UNSUBSCRIBE", codec.V5, &codec.Unsubscribe{PacketID: 10, Filters: []string{"a/b", "c/d"}},
		"A2 0D | 00 0A | 00 | 00 03 61 2F 62 | 00 03 63 2F 64"},
	{"UNSUBACK", codec.V5, &codec.Unsuback{PacketID: 10, ReasonCodes: []codec.ReasonCode{codec.Success, codec.NoSubscriptionExisted}},
		"B0 05 | 00 0A | 00 | 00 11"},
	{"PINGREQ", codec.V5, &codec.Pingreq{}, "C0 00"},
	{"PINGRESP", codec.V5, &codec.Pingresp{}, "D0 00"},
	// 3.14.2.1: Normal disconnection without properties: Remaining Length 0.
	{"DISCONNECT", codec.V5, &codec.Disconnect{}, "E0 00"},
	{"DISCONNECT/with-will", codec.V5, &codec.Disconnect{ReasonCode: codec.DisconnectWithWill}, "E0 01 | 04"},
	{"DISCONNECT/session-expiry", codec.V5, &codec.Disconnect{Properties: &codec.Properties{SessionExpiryInterval: ptr(uint32(0))}},
		"E0 07 | 00 | 05 | 11 00 00 00 00"},
	{"DISCONNECT/server-moved", codec.V5, &codec.Disconnect{ReasonCode: codec.UseAnotherServer,
		Properties: &codec.Properties{ServerReference: "s2"}},
		"E0 07 | 9C | 05 | 1C 00 02 73 32"},
	// 3.15.2.1: Success without properties: Remaining Length 0.
	{"AUTH", codec.V5, &codec.Auth{}, "F0 00"},
	// Re-authenticate (0x19) without properties: the Property Length is still written.
	{"AUTH/reauthenticate", codec.V5, &codec.Auth{ReasonCode: codec.ReAuthenticate}, "F0 02 | 19 | 00"},
	// Continue authentication (0x18), Authentication Method "SCRAM", Authentication Data "x".
	{"AUTH/continue", codec.V5, &codec.Auth{ReasonCode: codec.ContinueAuthentication, Properties: &codec.Properties{
		AuthenticationMethod: "SCRAM", AuthenticationData: []byte("x")}},
		"F0 0E | 18 | 0C | 15 00 05 53 43 52 41 4D | 16 00 01 78"},
}

func TestVectors(t *testing.T) {
	seen := map[string]bool{}
	for _, tc := range vectors {
		t.Run(versionName(tc.v)+"/"+tc.name, func(t *testing.T) {
			want := h(tc.frame)
			got, err := tc.p.AppendTo([]byte("prefix"), tc.v)
			if err != nil {
				t.Fatalf("AppendTo: %v", err)
			}
			if !bytes.Equal(got[6:], want) || string(got[:6]) != "prefix" {
				t.Fatalf("AppendTo =\n% X\nwant\n% X", got[6:], want)
			}
			p, n, err := codec.Decode(want, tc.v, 0)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if n != len(want) || !reflect.DeepEqual(p, tc.p) {
				t.Fatalf("Decode = %s (%d bytes), want %s", dump(p), n, dump(tc.p))
			}
			if size, err := codec.Size(tc.p, tc.v); err != nil || size != len(want) {
				t.Fatalf("Size = %d, %v; want %d", size, err, len(want))
			}
		})
		seen[versionName(tc.v)+"/"+tc.p.Type().String()] = true
	}
	for _, v := range []byte{codec.V311, codec.V5} {
		for _, typ := range allTypes(v) {
			if !seen[versionName(v)+"/"+typ.String()] {
				t.Errorf("no vector for %s %s", versionName(v), typ)
			}
		}
	}
}

// TestDecodeLenient covers frames that are valid but not what the encoder writes: the
// decoder accepts them and the packet re-encodes in the canonical form.
func TestDecodeLenient(t *testing.T) {
	for _, tc := range []struct {
		name  string
		v     byte
		frame string
		want  codec.Packet
	}{
		// 3.4.2.1: a Property Length 0 the sender need not have sent.
		{"PUBACK/empty-properties", codec.V5, "40 04 00 0A 00 00", &codec.Puback{PacketID: 10}},
		{"DISCONNECT/empty-properties", codec.V5, "E0 02 00 00", &codec.Disconnect{}},
		{"AUTH/code-only", codec.V5, "F0 01 19", &codec.Auth{ReasonCode: codec.ReAuthenticate}},
		// A remaining length not in its shortest form.
		{"PINGREQ/long-length", codec.V311, "C0 80 00", &codec.Pingreq{}},
		// Properties out of identifier order.
		{"PUBLISH/property-order", codec.V5, "30 09 00 01 74 05 23 00 07 01 00",
			&codec.Publish{Topic: "t", Properties: &codec.Properties{TopicAlias: ptr(uint16(7)), PayloadFormat: ptr(byte(0))}}},
		// An empty Content Type cannot be told from an absent one.
		{"PUBLISH/empty-string-property", codec.V5, "30 07 00 01 74 03 03 00 00", &codec.Publish{Topic: "t"}},
		// The CONNECT's own level wins over the version argument.
		{"CONNECT/level-5-in-3.1.1-stream", codec.V311, "10 0D 00 04 4D 51 54 54 05 02 00 00 00 00 00",
			&codec.Connect{Version: codec.V5, CleanStart: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _, err := codec.Decode(h(tc.frame), tc.v, 0)
			if err != nil || !reflect.DeepEqual(p, tc.want) {
				t.Fatalf("Decode = %s, %v; want %s", dump(p), err, dump(tc.want))
			}
		})
	}
}

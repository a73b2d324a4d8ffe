package mqtttest

import (
	"errors"
	"strings"

	"github.com/robustmqtt/mqtt/codec"
)

// rule is a client-side requirement the Monitor checks: its normative
// statement in MQTT 5.0 and in MQTT 3.1.1 (empty where that version does
// not have the feature), and what it asks, in short. A requirement the
// standard states without a number is named by its section.
type rule struct {
	v5, v311 string
	text     string
}

// id returns the rule's name for a connection at protocol level version.
func (r rule) id(version byte) string {
	if version == codec.V311 && r.v311 != "" {
		return r.v311
	}
	return r.v5
}

// The rules, by concern. The statement numbers are those of the OASIS
// standards' normative-statement appendices (see CONFORMANCE.md).
var (
	ruleConnectFirst = rule{"MQTT-3.1.0-1", "MQTT-3.1.0-1",
		"the first packet a client sends on a connection is CONNECT"}
	ruleConnectOnce = rule{"MQTT-3.1.0-2", "MQTT-3.1.0-2",
		"a client sends CONNECT once per connection; a second one is a protocol violation"}
	ruleAfterDisconnect = rule{"MQTT-3.14.4-1", "MQTT-3.14.4-2",
		"after DISCONNECT the client sends nothing more on the connection"}
	ruleKeepAlive = rule{"MQTT-3.1.2-20", "MQTT-3.1.2-23",
		"with a non-zero Keep Alive the client sends a packet (PINGREQ when it has nothing else) within every Keep Alive; the server gives up after 1.5 times it"}

	ruleMaxPacketSize = rule{"MQTT-3.2.2-15", "",
		"the client sends no packet larger than the Maximum Packet Size of the server's CONNACK"}
	ruleMaxQoS = rule{"MQTT-3.2.2-11", "",
		"the client sends no PUBLISH above the Maximum QoS of the server's CONNACK"}
	ruleRetainAvailable = rule{"MQTT-3.2.2-14", "",
		"after Retain Available 0 in the CONNACK the client sends no PUBLISH with RETAIN set"}
	ruleWildcardSub = rule{"MQTT-5.0 §3.2.2.3.11", "",
		"after Wildcard Subscription Available 0 in the CONNACK a wildcard subscription is a protocol error"}
	ruleSubIDs = rule{"MQTT-5.0 §3.2.2.3.12", "",
		"after Subscription Identifiers Available 0 in the CONNACK a Subscription Identifier is a protocol error"}
	ruleSharedSub = rule{"MQTT-5.0 §3.2.2.3.13", "",
		"after Shared Subscription Available 0 in the CONNACK a shared subscription is a protocol error"}

	ruleReceiveMaximum = rule{"MQTT-3.3.4-7", "",
		"the client has at most Receive Maximum (CONNACK; 65535 when absent) QoS 1 and 2 PUBLISHes unacknowledged"}
	ruleIDInUse = rule{"MQTT-2.2.1-3", "MQTT-2.3.1-2",
		"a new PUBLISH (QoS 1 or 2), SUBSCRIBE or UNSUBSCRIBE gets a packet identifier that is not in use"}
	ruleDupQoS0 = rule{"MQTT-3.3.1-2", "MQTT-3.3.1-2",
		"a QoS 0 PUBLISH has DUP 0"}
	ruleDupFirstQoS1 = rule{"MQTT-4.3.2-2", "MQTT-4.3.2-1",
		"the first transmission of a QoS 1 message has DUP 0"}
	ruleDupFirstQoS2 = rule{"MQTT-4.3.3-2", "MQTT-4.3.3-1",
		"the first transmission of a QoS 2 message has DUP 0"}
	ruleResendInConnection = rule{"MQTT-4.4.0-1", "",
		"a client re-sends a PUBLISH only on a new connection that resumes the session, never on the same connection"}
	rulePublishAfterPubrel = rule{"MQTT-4.3.3-6", "MQTT-4.3.3-1",
		"once it has sent PUBREL the client does not send that PUBLISH again"}
	rulePubrelAfterPubrec = rule{"MQTT-4.3.3-4", "MQTT-4.3.3-1",
		"the client sends PUBREL in answer to the server's PUBREC, with the packet identifier of its QoS 2 PUBLISH"}
	ruleAckID = rule{"MQTT-2.2.1-5", "MQTT-2.3.1-6",
		"PUBACK answers a QoS 1 and PUBREC a QoS 2 PUBLISH from the server, with its packet identifier"}
	rulePubcompID = rule{"MQTT-4.3.3-11", "MQTT-4.3.3-2",
		"PUBCOMP answers the server's PUBREL, with its packet identifier"}
	rulePubackOrder = rule{"MQTT-4.6.0-2", "MQTT-4.6.0-2",
		"PUBACKs go out in the order the QoS 1 PUBLISHes arrived"}
	rulePubrecOrder = rule{"MQTT-4.6.0-3", "MQTT-4.6.0-3",
		"PUBRECs go out in the order the QoS 2 PUBLISHes arrived"}
	rulePubrelOrder = rule{"MQTT-4.6.0-4", "MQTT-4.6.0-4",
		"PUBRELs go out in the order the PUBRECs arrived, also when they are re-sent on a new connection"}

	ruleAliasMaximum = rule{"MQTT-3.2.2-17", "",
		"the client sends no Topic Alias above the Topic Alias Maximum of the server's CONNACK"}
	ruleAliasNone = rule{"MQTT-3.2.2-18", "",
		"when the server's CONNACK has no Topic Alias Maximum above 0 the client sends no Topic Alias"}
	ruleAliasUnset = rule{"MQTT-5.0 §3.3.2.3.4", "",
		"a PUBLISH with an empty topic name uses a Topic Alias that an earlier PUBLISH on the same connection set"}
	ruleAliasZero = rule{"MQTT-3.3.2-8", "",
		"a Topic Alias is never 0"}
	ruleSubIDInPublish = rule{"MQTT-3.3.4-6", "",
		"a PUBLISH from the client carries no Subscription Identifier"}
	ruleAuthWithoutMethod = rule{"MQTT-4.12.0-7", "",
		"a client whose CONNECT has no Authentication Method sends no AUTH"}

	ruleUTF8 = rule{"MQTT-1.5.4-1", "MQTT-1.5.3-1",
		"every string is well-formed UTF-8"}
	ruleNUL = rule{"MQTT-1.5.4-2", "MQTT-1.5.3-2",
		"no string contains U+0000"}
	ruleReservedFlags = rule{"MQTT-2.1.3-1", "MQTT-2.2.2-1",
		"the reserved flag bits of the fixed header carry their listed values"}
	ruleQoS3 = rule{"MQTT-3.3.1-4", "MQTT-3.3.1-4",
		"a PUBLISH never has both QoS bits set"}
	ruleWildcardTopic = rule{"MQTT-3.3.2-2", "MQTT-3.3.2-2",
		"a topic name contains no wildcard character"}
	ruleIDZero = rule{"MQTT-2.2.1-3", "MQTT-2.3.1-1",
		"a packet identifier is not 0"}
	ruleMultiLevel = rule{"MQTT-4.7.1-1", "MQTT-4.7.1-2",
		"'#' stands alone or after '/', and ends the topic filter"}
	ruleSingleLevel = rule{"MQTT-4.7.1-2", "MQTT-4.7.1-3",
		"'+' occupies a whole level of the topic filter"}
	ruleEmptyTopic = rule{"MQTT-4.7.3-1", "MQTT-4.7.3-1",
		"topic names and topic filters are at least one character long"}
	ruleShareName = rule{"MQTT-4.8.2-2", "",
		"a shared subscription is $share/{ShareName}/{filter}, with a non-empty ShareName without '/', '+' or '#'"}
	ruleNoLocalShared = rule{"MQTT-3.8.3-4", "",
		"No Local on a shared subscription is a protocol error"}
	ruleRemainingLength = rule{"MQTT-5.0 §1.5.5", "MQTT-3.1.1 §2.2.3",
		"the remaining length is a variable byte integer of at most four bytes"}
	ruleMalformed = rule{"malformed", "malformed",
		"every packet is well formed"}

	rulePubackCode = rule{"MQTT-3.4.2-1", "",
		"a PUBACK carries one of the PUBACK reason codes"}
	rulePubrecCode = rule{"MQTT-3.5.2-1", "",
		"a PUBREC carries one of the PUBREC reason codes"}
	rulePubrelCode = rule{"MQTT-3.6.2-1", "",
		"a PUBREL carries one of the PUBREL reason codes"}
	rulePubcompCode = rule{"MQTT-3.7.2-1", "",
		"a PUBCOMP carries one of the PUBCOMP reason codes"}
	ruleDisconnectCode = rule{"MQTT-3.14.2-1", "",
		"a client's DISCONNECT carries one of the DISCONNECT reason codes a client may send"}
	ruleAuthCode = rule{"MQTT-3.15.2-1", "",
		"a client's AUTH carries Continue authentication (0x18) or Re-authenticate (0x19)"}
)

// clientCodes lists, per packet type, the reason codes a client may send
// (MQTT 5.0 sections 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.14.2.1 and
// 3.15.2.1). codec accepts any failure code on receipt, for interoperability
// with brokers; a client under test gets no such leeway.
var clientCodes = map[codec.PacketType]struct {
	rule  rule
	codes []byte
}{
	codec.TypePuback:     {rulePubackCode, []byte{0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99}},
	codec.TypePubrec:     {rulePubrecCode, []byte{0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99}},
	codec.TypePubrel:     {rulePubrelCode, []byte{0x00, 0x92}},
	codec.TypePubcomp:    {rulePubcompCode, []byte{0x00, 0x92}},
	codec.TypeDisconnect: {ruleDisconnectCode, []byte{0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99}},
	codec.TypeAuth:       {ruleAuthCode, []byte{0x18, 0x19}},
}

// headerRule checks the first byte of a client frame: the packet type and
// its reserved flags. It returns the rule broken and why, or ok.
func headerRule(first, version byte) (r rule, why string, ok bool) {
	t := codec.PacketType(first >> 4)
	flags := first & 0x0F
	switch {
	case t == 0:
		return ruleMalformed, "packet type 0 is reserved", false
	case t == codec.TypeAuth && version == codec.V311:
		return ruleMalformed, "packet type 15 (AUTH) does not exist in MQTT 3.1.1", false
	case t == codec.TypePublish:
		if flags&0x06 == 0x06 {
			return ruleQoS3, "PUBLISH with QoS 3", false
		}
		if flags&0x08 != 0 && flags&0x06 == 0 {
			return ruleDupQoS0, "QoS 0 PUBLISH with DUP set", false
		}
	case t == codec.TypePubrel || t == codec.TypeSubscribe || t == codec.TypeUnsubscribe:
		if flags != 0x02 {
			return ruleReservedFlags, t.String() + " with fixed-header flags " + hex4(flags) + ", not 0010", false
		}
	default:
		if flags != 0 {
			return ruleReservedFlags, t.String() + " with fixed-header flags " + hex4(flags) + ", not 0000", false
		}
	}
	return rule{}, "", true
}

func hex4(b byte) string {
	const bits = "01"
	return string([]byte{bits[b>>3&1], bits[b>>2&1], bits[b>>1&1], bits[b&1]})
}

// decodeRule names the rule a frame that codec refused to decode breaks.
// codec's messages say what is wrong; the rule is read from them, and is
// ruleMalformed when no single statement fits.
func decodeRule(err error) rule {
	var ce *codec.Error
	if !errors.As(err, &ce) {
		return ruleMalformed
	}
	r := ce.Reason
	switch {
	case strings.Contains(r, "reserved flags"):
		return ruleReservedFlags
	case strings.Contains(r, "DUP set on a QoS 0"):
		return ruleDupQoS0
	case ce.Packet == codec.TypePublish && strings.Contains(r, "QoS 3"):
		return ruleQoS3
	case strings.Contains(r, "U+0000"):
		return ruleNUL
	case strings.Contains(r, "not valid UTF-8"):
		return ruleUTF8
	case strings.Contains(r, "topic name contains the wildcard"):
		return ruleWildcardTopic
	case strings.Contains(r, "packet identifier is 0"):
		return ruleIDZero
	case strings.Contains(r, "Topic Alias") && strings.Contains(r, "must not be 0"):
		return ruleAliasZero
	case strings.Contains(r, "NoLocal"):
		return ruleNoLocalShared
	case strings.Contains(r, "'#'"):
		return ruleMultiLevel
	case strings.Contains(r, "'+'"):
		return ruleSingleLevel
	case strings.Contains(r, "ShareName") || strings.Contains(r, "shared subscription"):
		return ruleShareName
	case strings.Contains(r, "is empty"):
		return ruleEmptyTopic
	case strings.Contains(r, "reason code"):
		if c, ok := clientCodes[ce.Packet]; ok {
			return c.rule
		}
	}
	return ruleMalformed
}

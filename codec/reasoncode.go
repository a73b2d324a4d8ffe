package codec

import "fmt"

// ReasonCode is an MQTT 5.0 reason code (section 2.4). Values below 0x80 report success;
// 0x80 and above report failure. MQTT 3.1.1 return codes are mapped onto the same
// vocabulary (see Connack and Suback), so callers handle one set of names.
type ReasonCode byte

// The reason codes of MQTT 5.0, Table 2-6. Several names share a value: the packet they
// travel in decides which one is meant (0x00 is Success in a PUBACK, NormalDisconnection
// in a DISCONNECT, GrantedQoS0 in a SUBACK).
const (
	Success                             ReasonCode = 0x00
	NormalDisconnection                 ReasonCode = 0x00
	GrantedQoS0                         ReasonCode = 0x00
	GrantedQoS1                         ReasonCode = 0x01
	GrantedQoS2                         ReasonCode = 0x02
	DisconnectWithWill                  ReasonCode = 0x04
	NoMatchingSubscribers               ReasonCode = 0x10
	NoSubscriptionExisted               ReasonCode = 0x11
	ContinueAuthentication              ReasonCode = 0x18
	ReAuthenticate                      ReasonCode = 0x19
	UnspecifiedError                    ReasonCode = 0x80
	MalformedPacket                     ReasonCode = 0x81
	ProtocolError                       ReasonCode = 0x82
	ImplementationSpecificError         ReasonCode = 0x83
	UnsupportedProtocolVersion          ReasonCode = 0x84
	ClientIdentifierNotValid            ReasonCode = 0x85
	BadUserNameOrPassword               ReasonCode = 0x86
	NotAuthorized                       ReasonCode = 0x87
	ServerUnavailable                   ReasonCode = 0x88
	ServerBusy                          ReasonCode = 0x89
	Banned                              ReasonCode = 0x8A
	ServerShuttingDown                  ReasonCode = 0x8B
	BadAuthenticationMethod             ReasonCode = 0x8C
	KeepAliveTimeout                    ReasonCode = 0x8D
	SessionTakenOver                    ReasonCode = 0x8E
	TopicFilterInvalid                  ReasonCode = 0x8F
	TopicNameInvalid                    ReasonCode = 0x90
	PacketIdentifierInUse               ReasonCode = 0x91
	PacketIdentifierNotFound            ReasonCode = 0x92
	ReceiveMaximumExceeded              ReasonCode = 0x93
	TopicAliasInvalid                   ReasonCode = 0x94
	PacketTooLarge                      ReasonCode = 0x95
	MessageRateTooHigh                  ReasonCode = 0x96
	QuotaExceeded                       ReasonCode = 0x97
	AdministrativeAction                ReasonCode = 0x98
	PayloadFormatInvalid                ReasonCode = 0x99
	RetainNotSupported                  ReasonCode = 0x9A
	QoSNotSupported                     ReasonCode = 0x9B
	UseAnotherServer                    ReasonCode = 0x9C
	ServerMoved                         ReasonCode = 0x9D
	SharedSubscriptionsNotSupported     ReasonCode = 0x9E
	ConnectionRateExceeded              ReasonCode = 0x9F
	MaximumConnectTime                  ReasonCode = 0xA0
	SubscriptionIdentifiersNotSupported ReasonCode = 0xA1
	WildcardSubscriptionsNotSupported   ReasonCode = 0xA2
)

var reasonCodeNames = map[ReasonCode]string{
	Success:                             "success",
	GrantedQoS1:                         "granted QoS 1",
	GrantedQoS2:                         "granted QoS 2",
	DisconnectWithWill:                  "disconnect with will message",
	NoMatchingSubscribers:               "no matching subscribers",
	NoSubscriptionExisted:               "no subscription existed",
	ContinueAuthentication:              "continue authentication",
	ReAuthenticate:                      "re-authenticate",
	UnspecifiedError:                    "unspecified error",
	MalformedPacket:                     "malformed packet",
	ProtocolError:                       "protocol error",
	ImplementationSpecificError:         "implementation specific error",
	UnsupportedProtocolVersion:          "unsupported protocol version",
	ClientIdentifierNotValid:            "client identifier not valid",
	BadUserNameOrPassword:               "bad user name or password",
	NotAuthorized:                       "not authorized",
	ServerUnavailable:                   "server unavailable",
	ServerBusy:                          "server busy",
	Banned:                              "banned",
	ServerShuttingDown:                  "server shutting down",
	BadAuthenticationMethod:             "bad authentication method",
	KeepAliveTimeout:                    "keep alive timeout",
	SessionTakenOver:                    "session taken over",
	TopicFilterInvalid:                  "topic filter invalid",
	TopicNameInvalid:                    "topic name invalid",
	PacketIdentifierInUse:               "packet identifier in use",
	PacketIdentifierNotFound:            "packet identifier not found",
	ReceiveMaximumExceeded:              "receive maximum exceeded",
	TopicAliasInvalid:                   "topic alias invalid",
	PacketTooLarge:                      "packet too large",
	MessageRateTooHigh:                  "message rate too high",
	QuotaExceeded:                       "quota exceeded",
	AdministrativeAction:                "administrative action",
	PayloadFormatInvalid:                "payload format invalid",
	RetainNotSupported:                  "retain not supported",
	QoSNotSupported:                     "QoS not supported",
	UseAnotherServer:                    "use another server",
	ServerMoved:                         "server moved",
	SharedSubscriptionsNotSupported:     "shared subscriptions not supported",
	ConnectionRateExceeded:              "connection rate exceeded",
	MaximumConnectTime:                  "maximum connect time",
	SubscriptionIdentifiersNotSupported: "subscription identifiers not supported",
	WildcardSubscriptionsNotSupported:   "wildcard subscriptions not supported",
}

// String returns the code's name from Table 2-6 in lower case ("malformed packet"), or
// "reason code 0xNN" for a value the specification does not define. 0x00 reads "success".
func (c ReasonCode) String() string {
	if s, ok := reasonCodeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("reason code 0x%02X", byte(c))
}

// IsError reports whether c reports a failure (0x80 and above).
func (c ReasonCode) IsError() bool { return c >= 0x80 }

// codeSet is a set of reason codes, one bit per value, and whether any
// failure code is accepted besides those listed.
type codeSet struct {
	bits       [4]uint64
	anyFailure bool
}

func newCodeSet(codes ...ReasonCode) codeSet {
	var s codeSet
	for _, c := range codes {
		s.bits[c>>6] |= 1 << (c & 63)
	}
	return s
}

// orAnyFailure returns s accepting every failure code (0x80 and above) too.
func (s codeSet) orAnyFailure() codeSet {
	s.anyFailure = true
	return s
}

func (s *codeSet) has(c ReasonCode) bool { return s.bits[c>>6]&(1<<(c&63)) != 0 }

// permits reports whether a packet whose table is s may carry c: a code from
// its table, or, for most packets, any failure code (0x80 and above). Brokers answer with
// failure codes their packet's table does not list (Mosquitto 2.0 refuses
// an oversized PUBLISH with PUBACK 0x95 Packet Too Large); the receiver
// still learns what it needs, that the request failed and why, so treating
// such a code as a protocol error would only turn a refusal into a
// reconnect loop.
// AUTH stays strict: a failure code outside its table is a corrupt frame.
// The 3.1.1 SUBACK, whose only failure is 0x80, takes any failure code
// too: mochi-mqtt v2.7 answers a 3.1.1 SUBSCRIBE whose identifier equals
// one of its own messages in flight with 0x91 Packet Identifier in use.
func (s *codeSet) permits(c ReasonCode) bool { return (s.anyFailure && c.IsError()) || s.has(c) }

// The reason codes each MQTT 5.0 packet may carry: the tables in sections 3.2.2.2, 3.4.2.1,
// 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3, 3.14.2.1 and 3.15.2.1.
var (
	connackCodes = newCodeSet(Success, UnspecifiedError, MalformedPacket, ProtocolError,
		ImplementationSpecificError, UnsupportedProtocolVersion, ClientIdentifierNotValid,
		BadUserNameOrPassword, NotAuthorized, ServerUnavailable, ServerBusy, Banned,
		BadAuthenticationMethod, TopicNameInvalid, PacketTooLarge, QuotaExceeded,
		PayloadFormatInvalid, RetainNotSupported, QoSNotSupported, UseAnotherServer,
		ServerMoved, ConnectionRateExceeded).orAnyFailure()
	pubackCodes = newCodeSet(Success, NoMatchingSubscribers, UnspecifiedError,
		ImplementationSpecificError, NotAuthorized, TopicNameInvalid, PacketIdentifierInUse,
		QuotaExceeded, PayloadFormatInvalid).orAnyFailure() // PUBACK and PUBREC
	pubrelCodes = newCodeSet(Success, PacketIdentifierNotFound).orAnyFailure() // PUBREL and PUBCOMP
	subackCodes = newCodeSet(GrantedQoS0, GrantedQoS1, GrantedQoS2, UnspecifiedError,
		ImplementationSpecificError, NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse,
		QuotaExceeded, SharedSubscriptionsNotSupported, SubscriptionIdentifiersNotSupported,
		WildcardSubscriptionsNotSupported).orAnyFailure()
	subackCodesV311 = newCodeSet(GrantedQoS0, GrantedQoS1, GrantedQoS2, UnspecifiedError).orAnyFailure()
	unsubackCodes   = newCodeSet(Success, NoSubscriptionExisted, UnspecifiedError,
		ImplementationSpecificError, NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse).orAnyFailure()
	disconnectCodes = newCodeSet(NormalDisconnection, DisconnectWithWill, UnspecifiedError,
		MalformedPacket, ProtocolError, ImplementationSpecificError, NotAuthorized, ServerBusy,
		ServerShuttingDown, KeepAliveTimeout, SessionTakenOver, TopicFilterInvalid,
		TopicNameInvalid, ReceiveMaximumExceeded, TopicAliasInvalid, PacketTooLarge,
		MessageRateTooHigh, QuotaExceeded, AdministrativeAction, PayloadFormatInvalid,
		RetainNotSupported, QoSNotSupported, UseAnotherServer, ServerMoved,
		SharedSubscriptionsNotSupported, ConnectionRateExceeded, MaximumConnectTime,
		SubscriptionIdentifiersNotSupported, WildcardSubscriptionsNotSupported).orAnyFailure()
	authCodes = newCodeSet(Success, ContinueAuthentication, ReAuthenticate)
)

// DisconnectReason returns c if MQTT 5.0 lists it as a DISCONNECT reason code (section
// 3.14.2.1), and otherwise the closest one that is: MalformedPacket for a malformed-packet
// failure, ProtocolError for any other. A client that closes a connection because of an
// error found while decoding (whose code may be a CONNACK-only one such as 0x84) sends
// this [MQTT-3.14.2-1].
func DisconnectReason(c ReasonCode) ReasonCode {
	if disconnectCodes.has(c) {
		return c
	}
	if c == MalformedPacket {
		return MalformedPacket
	}
	return ProtocolError
}

// MQTT 3.1.1 CONNACK return codes (section 3.2.2.3) in the MQTT 5.0 vocabulary: index is
// the 3.1.1 byte.
var connackV311 = [...]ReasonCode{
	0: Success,
	1: UnsupportedProtocolVersion,
	2: ClientIdentifierNotValid,
	3: ServerUnavailable,
	4: BadUserNameOrPassword,
	5: NotAuthorized,
}

// connackToV311 returns the 3.1.1 return code for c, or false if 3.1.1 cannot express it.
func connackToV311(c ReasonCode) (byte, bool) {
	for i, v := range connackV311 {
		if v == c {
			return byte(i), true
		}
	}
	return 0, false
}

package codec

import "strconv"

// Protocol levels, as written in the CONNECT packet's Protocol Level byte.
const (
	V311 byte = 4 // MQTT 3.1.1
	V5   byte = 5 // MQTT 5.0
)

// QoS is a delivery guarantee: at most once, at least once, exactly once.
type QoS byte

// The three quality-of-service levels. Any other value is invalid on the wire.
const (
	QoS0 QoS = 0 // at most once
	QoS1 QoS = 1 // at least once
	QoS2 QoS = 2 // exactly once
)

// Valid reports whether q is QoS0, QoS1 or QoS2.
func (q QoS) Valid() bool { return q <= QoS2 }

// String returns "QoS0", "QoS1", "QoS2", or "QoS(n)" for an invalid value.
func (q QoS) String() string {
	switch q {
	case QoS0:
		return "QoS0"
	case QoS1:
		return "QoS1"
	case QoS2:
		return "QoS2"
	}
	return "QoS(" + strconv.Itoa(int(q)) + ")"
}

// PacketType is the control packet type from the high nibble of the first byte of a frame.
type PacketType byte

// The control packet types. 0 is reserved; AUTH (15) exists only in MQTT 5.0.
const (
	TypeConnect     PacketType = 1
	TypeConnack     PacketType = 2
	TypePublish     PacketType = 3
	TypePuback      PacketType = 4
	TypePubrec      PacketType = 5
	TypePubrel      PacketType = 6
	TypePubcomp     PacketType = 7
	TypeSubscribe   PacketType = 8
	TypeSuback      PacketType = 9
	TypeUnsubscribe PacketType = 10
	TypeUnsuback    PacketType = 11
	TypePingreq     PacketType = 12
	TypePingresp    PacketType = 13
	TypeDisconnect  PacketType = 14
	TypeAuth        PacketType = 15
)

var packetTypeNames = [...]string{
	TypeConnect:     "CONNECT",
	TypeConnack:     "CONNACK",
	TypePublish:     "PUBLISH",
	TypePuback:      "PUBACK",
	TypePubrec:      "PUBREC",
	TypePubrel:      "PUBREL",
	TypePubcomp:     "PUBCOMP",
	TypeSubscribe:   "SUBSCRIBE",
	TypeSuback:      "SUBACK",
	TypeUnsubscribe: "UNSUBSCRIBE",
	TypeUnsuback:    "UNSUBACK",
	TypePingreq:     "PINGREQ",
	TypePingresp:    "PINGRESP",
	TypeDisconnect:  "DISCONNECT",
	TypeAuth:        "AUTH",
}

// String returns the packet's name as the specifications write it ("CONNECT"), or
// "PacketType(n)" for 0 and values above 15.
func (t PacketType) String() string {
	if int(t) < len(packetTypeNames) && packetTypeNames[t] != "" {
		return packetTypeNames[t]
	}
	return "PacketType(" + strconv.Itoa(int(t)) + ")"
}

// Packet is one MQTT control packet. The concrete types are the pointer types *Connect,
// *Connack, *Publish, *Puback, *Pubrec, *Pubrel, *Pubcomp, *Subscribe, *Suback,
// *Unsubscribe, *Unsuback, *Pingreq, *Pingresp, *Disconnect and *Auth; a type switch on
// them is how a reader dispatches.
type Packet interface {
	// Type returns the control packet type.
	Type() PacketType

	// AppendTo appends the whole frame (fixed header included), encoded for protocol
	// level version (V311 or V5), to dst and returns the extended slice. It validates what
	// it encodes (lengths against field widths, QoS, packet identifier non-zero where
	// required, UTF-8 strings, topic names and filters, which properties the packet may
	// carry, v5-only content such as properties or reason codes other than success in a
	// V311 frame) and, when the packet cannot be encoded, returns dst unchanged and a
	// *Error that says why. CONNECT ignores version: it encodes at its own Version.
	AppendTo(dst []byte, version byte) ([]byte, error)
}

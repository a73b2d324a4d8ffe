package codec

import (
	"errors"
	"fmt"
	"strconv"
)

// Error reports a frame that cannot be decoded, or a packet that cannot be encoded,
// because it breaks the protocol. Network errors are never an *Error.
//
// Code is what a receiver should answer with: a CONNACK or DISCONNECT reason code such as
// MalformedPacket, ProtocolError, PacketTooLarge, TopicNameInvalid, TopicFilterInvalid,
// ClientIdentifierNotValid or UnsupportedProtocolVersion. An MQTT 3.1.1 receiver, which
// has no DISCONNECT reason codes, simply closes the connection.
type Error struct {
	Code   ReasonCode // what a receiver should answer with
	Packet PacketType // which packet (0 if unknown)
	Offset int        // byte offset in the frame where the problem is (-1 if not applicable)
	Reason string     // what is wrong, in words

	// For a PUBLISH refused with ImplementationSpecificError (a limit of
	// this receiver, such as MaxUserProperties, not a malformed frame):
	// its QoS and packet identifier, so that a receiver can refuse the
	// message with that reason code in PUBACK or PUBREC instead of
	// closing the connection, after which a broker would send it again
	// for ever. The frame was read whole.
	QoS      QoS
	PacketID uint16
}

// Error returns a message like "codec: malformed packet: PUBLISH: topic name length 300
// runs past the end of the 12-byte frame at byte 2".
func (e *Error) Error() string {
	s := "codec: " + e.Code.String() + ": "
	if e.Packet != 0 {
		s += e.Packet.String() + ": "
	}
	s += e.Reason
	if e.Offset >= 0 {
		s += " at byte " + strconv.Itoa(e.Offset)
	}
	return s
}

// errorf returns an *Error; off is a frame offset or -1.
func errorf(code ReasonCode, t PacketType, off int, format string, args ...any) *Error {
	return &Error{Code: code, Packet: t, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// ErrVersion is returned (wrapped) when a protocol level argument is neither V311 nor V5:
// a mistake in the calling program, not in a frame.
var ErrVersion = errors.New("codec: protocol version must be V311 (4) or V5 (5)")

func checkVersion(version byte) error {
	if version != V311 && version != V5 {
		return fmt.Errorf("%w, got %d", ErrVersion, version)
	}
	return nil
}

func itoa(n int) string { return strconv.Itoa(n) }

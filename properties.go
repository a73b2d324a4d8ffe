package mqtt

import (
	"math"
	"time"

	"github.com/robustmqtt/mqtt/codec"
)

// Properties are MQTT 5 properties: those of a message (Message.Properties,
// and the will's), those of the CONNECT the application chooses
// (Config.ConnectProperties), and those the broker sent in its CONNACK
// (Event.Connack). They need Config.Version 5. A nil pointer, a nil slice
// or an empty string is an absent property; Interval and Flag make the
// pointers (so does Go's new: new(uint32(60))).
//
// On a published message, the application sets:
//
//   - PayloadFormat: Flag(true) says the payload is UTF-8 text (the client
//     checks that it is); absent or Flag(false), bytes.
//   - MessageExpiry: the message's lifetime in seconds (Interval). The
//     broker discards it once expired, also for subscribers that are
//     offline; in the client's own queue it ends with ErrExpired. Absent:
//     it never expires.
//   - ContentType: a MIME type, such as "application/json".
//   - ResponseTopic and CorrelationData: request/response. The responder
//     publishes its answer to ResponseTopic (a topic name, no wildcards)
//     with the same CorrelationData.
//   - User: user properties, name-value pairs in order, repeats allowed;
//     brokers pass them on unaltered.
//
// A will (Config.Will) takes the same, and WillDelayInterval: how many
// seconds the broker waits before publishing it (Interval). TopicAlias and
// SubscriptionIdentifier are set by nobody but the client and the broker:
// a publish that sets them is refused with ErrInvalidMessage. An inbound
// message carries what its publisher set, and SubscriptionIdentifier when
// the broker matched it to a subscription made with one; a topic alias is
// already resolved into Message.Topic.
//
// Config.ConnectProperties documents the CONNECT properties, and Event the
// CONNACK's. Properties is codec.Properties: programs need not import
// package codec.
type Properties = codec.Properties

// UserProperty is one user property: a name-value pair in Properties.User.
type UserProperty = codec.UserProperty

// Interval returns d as the whole seconds of an MQTT 5 interval property
// (Properties.MessageExpiry, Properties.WillDelayInterval), rounded up, so
// that a message lives at least d: 1500 ms is 2 s. d beyond 2^32-1
// seconds (136 years) is 2^32-1 s; d of zero or less is 0, which expires a
// message at once (leave MessageExpiry nil for a message that does not
// expire).
func Interval(d time.Duration) *uint32 {
	var s uint32
	switch {
	case d <= 0:
	case d >= math.MaxUint32*time.Second:
		s = math.MaxUint32
	default:
		s = uint32((d + time.Second - 1) / time.Second)
	}
	return &s
}

// Flag returns a yes/no property's byte: 1 for true, 0 for false. It sets
// Properties.PayloadFormat (true: the payload is UTF-8),
// RequestProblemInfo and RequestResponseInfo.
func Flag(b bool) *byte {
	var v byte
	if b {
		v = 1
	}
	return &v
}

package mqtt

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
	"github.com/robustmqtt/mqtt/supervisor"
)

var (
	// ErrClosed is returned by calls made after the client stopped, and by
	// publishes, subscribes and acks that the stop cut short.
	ErrClosed = errors.New("mqtt: client is closed")

	// ErrInvalidConfig wraps every error Dial returns for a bad Config.
	ErrInvalidConfig = errors.New("mqtt: invalid config")

	// ErrInvalidMessage wraps every error for a message or subscription the
	// client refused before sending anything (bad topic or filter, QoS 3,
	// too large for the broker, ...).
	ErrInvalidMessage = errors.New("mqtt: invalid message")

	// ErrWithdrawn means the publish's (or subscribe's) ctx ended before its
	// packet was written to any connection: it was never sent and never will
	// be. The error also wraps ctx.Err().
	ErrWithdrawn = errors.New("mqtt: withdrawn before it was sent")

	// ErrOutcomeUnknown means the ctx ended, or the connection was lost,
	// after the packet was written: the broker may or may not have it. For
	// QoS 1/2 the client still completes the protocol flow in the
	// background. The error also wraps the cause (ctx.Err(), or the
	// connection's error). A QoS 2 publish also ends with it when the
	// broker lost the session after the PUBLISH was written: sent again as
	// a new message, it may be delivered twice (the error says so).
	ErrOutcomeUnknown = errors.New("mqtt: outcome unknown: the packet was sent but not acknowledged")

	// ErrGaveUp means the reconnect strategy gave up; Err returns it,
	// wrapping the last connection error.
	ErrGaveUp = supervisor.ErrGaveUp

	// ErrKeepAliveTimeout means the broker stopped answering: a connection
	// lost with it was declared dead by keepalive.
	ErrKeepAliveTimeout = conn.ErrKeepAliveTimeout
)

// ConnectError is a broker's refusal of CONNECT, with its reason code (bad
// credentials, not authorized, banned, server moved, ...). A
// backoff.Strategy can tell it from a network error with errors.As.
type ConnectError = conn.ConnectError

// ProtocolError means the broker sent something the protocol forbids; the
// client closed that connection and reconnects.
type ProtocolError = conn.ProtocolError

// DisconnectError means an MQTT 5 broker ended the connection with a
// DISCONNECT and a reason.
type DisconnectError = conn.DisconnectError

// PublishError is an MQTT 5 broker's negative acknowledgement of a QoS 1/2
// publish (PUBACK or PUBREC with a reason code of 0x80 or more).
type PublishError struct {
	Topic        string
	ReasonCode   codec.ReasonCode
	ReasonString string
}

func (e *PublishError) Error() string {
	s := fmt.Sprintf("mqtt: broker refused publish to %q: %s (reason code 0x%02X)", e.Topic, e.ReasonCode, byte(e.ReasonCode))
	if e.ReasonString != "" {
		s += ": " + e.ReasonString
	}
	return s
}

// SubscribeError reports the filters a broker refused in a SUBACK (or, in
// MQTT 5, an UNSUBACK). Filters the broker granted are in effect.
type SubscribeError struct {
	Refused      map[string]codec.ReasonCode // filter -> reason code
	ReasonString string
}

func (e *SubscribeError) Error() string {
	var b strings.Builder
	b.WriteString("mqtt: broker refused")
	for i, f := range slices.Sorted(maps.Keys(e.Refused)) {
		if i > 0 {
			b.WriteString(",")
		}
		code := e.Refused[f]
		fmt.Fprintf(&b, " %q (%s, 0x%02X)", f, code, byte(code))
	}
	if e.ReasonString != "" {
		b.WriteString(": " + e.ReasonString)
	}
	return b.String()
}

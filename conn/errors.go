package conn

import (
	"errors"
	"fmt"

	"github.com/robustmqtt/mqtt/codec"
)

// ErrKeepAliveTimeout means not a byte arrived from the broker, not even a
// PINGRESP, within the keepalive deadline: the link is treated as dead.
var ErrKeepAliveTimeout = errors.New("conn: no response from the broker within the keepalive deadline; the link is considered dead")

// ErrClosed is the error of a Conn that its owner closed.
var ErrClosed = errors.New("conn: connection closed by the client")

// ErrUnencodable is reported to a frame's Tracker when the writer could not
// encode its packet: nothing of it was written, and the connection goes on.
var ErrUnencodable = errors.New("conn: the packet cannot be encoded, so it was not sent")

// ErrServerClosed means the broker closed the connection: the end of the
// TCP stream, or over WebSocket a close frame of any status (its status
// and reason are in the error's message) or the end of the TCP stream
// under it.
var ErrServerClosed = errors.New("conn: the broker closed the connection")

// ConnectError is a CONNACK refusal: the broker answered the CONNECT with a
// reason code other than success. Strategies can tell a refusal (bad
// credentials, not authorized, banned, server moved) from a network error
// with errors.As.
type ConnectError struct {
	Server          string           // the server that refused
	ReasonCode      codec.ReasonCode // the CONNACK reason (3.1.1 return codes are mapped to their MQTT 5 equivalents)
	ReasonString    string           // MQTT 5 Reason String, if the broker sent one
	ServerReference string           // MQTT 5 Server Reference (for UseAnotherServer / ServerMoved)

	// Hint is what the client made of the refusal, and what to do, when
	// it can tell more than the reason code says; empty otherwise. An
	// MQTT 3.1.1 broker's answer to an MQTT 5 CONNECT carries one.
	Hint string
}

func (e *ConnectError) Error() string {
	s := fmt.Sprintf("conn: %s refused the connection: %s (reason code 0x%02X)", e.Server, e.ReasonCode, byte(e.ReasonCode))
	if e.ReasonString != "" {
		s += ": " + e.ReasonString
	}
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	if e.ServerReference != "" {
		s += "; the broker points to " + e.ServerReference
	}
	return s
}

// AuthError means MQTT 5 enhanced authentication failed on the client's
// side: its Authenticator returned an error, when it was asked to start
// an exchange, to answer the broker's challenge, or to verify the
// broker's final data (the broker failed to prove itself). A refusal by
// the broker is a *ConnectError (CONNACK) or a *DisconnectError
// (re-authentication) instead.
type AuthError struct {
	Server string // the server, as shown
	Method string // the Authentication Method
	Op     string // what the Authenticator was doing, in words
	Err    error  // the Authenticator's error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("conn: enhanced authentication (%s) with %s failed while %s: %v", e.Method, e.Server, e.Op, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// ProtocolError means the broker sent something the protocol forbids: a
// malformed frame, an absurd length, a packet a server may not send, an
// acknowledgement for a packet identifier that is not in use. The connection
// that received it is closed; the client reconnects.
type ProtocolError struct {
	Code   codec.ReasonCode // what the client answered (or would answer) in a v5 DISCONNECT
	Packet codec.PacketType // the offending packet's type, 0 if it could not be told
	Reason string           // what was wrong, in words
	Err    error            // the decoder's error, if the frame did not decode
}

func (e *ProtocolError) Error() string {
	if e.Err != nil {
		return "conn: protocol error from the broker: " + e.Err.Error()
	}
	if e.Packet != 0 {
		return fmt.Sprintf("conn: protocol error from the broker: %s: %s", e.Packet, e.Reason)
	}
	return "conn: protocol error from the broker: " + e.Reason
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// DisconnectError means an MQTT 5 broker ended the connection with a
// DISCONNECT packet, giving its reason.
type DisconnectError struct {
	ReasonCode      codec.ReasonCode
	ReasonString    string
	ServerReference string // set with UseAnotherServer / ServerMoved
}

func (e *DisconnectError) Error() string {
	s := fmt.Sprintf("conn: the broker disconnected: %s (reason code 0x%02X)", e.ReasonCode, byte(e.ReasonCode))
	if e.ReasonString != "" {
		s += ": " + e.ReasonString
	}
	if e.ServerReference != "" {
		s += "; the broker points to " + e.ServerReference
	}
	return s
}

// connectSent marks the error of a connection attempt whose CONNECT may
// have reached the broker (it was written, whole or in part) while no
// answer came back: the broker may have made or resumed the session.
type connectSent struct{ err error }

func (e *connectSent) Error() string { return e.err.Error() }
func (e *connectSent) Unwrap() error { return e.err }

// ConnectMayHaveArrived reports whether err, from Open or Establish, is
// that of an attempt whose CONNECT may have reached the broker without its
// CONNACK reaching the client (not a refusal, which creates no session,
// nor a failure before CONNECT was written). A broker that had lost the
// client's session may then have made a new one, and will say Session
// Present to the next CONNECT although nothing of the client's old
// session is in it: its subscriptions must be made again.
func ConnectMayHaveArrived(err error) bool {
	var e *connectSent
	return errors.As(err, &e)
}

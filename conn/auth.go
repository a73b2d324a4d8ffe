package conn

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/robustmqtt/mqtt/codec"
)

// Authenticator continues an MQTT 5 enhanced authentication (section 4.12)
// that the CONNECT's Authentication Method and Data started. The
// handshake calls Next for each AUTH (Continue authentication) the broker
// sends before CONNACK, and Done with the Authentication Data of a
// successful CONNACK. Its methods run on the goroutine that called Open or
// Establish, bounded by that ctx.
type Authenticator interface {
	// Next answers the broker's challenge with the data of the client's
	// AUTH (Continue authentication). Its error ends the connection.
	Next(ctx context.Context, challenge []byte) ([]byte, error)
	// Done checks the Authentication Data of the successful CONNACK (or
	// AUTH Success that ends a re-authentication): for SCRAM, the server's
	// signature. Its error ends the connection.
	Done(ctx context.Context, final []byte) error
}

// closedBeforeConnack adds to err, the error of a broker that closed the
// connection before it answered an MQTT 5 CONNECT at all, what may be
// the reason: a broker of MQTT 3.1.1 alone answers CONNACK 0x01 (see
// v311Refusal), but some cannot parse the CONNECT and close (RabbitMQ
// before 3.13, ActiveMQ 5).
func (c *Conn) closedBeforeConnack(err error) error {
	if c.version != codec.V5 || !errors.Is(err, ErrServerClosed) {
		return err
	}
	return fmt.Errorf("%w; a broker that does not speak MQTT 5 may close the connection instead of answering an MQTT 5 CONNECT (RabbitMQ before 3.13 and ActiveMQ 5 do): if so, use Version 4", err)
}

// awaitConnack reads the broker's answer to CONNECT: the first packet that
// is not an AUTH, after as many rounds of enhanced authentication as the
// broker asks for (each AUTH Continue authentication is answered with
// auth.Next's data). Its errors are final: decoded, checked, explained.
func (c *Conn) awaitConnack(ctx context.Context, auth Authenticator) (codec.Packet, error) {
	legacy, err := c.v311Refusal()
	if err != nil {
		return nil, c.closedBeforeConnack(c.readError(err, "waiting for CONNACK"))
	}
	if legacy {
		return nil, &ConnectError{Server: c.server, ReasonCode: codec.UnsupportedProtocolVersion,
			Hint: "the broker does not speak MQTT 5 (it answered with an MQTT 3.1.1 CONNACK refusing protocol level 5); use Version 4"}
	}
	for first := true; ; first = false {
		p, err := codec.ReadPacket(c.br, c.version, c.maxPacket)
		if err != nil {
			err = c.readError(err, "waiting for CONNACK")
			if first {
				err = c.closedBeforeConnack(err)
			}
			return nil, err
		}
		a, ok := p.(*codec.Auth)
		if !ok {
			return p, nil
		}
		if err := c.checkAuth(a); err != nil {
			return nil, err
		}
		if a.ReasonCode != codec.ContinueAuthentication {
			// Before CONNACK the broker continues or ends the exchange
			// with CONNACK; success in AUTH ends a re-authentication only
			// [MQTT-4.12.0-2].
			return nil, &ProtocolError{Code: codec.ProtocolError, Packet: codec.TypeAuth,
				Reason: fmt.Sprintf("AUTH with reason %s before CONNACK; only Continue authentication (0x18) may come before it [MQTT-4.12.0-2]", a.ReasonCode)}
		}
		data, err := auth.Next(ctx, AuthData(a.Properties))
		if err != nil {
			return nil, &AuthError{Server: c.server, Method: c.authMethod, Op: "answering the broker's challenge", Err: err}
		}
		frame, err := c.authFrame(codec.ContinueAuthentication, data)
		if err != nil {
			return nil, &AuthError{Server: c.server, Method: c.authMethod, Op: "answering the broker's challenge", Err: err}
		}
		if _, err := c.nc.Write(frame); err != nil {
			return nil, fmt.Errorf("conn: send AUTH to %s: %w", c.server, err)
		}
	}
}

// authFrame encodes the client's AUTH with code (Continue authentication
// or Re-authenticate) and data, under the connection's method
// [MQTT-4.12.0-5, MQTT-4.12.1-1].
func (c *Conn) authFrame(code codec.ReasonCode, data []byte) ([]byte, error) {
	if len(data) > math.MaxUint16 {
		return nil, fmt.Errorf("the Authentication Data is %d bytes; at most 65535 fit", len(data))
	}
	return AuthPacket(code, c.authMethod, data).AppendTo(nil, codec.V5)
}

// AuthPacket is the client's AUTH with code (Continue authentication or
// Re-authenticate), method and data. nil data is sent as none.
func AuthPacket(code codec.ReasonCode, method string, data []byte) *codec.Auth {
	return &codec.Auth{ReasonCode: code, Properties: &codec.Properties{AuthenticationMethod: method, AuthenticationData: data}}
}

// AuthData is the Authentication Data of props, which may be nil.
func AuthData(props *codec.Properties) []byte {
	if props == nil {
		return nil
	}
	return props.AuthenticationData
}

// AuthMethod is the Authentication Method the connection's CONNECT
// carried; empty when it uses no enhanced authentication.
func (c *Conn) AuthMethod() string { return c.authMethod }

// checkAuth checks an AUTH from the broker: only a client that named an
// Authentication Method in CONNECT may get one [MQTT-4.12.0-6], and it
// names the same method [MQTT-4.12.0-5].
func (c *Conn) checkAuth(a *codec.Auth) error {
	if c.authMethod == "" {
		return &ProtocolError{Code: codec.ProtocolError, Packet: codec.TypeAuth,
			Reason: "AUTH without an authentication method in CONNECT [MQTT-4.12.0-6]"}
	}
	var method string
	if a.Properties != nil {
		method = a.Properties.AuthenticationMethod
	}
	if method != c.authMethod {
		return &ProtocolError{Code: codec.ProtocolError, Packet: codec.TypeAuth,
			Reason: fmt.Sprintf("AUTH with Authentication Method %q, not %q as in CONNECT [MQTT-4.12.0-5]", method, c.authMethod)}
	}
	return nil
}

// checkConnackAuth checks the Authentication Method of a successful
// CONNACK: the method of CONNECT, or none when CONNECT had none
// [MQTT-4.12.0-5, MQTT-4.12.0-6].
func (c *Conn) checkConnackAuth(ack *codec.Connack) error {
	var method string
	if ack.Properties != nil {
		method = ack.Properties.AuthenticationMethod
	}
	switch {
	case method == c.authMethod:
		return nil
	case c.authMethod == "":
		return &ProtocolError{Code: codec.ProtocolError, Packet: codec.TypeConnack,
			Reason: fmt.Sprintf("CONNACK with Authentication Method %q to a CONNECT without one [MQTT-4.12.0-6]", method)}
	default:
		return &ProtocolError{Code: codec.ProtocolError, Packet: codec.TypeConnack,
			Reason: fmt.Sprintf("CONNACK with Authentication Method %q, not %q as in CONNECT [MQTT-4.12.0-5]", method, c.authMethod)}
	}
}

// goodbye writes a best-effort MQTT 5 DISCONNECT with code, within
// disconnectWriteBudget, while no writer runs or under wmu.
func (c *Conn) goodbye(code codec.ReasonCode) {
	frame, err := (&codec.Disconnect{ReasonCode: code}).AppendTo(nil, codec.V5)
	if err == nil {
		c.nc.SetWriteDeadline(time.Now().Add(disconnectWriteBudget))
		c.nc.Write(frame)
	}
}

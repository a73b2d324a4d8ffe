package mqtt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
)

// Authenticator runs an MQTT 5 enhanced authentication exchange (section
// 4.12) for Config.Auth: the client's side of a challenge and response
// such as SCRAM. The client calls its methods one at a time, never two at
// once, and in order within one exchange: Start, Next for each challenge,
// Done. An exchange may end after any step (the connection fails, a ctx
// ends, the broker refuses), and the next one begins with Start again.
type Authenticator interface {
	// Method is the Authentication Method, sent in CONNECT and in every
	// AUTH ("SCRAM-SHA-256", ...). It is asked once, by Dial or Start.
	Method() string
	// Start begins an exchange with server and returns the initial
	// Authentication Data (nil for none), sent in CONNECT or, for
	// Client.Reauthenticate, in the AUTH that starts a re-authentication.
	// server is the URL about to be dialed (from Config.Servers or a
	// redirect); in Reauthenticate, the one connected to, as Event.Server
	// shows it.
	Start(ctx context.Context, server string) ([]byte, error)
	// Next answers a challenge: the Authentication Data of the broker's
	// AUTH (Continue authentication). What it returns goes in the
	// client's AUTH (Continue authentication).
	Next(ctx context.Context, challenge []byte) ([]byte, error)
	// Done gets the Authentication Data that ends a successful exchange,
	// in CONNACK or in AUTH (Success) after a re-authentication, and
	// checks it: for SCRAM, the server's signature. An error fails the
	// connection: the broker did not prove itself.
	Done(ctx context.Context, final []byte) error
}

// AuthError means enhanced authentication (Config.Auth) failed on the
// client's side: the Authenticator's Start, Next or Done returned an error,
// which it wraps. A broker's refusal is a *ConnectError (CONNACK) or a
// *DisconnectError (during Reauthenticate) instead.
type AuthError = conn.AuthError

// Reauthenticate runs an enhanced authentication exchange again on the
// live connection (MQTT 5 section 4.12.1), with Config.Auth: for
// credentials that expire while the connection stays up. The client sends
// AUTH (Re-authenticate) with Start's data, answers each of the broker's
// challenges with Next's, and gives the broker's final data to Done.
// Publishes and subscribes go on meanwhile. It returns nil once the broker
// accepted (AUTH Success) and Done did too. Start, Next and Done run on
// the caller's goroutine, with ctx.
//
// Without Config.Auth, or while no connection is up, it fails at once:
// every new connection authenticates afresh anyway. An error of Start
// (an *AuthError) leaves the connection as it was. An error of Next or
// Done (an *AuthError too) ends the connection with a DISCONNECT
// [MQTT-4.12.1-2], and the client reconnects, authenticating afresh, as it
// does when the broker refuses: the error then says that the connection
// was lost and wraps the broker's *DisconnectError (0x87 Not authorized,
// ...). If ctx ends while the broker's answer is awaited, Reauthenticate
// returns an error wrapping ctx's cause; MQTT has no way to cancel an
// exchange, so the broker is left waiting for the client's next AUTH, and
// no other re-authentication can start on that connection. A call waits
// for one running on another goroutine, or for the exchange of a new
// connection, to end.
func (c *Client) Reauthenticate(ctx context.Context) error {
	auth := c.cfg.Auth
	if auth == nil {
		return errors.New("mqtt: Reauthenticate needs Config.Auth (MQTT 5 enhanced authentication)")
	}
	select {
	case c.authTurn <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("mqtt: reauthenticate: waiting for another authentication exchange to end: %w", context.Cause(ctx))
	case <-c.done:
		return ErrClosed
	}
	defer func() { <-c.authTurn }()

	begin := reauthBegin{reply: make(chan reauthBegun, 1)}
	select {
	case c.ctrl <- begin:
	case <-c.done:
		return ErrClosed
	}
	b := <-begin.reply // the session answers every request it takes
	if b.err != nil {
		return b.err
	}
	ex, method := b.ex, c.cfg.authMethod
	failed := func(op string, err error) error {
		return &AuthError{Server: b.server, Method: method, Op: op, Err: err}
	}
	data, err := authData(auth.Start(ctx, b.server))
	if err != nil {
		select {
		case c.ctrl <- reauthEnd{ex}: // nothing was sent: no exchange to finish
		case <-c.done:
		}
		return failed("starting a re-authentication", err)
	}
	code := codec.ReAuthenticate
	for {
		send := reauthSend{ex: ex, pkt: conn.AuthPacket(code, method, data), reply: make(chan error, 1)}
		select {
		case c.ctrl <- send:
		case <-c.done:
			return ErrClosed
		}
		if err := <-send.reply; err != nil {
			return err
		}
		var p *codec.Auth
		select {
		case p = <-ex.in:
		case <-ex.cn.Done():
			return fmt.Errorf("mqtt: reauthenticate: the connection was lost during the exchange: %w", ex.cn.Err())
		case <-ctx.Done():
			return fmt.Errorf("mqtt: reauthenticate: waiting for the broker's AUTH: %w", context.Cause(ctx))
		case <-c.done:
			return ErrClosed
		}
		if p.ReasonCode == codec.Success {
			if err := auth.Done(ctx, conn.AuthData(p.Properties)); err != nil {
				e := failed("verifying the broker's final data", err)
				ex.cn.Fail(e)
				return e
			}
			return nil
		}
		if data, err = authData(auth.Next(ctx, conn.AuthData(p.Properties))); err != nil {
			// The broker waits for an answer that will not come
			// [MQTT-4.12.1-2].
			e := failed("answering the broker's challenge", err)
			ex.cn.Fail(e)
			return e
		}
		code = codec.ContinueAuthentication
	}
}

// authData passes on what an Authenticator returned, refusing data that
// no AUTH or CONNECT can carry.
func authData(data []byte, err error) ([]byte, error) {
	if err == nil && len(data) > math.MaxUint16 {
		err = fmt.Errorf("the Authentication Data is %d bytes; at most 65535 fit", len(data))
	}
	return data, err
}

// takeAuthTurn waits until no other exchange of Config.Auth runs (a
// Reauthenticate), for a connection attempt, and returns the function that
// ends its turn. Without Config.Auth there is no turn to take. It waits at
// most ConnectTimeout: the attempt fails then.
func (c *Client) takeAuthTurn(ctx context.Context) (func(), error) {
	if c.authTurn == nil {
		return func() {}, nil
	}
	t := time.NewTimer(c.cfg.ConnectTimeout)
	defer t.Stop()
	select {
	case c.authTurn <- struct{}{}:
		return func() { <-c.authTurn }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-t.C:
		return nil, fmt.Errorf("mqtt: Client.Reauthenticate was still running Config.Auth after the connect timeout of %s", c.cfg.ConnectTimeout)
	}
}

// reauthExchange is one Reauthenticate on one connection. The session
// owns its fields but in, which carries the broker's answers to the
// caller.
type reauthExchange struct {
	cn       *conn.Conn
	in       chan *codec.Auth // 1-buffered: one answer per AUTH the client sent
	started  bool             // the first AUTH was queued
	awaiting bool             // an AUTH was sent and the broker's answer has not come
}

// reauthBegin asks the session for a new exchange on the current
// connection.
type reauthBegin struct{ reply chan reauthBegun }

type reauthBegun struct {
	ex     *reauthExchange
	server string
	err    error
}

// reauthSend asks the session to send the client's next AUTH of ex.
type reauthSend struct {
	ex    *reauthExchange
	pkt   *codec.Auth
	reply chan error
}

// reauthEnd gives back an exchange whose first AUTH was never sent.
type reauthEnd struct{ ex *reauthExchange }

// beginReauth answers a reauthBegin.
func (s *session) beginReauth(r reauthBegin) {
	var b reauthBegun
	switch {
	case s.phase != running:
		b.err = errDraining
	case s.cur == nil:
		b.err = errors.New("mqtt: reauthenticate: not connected; the next connection authenticates afresh")
	case s.reauth != nil:
		b.err = errors.New("mqtt: reauthenticate: an earlier re-authentication on this connection was left unfinished (its ctx ended while the broker's answer was awaited); the next connection authenticates afresh")
	default:
		s.reauth = &reauthExchange{cn: s.cur, in: make(chan *codec.Auth, 1)}
		b.ex, b.server = s.reauth, s.cur.Server()
	}
	r.reply <- b
}

// sendReauth answers a reauthSend: it queues the client's AUTH, if the
// exchange's connection is still the current one.
func (s *session) sendReauth(r reauthSend) {
	ex := r.ex
	if s.reauth != ex || s.cur != ex.cn {
		r.reply <- fmt.Errorf("mqtt: reauthenticate: the connection was lost during the exchange: %w", ex.cn.Err())
		return
	}
	ex.started, ex.awaiting = true, true
	if !s.send(conn.Frame{Packet: r.pkt}) {
		if s.phase >= goodbye {
			r.reply <- fmt.Errorf("%w: the client is disconnecting", ErrClosed)
		} else {
			r.reply <- fmt.Errorf("mqtt: reauthenticate: the connection was lost during the exchange: %w", ex.cn.Err())
		}
		return
	}
	r.reply <- nil
}

// endReauth takes back an exchange that never sent anything.
func (s *session) endReauth(r reauthEnd) {
	if s.reauth == r.ex && !r.ex.started {
		s.reauth = nil
	}
}

// onAuth takes the broker's AUTH: the answer to the client's AUTH of a
// re-authentication, and nothing else (conn checked its method and that
// it is not Re-authenticate, which only a client sends).
func (s *session) onAuth(p *codec.Auth) {
	ex := s.reauth
	if ex == nil || !ex.awaiting {
		s.protocolError(codec.ProtocolError, codec.TypeAuth,
			"AUTH (%s) while the client awaits none: a server sends AUTH after CONNACK only to answer the client's re-authentication [MQTT-4.12.1-1]", p.ReasonCode)
		return
	}
	ex.awaiting = false
	if p.ReasonCode == codec.Success {
		s.reauth = nil // the broker has ended the exchange
	}
	ex.in <- p // empty: the caller took the last answer before it sent the AUTH this one answers
}

package conn_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"testing/synctest"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
)

// echoAuth answers every challenge with "re:" and the challenge, and takes
// final data equal to want. It records what it was given.
type echoAuth struct {
	want       string
	nextErr    error
	challenges []string
	finals     []string
}

func (a *echoAuth) Next(_ context.Context, challenge []byte) ([]byte, error) {
	a.challenges = append(a.challenges, string(challenge))
	if a.nextErr != nil {
		return nil, a.nextErr
	}
	return append([]byte("re:"), challenge...), nil
}

func (a *echoAuth) Done(_ context.Context, final []byte) error {
	a.finals = append(a.finals, string(final))
	if string(final) != a.want {
		return fmt.Errorf("final data %q, want %q", final, a.want)
	}
	return nil
}

// handshakeAuth runs Establish with a CONNECT whose Authentication Method
// is method (none if empty) and auth, against a peer that runs script
// after reading the CONNECT. It returns the connection or the error, and
// what the client wrote after the script, decoded, up to the end.
func handshakeAuth(t *testing.T, method string, auth conn.Authenticator, script func(p *peer)) (*conn.Conn, error, []codec.Packet) {
	t.Helper()
	client, server := net.Pipe()
	defer server.Close()
	p := &peer{t: t, nc: server, br: bufio.NewReader(server), v: codec.V5}
	var rest []codec.Packet
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, ok := p.read().(*codec.Connect); !ok {
			t.Error("first frame is not CONNECT")
			return
		}
		script(p)
		// What else the client writes (a DISCONNECT after a failed
		// check), until it closes the connection.
		for {
			pk, err := codec.ReadPacket(p.br, codec.V5, 0)
			if err != nil {
				return
			}
			rest = append(rest, pk)
		}
	}()
	connect := &codec.Connect{Version: codec.V5, ClientID: "c", CleanStart: true}
	if method != "" {
		connect.Properties = &codec.Properties{AuthenticationMethod: method, AuthenticationData: []byte("first")}
	}
	c, err := conn.Establish(t.Context(), client, "pipe", conn.Config{Connect: connect, Auth: auth, Inbound: make(chan conn.Inbound, 4)})
	if c != nil {
		c.Close()
	}
	<-done
	return c, err, rest
}

func authPkt(code codec.ReasonCode, method, data string) *codec.Auth {
	return &codec.Auth{ReasonCode: code, Properties: &codec.Properties{AuthenticationMethod: method, AuthenticationData: []byte(data)}}
}

func connackAuth(method, data string) *codec.Connack {
	return &codec.Connack{Properties: &codec.Properties{AuthenticationMethod: method, AuthenticationData: []byte(data)}}
}

// The broker may continue the exchange any number of times before
// CONNACK: each AUTH (Continue authentication) is answered with Next's
// data, under the same method, and the successful CONNACK's data goes to
// Done.
func TestHandshakeEnhancedAuth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &echoAuth{want: "server-final"}
		var answers []*codec.Auth
		c, err, _ := handshakeAuth(t, "TOY", a, func(p *peer) {
			for _, ch := range []string{"one", "two", "three"} {
				p.write(authPkt(codec.ContinueAuthentication, "TOY", ch))
				answers = append(answers, p.read().(*codec.Auth))
			}
			p.write(connackAuth("TOY", "server-final"))
		})
		if err != nil {
			t.Fatalf("Establish: %v", err)
		}
		if got := fmt.Sprint(a.challenges, a.finals); got != "[one two three] [server-final]" {
			t.Fatalf("Next and Done got %s", got)
		}
		for i, ans := range answers {
			if ans.ReasonCode != codec.ContinueAuthentication || ans.Properties.AuthenticationMethod != "TOY" ||
				string(ans.Properties.AuthenticationData) != "re:"+a.challenges[i] {
				t.Fatalf("answer %d: %s %+v", i, ans.ReasonCode, ans.Properties)
			}
		}
		if c.AuthMethod() != "TOY" {
			t.Fatalf("AuthMethod = %q", c.AuthMethod())
		}
	})
}

// What the broker may not do during the exchange ends it with a
// *ProtocolError; the Authenticator's own error is an *AuthError; a
// refusal a *ConnectError. When the broker had accepted the client (Done
// failed), the client tells it why it leaves: DISCONNECT 0x80.
func TestHandshakeEnhancedAuthFailures(t *testing.T) {
	errNo := errors.New("no")
	cases := []struct {
		name    string
		method  string
		nextErr error
		script  func(p *peer)
		check   func(err error) bool
		goodbye bool
	}{
		{name: "AUTH to a client without a method", script: func(p *peer) {
			p.write(authPkt(codec.ContinueAuthentication, "TOY", "x"))
		}, check: isProtocol(codec.TypeAuth, "MQTT-4.12.0-6")},
		{name: "AUTH with another method", method: "TOY", script: func(p *peer) {
			p.write(authPkt(codec.ContinueAuthentication, "OTHER", "x"))
		}, check: isProtocol(codec.TypeAuth, "MQTT-4.12.0-5")},
		{name: "AUTH without a method", method: "TOY", script: func(p *peer) {
			p.write(&codec.Auth{ReasonCode: codec.ContinueAuthentication})
		}, check: isProtocol(codec.TypeAuth, "MQTT-4.12.0-5")},
		{name: "AUTH success before CONNACK", method: "TOY", script: func(p *peer) {
			p.write(authPkt(codec.Success, "TOY", "x"))
		}, check: isProtocol(codec.TypeAuth, "MQTT-4.12.0-2")},
		{name: "CONNACK without the method", method: "TOY", script: func(p *peer) {
			p.write(&codec.Connack{})
		}, check: isProtocol(codec.TypeConnack, "MQTT-4.12.0-5")},
		{name: "CONNACK with a method unasked", script: func(p *peer) {
			p.write(connackAuth("TOY", ""))
		}, check: isProtocol(codec.TypeConnack, "MQTT-4.12.0-6")},
		{name: "Next fails", method: "TOY", nextErr: errNo, script: func(p *peer) {
			p.write(authPkt(codec.ContinueAuthentication, "TOY", "x"))
		}, check: func(err error) bool {
			var ae *conn.AuthError
			return errors.As(err, &ae) && errors.Is(err, errNo) && ae.Method == "TOY"
		}},
		{name: "Done fails", method: "TOY", script: func(p *peer) {
			p.write(connackAuth("TOY", "forged"))
		}, check: func(err error) bool {
			var ae *conn.AuthError
			return errors.As(err, &ae) && ae.Op == "verifying the broker's final data"
		}, goodbye: true},
		{name: "refused", method: "TOY", script: func(p *peer) {
			p.write(&codec.Connack{ReasonCode: codec.BadAuthenticationMethod})
		}, check: func(err error) bool {
			var ce *conn.ConnectError
			return errors.As(err, &ce) && ce.ReasonCode == codec.BadAuthenticationMethod
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var auth conn.Authenticator
				if tc.method != "" {
					auth = &echoAuth{want: "server-final", nextErr: tc.nextErr}
				}
				c, err, rest := handshakeAuth(t, tc.method, auth, tc.script)
				if c != nil || !tc.check(err) {
					t.Fatalf("Establish = %v, %v", c, err)
				}
				t.Log(err)
				said := len(rest) == 1 && rest[0].(*codec.Disconnect).ReasonCode == codec.UnspecifiedError
				if said != tc.goodbye || len(rest) > 1 {
					t.Fatalf("after the failure the client wrote %v; want a DISCONNECT 0x80: %v", rest, tc.goodbye)
				}
			})
		})
	}
}

// isProtocol checks for a *ProtocolError about packet t citing clause.
func isProtocol(t codec.PacketType, clause string) func(error) bool {
	return func(err error) bool {
		var pe *conn.ProtocolError
		return errors.As(err, &pe) && pe.Packet == t && bytes.Contains([]byte(pe.Reason), []byte(clause))
	}
}

// A method in CONNECT and an Authenticator go together.
func TestEstablishNeedsAuthWithMethod(t *testing.T) {
	for _, tc := range []struct {
		method string
		auth   conn.Authenticator
	}{{"TOY", nil}, {"", &echoAuth{}}} {
		client, server := net.Pipe()
		connect := &codec.Connect{Version: codec.V5, ClientID: "c", CleanStart: true}
		if tc.method != "" {
			connect.Properties = &codec.Properties{AuthenticationMethod: tc.method}
		}
		_, err := conn.Establish(t.Context(), client, "pipe", conn.Config{Connect: connect, Auth: tc.auth})
		server.Close()
		if err == nil {
			t.Fatalf("method %q, Auth %v: Establish succeeded", tc.method, tc.auth)
		}
	}
}

// After CONNACK, the reader hands the broker's AUTH under the method on
// (the session judges whether a re-authentication awaits it) and refuses
// Re-authenticate, which only a client sends, and another method.
func TestReaderScreensAuth(t *testing.T) {
	for _, tc := range []struct {
		name string
		send *codec.Auth
		ok   bool
	}{
		{"continue", authPkt(codec.ContinueAuthentication, "TOY", "x"), true},
		{"success", authPkt(codec.Success, "TOY", "y"), true},
		{"re-authenticate", authPkt(codec.ReAuthenticate, "TOY", "z"), false},
		{"another method", authPkt(codec.Success, "OTHER", "y"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				client, server := net.Pipe()
				defer server.Close()
				p := &peer{t: t, nc: server, br: bufio.NewReader(server), v: codec.V5}
				go func() {
					p.read()
					p.write(connackAuth("TOY", "final"))
				}()
				inbound := make(chan conn.Inbound, 1)
				c, err := conn.Establish(t.Context(), client, "pipe", conn.Config{
					Connect: &codec.Connect{Version: codec.V5, ClientID: "c", CleanStart: true,
						Properties: &codec.Properties{AuthenticationMethod: "TOY"}},
					Auth: &echoAuth{want: "final"}, Inbound: inbound,
				})
				if err != nil {
					t.Fatal(err)
				}
				errs := run(c)
				go func() {
					for { // the DISCONNECT of a protocol error
						if _, err := codec.ReadPacket(p.br, codec.V5, 0); err != nil {
							return
						}
					}
				}()
				p.write(tc.send)
				if tc.ok {
					in := <-inbound
					if a, ok := in.Packet.(*codec.Auth); !ok || a.ReasonCode != tc.send.ReasonCode {
						t.Fatalf("handed on %+v", in.Packet)
					}
					c.Close()
				}
				err = <-errs
				<-errs
				var pe *conn.ProtocolError
				if !tc.ok && (!errors.As(err, &pe) || pe.Packet != codec.TypeAuth) {
					t.Fatalf("loop ended with %v, want a *ProtocolError about AUTH", err)
				}
			})
		})
	}
}

package mqtt_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// A toy SCRAM-SHA-256 (RFC 5802's messages, without channel binding or
// SASLprep), enough to run an MQTT 5 enhanced authentication exchange of
// four messages: client-first (in CONNECT), server-first (AUTH Continue),
// client-final with the proof of the password (AUTH Continue), and
// server-final with the server's signature (CONNACK), which proves that
// the server knows the password too.
const scramMethod = "SCRAM-SHA-256"

func hmacSum(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// saltedPassword is PBKDF2-HMAC-SHA256 of one block (RFC 5802's Hi).
func saltedPassword(password string, salt []byte, iterations int) []byte {
	u := hmacSum([]byte(password), string(binary.BigEndian.AppendUint32(append([]byte{}, salt...), 1)))
	out := append([]byte{}, u...)
	for range iterations - 1 {
		u = hmacSum([]byte(password), string(u))
		for i := range out {
			out[i] ^= u[i]
		}
	}
	return out
}

// scramKeys derives what both sides compute from the salted password.
func scramKeys(salted []byte) (clientKey, storedKey, serverKey []byte) {
	clientKey = hmacSum(salted, "Client Key")
	sum := sha256.Sum256(clientKey)
	return clientKey, sum[:], hmacSum(salted, "Server Key")
}

func attrs(msg string) map[string]string {
	m := make(map[string]string)
	for f := range strings.SplitSeq(msg, ",") {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}

var b64 = base64.StdEncoding

// scramClient is the mqtt.Authenticator of the tests. Its nonce is a
// counter, so that each exchange is told apart.
type scramClient struct {
	user, password string

	mu      sync.Mutex
	calls   []string // "start server", "next", "done", in order
	exN     int
	nonce   string
	bare    string // client-first-message-bare
	salted  []byte
	authMsg string
}

func (c *scramClient) Method() string { return scramMethod }

func (c *scramClient) Start(_ context.Context, server string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "start "+server)
	c.exN++
	c.nonce = "cnonce" + strconv.Itoa(c.exN)
	c.bare = "n=" + c.user + ",r=" + c.nonce
	c.salted = nil
	return []byte("n,," + c.bare), nil
}

func (c *scramClient) Next(_ context.Context, challenge []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "next")
	a := attrs(string(challenge))
	salt, err := b64.DecodeString(a["s"])
	iterations, _ := strconv.Atoi(a["i"])
	if err != nil || iterations < 1 || !strings.HasPrefix(a["r"], c.nonce) || len(a["r"]) == len(c.nonce) {
		return nil, fmt.Errorf("bad server-first-message %q", challenge)
	}
	c.salted = saltedPassword(c.password, salt, iterations)
	clientKey, storedKey, _ := scramKeys(c.salted)
	withoutProof := "c=biws,r=" + a["r"]
	c.authMsg = c.bare + "," + string(challenge) + "," + withoutProof
	proof := hmacSum(storedKey, c.authMsg)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	return []byte(withoutProof + ",p=" + b64.EncodeToString(proof)), nil
}

var errServerSignature = errors.New("the server's signature does not match: it does not know the password")

func (c *scramClient) Done(_ context.Context, final []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "done")
	if c.salted == nil {
		return errors.New("the exchange ended before the server's challenge")
	}
	_, _, serverKey := scramKeys(c.salted)
	if !hmac.Equal([]byte(final), []byte("v="+b64.EncodeToString(hmacSum(serverKey, c.authMsg)))) {
		return errServerSignature
	}
	return nil
}

func (c *scramClient) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.calls, "; ")
}

// scramServer is the broker's side, for a scripted broker.
type scramServer struct {
	user, password string
	salt           []byte
	iterations     int
	forge          bool // sign with the wrong key, as an impostor would

	bare, first string
	nonce       string
}

// challenge answers a client-first-message with a server-first-message.
func (s *scramServer) challenge(clientFirst []byte) ([]byte, error) {
	bare, ok := strings.CutPrefix(string(clientFirst), "n,,")
	a := attrs(bare)
	if !ok || a["n"] != s.user || a["r"] == "" {
		return nil, fmt.Errorf("bad client-first-message %q", clientFirst)
	}
	s.bare, s.nonce = bare, a["r"]+"snonce"
	s.first = "r=" + s.nonce + ",s=" + b64.EncodeToString(s.salt) + ",i=" + strconv.Itoa(s.iterations)
	return []byte(s.first), nil
}

// verify checks a client-final-message and returns the server-final one.
func (s *scramServer) verify(clientFinal []byte) ([]byte, error) {
	withoutProof, proofB64, ok := strings.Cut(string(clientFinal), ",p=")
	proof, err := b64.DecodeString(proofB64)
	if !ok || err != nil || attrs(withoutProof)["r"] != s.nonce {
		return nil, fmt.Errorf("bad client-final-message %q", clientFinal)
	}
	clientKey, storedKey, serverKey := scramKeys(saltedPassword(s.password, s.salt, s.iterations))
	authMsg := s.bare + "," + s.first + "," + withoutProof
	sig := hmacSum(storedKey, authMsg)
	for i := range proof {
		proof[i] ^= sig[i]
	}
	if !hmac.Equal(proof, clientKey) {
		return nil, errors.New("wrong password")
	}
	if s.forge {
		serverKey = hmacSum([]byte("not the password"), "Server Key")
	}
	return []byte("v=" + b64.EncodeToString(hmacSum(serverKey, authMsg))), nil
}

func newScramServer(password string) *scramServer {
	return &scramServer{user: "device-7", password: password, salt: []byte("salt-of-device-7"), iterations: 4096}
}

// authPacket is an AUTH of the broker's, under the SCRAM method.
func authPacket(code codec.ReasonCode, data []byte) *codec.Auth {
	return &codec.Auth{ReasonCode: code, Properties: &codec.Properties{AuthenticationMethod: scramMethod, AuthenticationData: data}}
}

// scramConnack is the CONNACK that ends a successful exchange.
func scramConnack(final []byte) *codec.Connack {
	return &codec.Connack{Properties: &codec.Properties{AuthenticationMethod: scramMethod, AuthenticationData: final}}
}

// serveScram runs the broker's side of an exchange that the client's
// first message (in CONNECT or AUTH Re-authenticate) opened, up to the
// server-final-message, which it returns. It fails the test if the
// client's messages are not what the protocol wants.
func serveScram(t *testing.T, sc *mqtttest.ScriptedConn, srv *scramServer, clientFirst []byte) ([]byte, error) {
	t.Helper()
	first, err := srv.challenge(clientFirst)
	if err != nil {
		t.Fatal(err)
	}
	send(t, sc, 5, authPacket(codec.ContinueAuthentication, first))
	a := nextOf[*codec.Auth](t, sc, 5)
	if a.ReasonCode != codec.ContinueAuthentication || a.Properties == nil || a.Properties.AuthenticationMethod != scramMethod {
		t.Fatalf("client answered the challenge with AUTH %s %+v, want Continue authentication under %s [MQTT-4.12.0-3, MQTT-4.12.0-5]",
			a.ReasonCode, a.Properties, scramMethod)
	}
	return srv.verify(a.Properties.AuthenticationData)
}

// scramConfig is an MQTT 5 client of sb authenticating with cl.
func scramConfig(sb *mqtttest.ScriptedBroker, cl *scramClient) mqtt.Config {
	return mqtt.Config{Servers: []string{sb.URL()}, ClientID: "device-7", Version: 5, Auth: cl}
}

// Enhanced authentication with a SCRAM-style exchange against a broker
// scripted to implement its side: CONNECT carries the method and the
// client-first-message, the broker's AUTH challenge is answered with the
// proof, and the server's signature in CONNACK is verified by Done. Then
// Reauthenticate runs a new exchange on the live connection, with
// publishes going on meanwhile, ending in AUTH Success.
func TestEnhancedAuthSCRAM(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	sb.SetConnack([]byte{}) // the test answers: AUTH first
	cl := &scramClient{user: "device-7", password: "pencil"}
	c := start(t, scramConfig(sb, cl))
	sc := scripted(t, sb)
	connect := connectOf(t, sc, 5)
	if connect.Properties == nil || connect.Properties.AuthenticationMethod != scramMethod {
		t.Fatalf("CONNECT properties %+v, want the Authentication Method %s", connect.Properties, scramMethod)
	}
	srv := newScramServer("pencil")
	final, err := serveScram(t, sc, srv, connect.Properties.AuthenticationData)
	if err != nil {
		t.Fatalf("the broker refused the proof: %v", err)
	}
	send(t, sc, 5, scramConnack(final))
	if err := c.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if got, want := cl.log(), "start "+sb.URL()+"; next; done"; got != want {
		t.Fatalf("Authenticator calls: %s, want %s", got, want)
	}

	// Re-authentication, with a publish in the middle of it.
	res := make(chan error, 1)
	go func() { res <- c.Reauthenticate(testCtx(t)) }()
	a := nextOf[*codec.Auth](t, sc, 5)
	if a.ReasonCode != codec.ReAuthenticate || a.Properties.AuthenticationMethod != scramMethod ||
		!strings.Contains(string(a.Properties.AuthenticationData), "r=cnonce2") {
		t.Fatalf("re-authentication starts with AUTH %s %+v, want Re-authenticate under %s with a new nonce [MQTT-4.12.1-1]",
			a.ReasonCode, a.Properties, scramMethod)
	}
	if err := c.Publish(testCtx(t), mqtt.Message{Topic: "during/reauth", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if p := nextOf[*codec.Publish](t, sc, 5); p.Topic != "during/reauth" {
		t.Fatalf("published %q", p.Topic)
	}
	final, err = serveScram(t, sc, srv, a.Properties.AuthenticationData)
	if err != nil {
		t.Fatalf("the broker refused the proof: %v", err)
	}
	select {
	case err := <-res:
		t.Fatalf("Reauthenticate returned %v before the broker's AUTH Success", err)
	default:
	}
	send(t, sc, 5, authPacket(codec.Success, final))
	if err := <-res; err != nil {
		t.Fatalf("Reauthenticate: %v", err)
	}
	if got := cl.log(); !strings.HasSuffix(got, "; done; start "+sb.URL()+"; next; done") {
		t.Fatalf("Authenticator calls: %s", got)
	}
	// An AUTH nobody asked for now is a protocol error [MQTT-4.12.1-1].
	send(t, sc, 5, authPacket(codec.Success, final))
	toldWhy(t, sc, codec.ProtocolError)
	protocolLoss(t, c, codec.ProtocolError)
}

// The broker refuses a wrong password in CONNACK: a *ConnectError, and
// the client retries per its strategy. A broker that does not know the
// password (its signature in CONNACK is wrong) is refused by the client:
// the attempt fails with an *AuthError wrapping Done's error, and the
// broker, which had accepted the connection, is told why in a DISCONNECT.
func TestEnhancedAuthFailures(t *testing.T) {
	t.Run("wrong password", func(t *testing.T) {
		sb := mqtttest.NewScriptedBroker(t)
		sb.SetConnack([]byte{})
		c := start(t, scramConfig(sb, &scramClient{user: "device-7", password: "crayon"}))
		sc := scripted(t, sb)
		if _, err := serveScram(t, sc, newScramServer("pencil"), connectOf(t, sc, 5).Properties.AuthenticationData); err == nil {
			t.Fatal("the wrong password was taken")
		}
		send(t, sc, 5, &codec.Connack{ReasonCode: codec.NotAuthorized})
		e := waitEvent(t, c, mqtt.Reconnecting)
		var ce *mqtt.ConnectError
		if !errors.As(e.Err, &ce) || ce.ReasonCode != codec.NotAuthorized {
			t.Fatalf("Reconnecting after %v, want a *ConnectError 0x87", e.Err)
		}
	})
	t.Run("impostor", func(t *testing.T) {
		sb := mqtttest.NewScriptedBroker(t)
		sb.SetConnack([]byte{})
		cl := &scramClient{user: "device-7", password: "pencil"}
		c := start(t, scramConfig(sb, cl))
		sc := scripted(t, sb)
		srv := newScramServer("pencil")
		srv.forge = true
		final, err := serveScram(t, sc, srv, connectOf(t, sc, 5).Properties.AuthenticationData)
		if err != nil {
			t.Fatal(err)
		}
		send(t, sc, 5, scramConnack(final))
		if d := nextOf[*codec.Disconnect](t, sc, 5); d.ReasonCode != codec.UnspecifiedError {
			t.Fatalf("DISCONNECT %s, want 0x80 Unspecified error", d.ReasonCode)
		}
		e := waitEvent(t, c, mqtt.Reconnecting)
		var ae *mqtt.AuthError
		if !errors.As(e.Err, &ae) || !errors.Is(e.Err, errServerSignature) || ae.Method != scramMethod {
			t.Fatalf("Reconnecting after %v, want an *AuthError wrapping the signature's", e.Err)
		}
		if st := c.Stats(); st.Connections.Succeeded != 0 {
			t.Fatalf("Stats: %d connections succeeded, want 0", st.Connections.Succeeded)
		}
	})
}

// A broker that refuses a re-authentication disconnects: Reauthenticate's
// error says the connection was lost and wraps the broker's
// *DisconnectError, and the client reconnects with a new exchange.
func TestReauthenticateRefused(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	sb.SetConnack([]byte{})
	cl := &scramClient{user: "device-7", password: "pencil"}
	c := start(t, scramConfig(sb, cl))
	sc := scripted(t, sb)
	srv := newScramServer("pencil")
	final, _ := serveScram(t, sc, srv, connectOf(t, sc, 5).Properties.AuthenticationData)
	send(t, sc, 5, scramConnack(final))
	if err := c.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() { res <- c.Reauthenticate(testCtx(t)) }()
	nextOf[*codec.Auth](t, sc, 5)
	send(t, sc, 5, &codec.Disconnect{ReasonCode: codec.NotAuthorized})
	err := <-res
	var de *mqtt.DisconnectError
	if !errors.As(err, &de) || de.ReasonCode != codec.NotAuthorized {
		t.Fatalf("Reauthenticate = %v, want an error wrapping a *DisconnectError 0x87", err)
	}
	sc2 := scripted(t, sb)
	if d := connectOf(t, sc2, 5).Properties.AuthenticationData; !strings.Contains(string(d), "r=cnonce3") {
		t.Fatalf("the next CONNECT carries %q, want a new exchange", d)
	}
}

// failingAuth is a scramClient whose Start or Next fails on demand.
type failingAuth struct {
	*scramClient
	failStart, failNext atomic.Bool
}

var errDeviceKey = errors.New("the device key is locked")

func (f *failingAuth) Start(ctx context.Context, server string) ([]byte, error) {
	if f.failStart.Load() {
		return nil, errDeviceKey
	}
	return f.scramClient.Start(ctx, server)
}

func (f *failingAuth) Next(ctx context.Context, challenge []byte) ([]byte, error) {
	if f.failNext.Load() {
		return nil, errDeviceKey
	}
	return f.scramClient.Next(ctx, challenge)
}

// Reauthenticate fails at once without Config.Auth and while
// disconnected. An error of Start leaves the connection as it was, and
// nothing is sent; ctx ending while the broker's answer is awaited
// returns, leaves the connection up and the exchange unfinished, so that
// no other can start on it; an error of Next ends the connection with a
// DISCONNECT.
func TestReauthenticateErrors(t *testing.T) {
	away := []string{"tcp://127.0.0.1:1"} // nothing listens: never connected
	plain := start(t, mqtt.Config{Servers: away, CleanStart: true, Version: 5})
	if err := plain.Reauthenticate(testCtx(t)); err == nil || !strings.Contains(err.Error(), "Config.Auth") {
		t.Fatalf("Reauthenticate without Config.Auth = %v", err)
	}
	offline := start(t, mqtt.Config{Servers: away, CleanStart: true, Version: 5, Auth: &scramClient{user: "device-7"}})
	if err := offline.Reauthenticate(testCtx(t)); err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Fatalf("Reauthenticate while disconnected = %v", err)
	}

	sb := mqtttest.NewScriptedBroker(t)
	sb.SetConnack([]byte{})
	fa := &failingAuth{scramClient: &scramClient{user: "device-7", password: "pencil"}}
	c := start(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "device-7", Version: 5, Auth: fa})
	sc := scripted(t, sb)
	srv := newScramServer("pencil")
	final, _ := serveScram(t, sc, srv, connectOf(t, sc, 5).Properties.AuthenticationData)
	send(t, sc, 5, scramConnack(final))
	if err := c.WaitConnected(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	stillUp := func(marker string) {
		t.Helper()
		if err := c.Publish(testCtx(t), mqtt.Message{Topic: marker}); err != nil {
			t.Fatal(err)
		}
		if p := nextOf[*codec.Publish](t, sc, 5); p.Topic != marker {
			t.Fatalf("the broker got %q first, want %q", p.Topic, marker)
		}
	}

	fa.failStart.Store(true)
	err := c.Reauthenticate(testCtx(t))
	var ae *mqtt.AuthError
	if !errors.As(err, &ae) || !errors.Is(err, errDeviceKey) {
		t.Fatalf("Reauthenticate with a failing Start = %v, want an *AuthError wrapping its error", err)
	}
	fa.failStart.Store(false)
	stillUp("after/start/failed")

	ctx, cancel := context.WithCancel(testCtx(t))
	res := make(chan error, 1)
	go func() { res <- c.Reauthenticate(ctx) }()
	nextOf[*codec.Auth](t, sc, 5) // and no answer
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("Reauthenticate whose ctx ended = %v", err)
	}
	stillUp("after/ctx/ended")
	if err := c.Reauthenticate(testCtx(t)); err == nil || !strings.Contains(err.Error(), "unfinished") {
		t.Fatalf("Reauthenticate after an abandoned one = %v", err)
	}

	// A new connection, and an exchange whose Next fails.
	sc.Close()
	waitEvent(t, c, mqtt.ConnectionLost)
	sc = scripted(t, sb)
	final, _ = serveScram(t, sc, srv, connectOf(t, sc, 5).Properties.AuthenticationData)
	send(t, sc, 5, scramConnack(final))
	waitEvent(t, c, mqtt.Connected)
	go func() { res <- c.Reauthenticate(testCtx(t)) }()
	a := nextOf[*codec.Auth](t, sc, 5)
	first, _ := srv.challenge(a.Properties.AuthenticationData)
	fa.failNext.Store(true)
	send(t, sc, 5, authPacket(codec.ContinueAuthentication, first))
	if err := <-res; !errors.As(err, &ae) || !errors.Is(err, errDeviceKey) {
		t.Fatalf("Reauthenticate with a failing Next = %v, want an *AuthError wrapping its error", err)
	}
	toldWhy(t, sc, codec.UnspecifiedError)
	if e := waitEvent(t, c, mqtt.ConnectionLost); !errors.As(e.Err, &ae) {
		t.Fatalf("ConnectionLost after %v, want the *AuthError", e.Err)
	}
}

// Enhanced authentication is MQTT 5's, and needs a method.
func TestAuthConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  mqtt.Config
		want string
	}{
		{mqtt.Config{Auth: &scramClient{}}, "needs MQTT 5"},
		{mqtt.Config{Version: 5, Auth: emptyMethod{&scramClient{}}}, "Method() is empty"},
		{mqtt.Config{Version: 5, ConnectProperties: &mqtt.Properties{AuthenticationMethod: scramMethod}}, "set Config.Auth"},
		{mqtt.Config{TopicAliases: 10}, "TopicAliases needs MQTT 5"},
		{mqtt.Config{Version: 5, TopicAliases: -1}, "out of range"},
		{mqtt.Config{Version: 5, TopicAliases: 65536}, "out of range"},
	} {
		tc.cfg.Servers, tc.cfg.CleanStart = []string{"tcp://127.0.0.1:1"}, true
		c, err := mqtt.Start(tc.cfg)
		if c != nil {
			c.Close()
		}
		if !errors.Is(err, mqtt.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%+v) = %v, want ErrInvalidConfig saying %q", tc.cfg, err, tc.want)
		}
	}
}

type emptyMethod struct{ *scramClient }

func (emptyMethod) Method() string { return "" }

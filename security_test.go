package mqtt_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// The security review's issue "No downgrade, no leak": a broker's MQTT 5
// redirect (Server Reference) never leaves TLS and goes only to hosts the
// user allowed; a password in a server URL shows nowhere.

// tlsPeer is a scripted MQTT server behind TLS on loopback: it reads each
// connection's CONNECT and hands the connection to script with its number
// (1 for the first), then waits for the client to hang up.
type tlsPeer struct {
	url      string
	accepted atomic.Int32 // TCP connections accepted
	connects chan int     // the number of each connection, once its CONNECT is read
}

func startTLSPeer(t *testing.T, cert tls.Certificate, script func(n int, nc net.Conn)) *tlsPeer {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	p := &tlsPeer{url: "tls://" + ln.Addr().String(), connects: make(chan int, 100)}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  = map[net.Conn]bool{}
		closed bool
	)
	wg.Go(func() {
		for n := 1; ; n++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			mu.Lock()
			if closed {
				mu.Unlock()
				nc.Close()
				return
			}
			conns[nc] = true
			mu.Unlock()
			wg.Go(func() {
				defer nc.Close()
				r := bufio.NewReader(nc)
				if _, err := readMQTTFrame(r); err != nil {
					return
				}
				select {
				case p.connects <- n:
				default:
				}
				script(n, nc)
				// Until the client hangs up, or says DISCONNECT, after
				// which brokers close.
				for {
					f, err := readMQTTFrame(r)
					if err != nil || f[0]>>4 == 14 {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return p
}

// waitConnect waits until the peer has read the CONNECT of its connection n.
func (p *tlsPeer) waitConnect(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case got := <-p.connects:
			if got >= n {
				return
			}
		case <-deadline:
			t.Fatalf("the TLS peer saw no CONNECT on connection %d", n)
		}
	}
}

// readMQTTFrame reads one MQTT frame: fixed header, remaining length, body.
func readMQTTFrame(r *bufio.Reader) ([]byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	length, shift := 0, 0
	for i := 0; ; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		length |= int(b&0x7f) << shift
		shift += 7
		if b&0x80 == 0 {
			break
		}
		if i == 3 {
			return nil, errors.New("malformed remaining length")
		}
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return append([]byte{first}, body...), nil
}

// countingListener accepts plain TCP connections on loopback, counts them
// and hangs up at once.
type countingListener struct {
	addr     string
	accepted atomic.Int32
}

func listenCounting(t *testing.T) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &countingListener{addr: ln.Addr().String()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepted.Add(1) // before the client can see the hang-up
			nc.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return l
}

// logCapture is an io.Writer for a slog handler, safe for concurrent use.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logCapture) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

func (l *logCapture) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logCapture) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// A tls:// broker that refuses the CONNECT with "use another server" and a
// reference without TLS is not followed, even when RedirectHosts allows
// any host: the plaintext listener sees no connection (before the fix it
// got the CONNECT, password and all), the next attempt goes to the
// configured server, the refusal is logged with its reason, and Stats
// counts no redirect.
func TestRedirectNeverLeavesTLS(t *testing.T) {
	ca := mqtttest.NewCA(t)
	cert := ca.Issue(t, "127.0.0.1")
	for _, tc := range []struct {
		name  string
		ref   func(plain string) string
		hosts []string // Config.RedirectHosts
	}{
		{"tcp", func(a string) string { return "tcp://" + a }, nil},
		{"mqtt", func(a string) string { return "mqtt://" + a }, nil},
		{"ws", func(a string) string { return "ws://" + a + "/mqtt" }, nil},
		{"tcp with any host allowed", func(a string) string { return "tcp://" + a }, []string{"*"}},
		{"a list, the first without TLS", func(a string) string { return "TCP://" + a + " tls://" + a }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain := listenCounting(t)
			ref := tc.ref(plain.addr)
			refuse := frame(t, 5, &codec.Connack{ReasonCode: codec.UseAnotherServer,
				Properties: &codec.Properties{ServerReference: ref}})
			accept := frame(t, 5, &codec.Connack{})
			peer := startTLSPeer(t, cert, func(n int, nc net.Conn) {
				if n == 1 {
					nc.Write(refuse)
				} else {
					nc.Write(accept)
				}
			})
			var logs logCapture
			c := dial(t, mqtt.Config{
				Servers:       []string{peer.url},
				RedirectHosts: tc.hosts,
				ClientID:      "no-downgrade",
				Version:       5,
				TLS:           &tls.Config{RootCAs: ca.Pool()},
				Username:      "device",
				Password:      []byte("s3cret"),
				Logger:        logs.logger(),
			})
			// Dial returned: the second attempt, to the TLS peer, is up. A
			// followed redirect would have come between the two and been
			// accepted before its attempt could fail.
			if e := waitEvent(t, c, mqtt.Connected); e.Server != peer.url {
				t.Fatalf("connected to %s, want %s", e.Server, peer.url)
			}
			if n := plain.accepted.Load(); n != 0 {
				t.Fatalf("the plaintext listener at %s accepted %d connections; want none", ref, n)
			}
			st := c.Stats().Connections
			if st.Redirected != 0 || st.Refused != 1 || st.Attempts != 2 {
				t.Errorf("connection stats %+v: want 2 attempts, 1 refusal, no redirect", st)
			}
			log := logs.String()
			if !strings.Contains(log, "not following the broker's redirect") || !strings.Contains(log, "would leave TLS") {
				t.Errorf("the log does not say the redirect was refused for leaving TLS:\n%s", log)
			}
		})
	}
}

// A redirect is followed to the hosts of Config.Servers, on any port, and
// to those Config.RedirectHosts allows; to any other host it is refused:
// logged, not dialed, and the next attempt goes to Config.Servers.
func TestRedirectHosts(t *testing.T) {
	ca := mqtttest.NewCA(t)
	cert := ca.Issue(t, "127.0.0.1", "localhost")
	// localhost is the target's address with the host name localhost.
	localhost := func(scheme string) func(string) string {
		return func(addr string) string {
			_, port, _ := net.SplitHostPort(addr)
			return scheme + "localhost:" + port
		}
	}
	for _, tc := range []struct {
		name   string
		ref    func(target string) string // target is "127.0.0.1:port"
		hosts  []string                   // Config.RedirectHosts; %s is the target's port
		follow bool
	}{
		{"same host, other port", func(a string) string { return "tls://" + a }, nil, true},
		{"same host, no scheme", func(a string) string { return a }, nil, true},
		{"same host, tls to mqtts", func(a string) string { return "mqtts://" + a }, nil, true},
		{"other host", localhost("tls://"), nil, false},
		{"other host, no scheme", localhost(""), nil, false},
		{"other host allowed", localhost("tls://"), []string{"broker.example", "LOCALHOST"}, true},
		{"other host allowed on its port", localhost("tls://"), []string{"localhost:%s"}, true},
		{"other host allowed on another port", localhost("tls://"), []string{"localhost:1"}, false},
		{"other host, only its subdomains allowed", localhost("tls://"), []string{"*.localhost"}, false},
		{"any host allowed", localhost("tls://"), []string{"*"}, true},
		{"credentials in the reference", func(a string) string { return "tls://u:p@" + a }, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			accept := frame(t, 5, &codec.Connack{})
			target := startTLSPeer(t, cert, func(_ int, nc net.Conn) { nc.Write(accept) })
			addr := strings.TrimPrefix(target.url, "tls://")
			_, port, _ := net.SplitHostPort(addr)
			refuse := frame(t, 5, &codec.Connack{ReasonCode: codec.UseAnotherServer,
				Properties: &codec.Properties{ServerReference: tc.ref(addr)}})
			origin := startTLSPeer(t, cert, func(n int, nc net.Conn) {
				if n == 1 {
					nc.Write(refuse)
				} else {
					nc.Write(accept)
				}
			})
			var hosts []string
			for _, h := range tc.hosts {
				hosts = append(hosts, strings.ReplaceAll(h, "%s", port))
			}
			var logs logCapture
			c := dial(t, mqtt.Config{
				Servers:       []string{origin.url},
				RedirectHosts: hosts,
				ClientID:      "hosts",
				Version:       5,
				TLS:           &tls.Config{RootCAs: ca.Pool()},
				Logger:        logs.logger(),
			})
			e := waitEvent(t, c, mqtt.Connected)
			st := c.Stats().Connections
			if tc.follow {
				if !strings.HasSuffix(e.Server, ":"+port) || target.accepted.Load() != 1 {
					t.Fatalf("connected to %s (the target accepted %d connections); want the reference %s followed",
						e.Server, target.accepted.Load(), tc.ref(addr))
				}
				if st.Redirected != 1 {
					t.Errorf("connection stats %+v: want 1 redirect", st)
				}
				return
			}
			// Dial returned: the second attempt, to origin, is up. A
			// followed redirect would have come between the two.
			if e.Server != origin.url {
				t.Fatalf("connected to %s, want %s", e.Server, origin.url)
			}
			if n := target.accepted.Load(); n != 0 {
				t.Fatalf("the reference %s was followed (%d connections); want it refused", tc.ref(addr), n)
			}
			if st.Redirected != 0 {
				t.Errorf("connection stats %+v: want no redirect counted", st)
			}
			if !strings.Contains(logs.String(), "not following the broker's redirect") {
				t.Errorf("the log does not say the redirect was refused:\n%s", logs.String())
			}
		})
	}
}

// A DISCONNECT with "server moved" from a tls:// broker, pointing to a
// plaintext server or to a host not allowed, is not followed either: the
// client reconnects to its configured server.
func TestRedirectInDisconnectRefused(t *testing.T) {
	ca := mqtttest.NewCA(t)
	cert := ca.Issue(t, "127.0.0.1", "localhost")
	for _, tc := range []struct {
		name string
		ref  func(plain, tlsAddr string) string
		why  string // in the log
	}{
		{"to tcp", func(plain, _ string) string { return "tcp://" + plain }, "would leave TLS"},
		{"to another host", func(_, tlsAddr string) string {
			_, port, _ := net.SplitHostPort(tlsAddr)
			return "tls://localhost:" + port
		}, "neither a host of Config.Servers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain := listenCounting(t)
			accept := frame(t, 5, &codec.Connack{})
			other := startTLSPeer(t, cert, func(_ int, nc net.Conn) { nc.Write(accept) })
			ref := tc.ref(plain.addr, strings.TrimPrefix(other.url, "tls://"))
			moved := frame(t, 5, &codec.Disconnect{ReasonCode: codec.ServerMoved,
				Properties: &codec.Properties{ServerReference: ref}})
			peer := startTLSPeer(t, cert, func(n int, nc net.Conn) {
				if n == 1 {
					nc.Write(append(append([]byte(nil), accept...), moved...))
				} else {
					nc.Write(accept)
				}
			})
			var logs logCapture
			c := dial(t, mqtt.Config{
				Servers:  []string{peer.url},
				ClientID: "moved",
				Version:  5,
				TLS:      &tls.Config{RootCAs: ca.Pool()},
				Username: "device",
				Password: []byte("s3cret"),
				Logger:   logs.logger(),
			})
			waitEvent(t, c, mqtt.Connected)
			lost := waitEvent(t, c, mqtt.ConnectionLost)
			if de := (*mqtt.DisconnectError)(nil); !errors.As(lost.Err, &de) || de.ServerReference != ref {
				t.Fatalf("connection lost with %v, want the broker's DISCONNECT pointing to %s", lost.Err, ref)
			}
			if e := waitEvent(t, c, mqtt.Connected); e.Server != peer.url {
				t.Fatalf("reconnected to %s, want %s", e.Server, peer.url)
			}
			if n, m := plain.accepted.Load(), other.accepted.Load(); n != 0 || m != 0 {
				t.Fatalf("the reference %s was followed (plaintext listener: %d connections, other host: %d); want it refused", ref, n, m)
			}
			if st := c.Stats().Connections; st.Redirected != 0 {
				t.Errorf("connection stats %+v: want no redirect counted", st)
			}
			if log := logs.String(); !strings.Contains(log, "not following the broker's redirect") || !strings.Contains(log, tc.why) {
				t.Errorf("the log does not say the redirect was refused (%s):\n%s", tc.why, log)
			}
		})
	}
}

// RedirectHosts entries are checked by Dial.
func TestRedirectHostsValidation(t *testing.T) {
	servers := []string{"tcp://127.0.0.1:1"}
	for _, bad := range []string{"", "tcp://h", "h/mqtt", "u@h", "h:0", "h:x", "h:65536", "a*b", "*:1883", "**.x", "[::1", "h h"} {
		_, err := mqtt.Dial(testCtx(t), mqtt.Config{Servers: servers, ClientID: "x", RedirectHosts: []string{"ok.example", bad}, Backoff: backoff.Never()})
		if !errors.Is(err, mqtt.ErrInvalidConfig) || !strings.Contains(err.Error(), "RedirectHosts[1]") {
			t.Errorf("RedirectHosts %q: Dial = %v, want ErrInvalidConfig naming RedirectHosts[1]", bad, err)
		}
	}
	// Good ones pass validation: Dial goes on to connect, and fails for
	// want of a broker, not of a valid config.
	good := []string{"h", "H.example:8883", "10.0.0.7", "::1", "[::1]", "[::1]:8883", "*.example.com", "*"}
	_, err := mqtt.Dial(testCtx(t), mqtt.Config{Servers: servers, ClientID: "x", RedirectHosts: good, Backoff: backoff.Never()})
	if err == nil || errors.Is(err, mqtt.ErrInvalidConfig) {
		t.Fatalf("RedirectHosts %q: Dial = %v, want a failed connection", good, err)
	}
}

// A password in a server URL shows nowhere: not in events, their String,
// the log, errors (Dial's, Client.Err, the GaveUp event's), Stats, or a
// config error. A ws:// URL's credentials are the upgrade's HTTP Basic
// authentication; a tcp:// URL's are refused, as they would go unused.
func TestServerPasswordNotShown(t *testing.T) {
	const secret = "s3cret"
	withPassword := func(url string) string {
		scheme, rest, _ := strings.Cut(url, "://")
		return scheme + "://dev:" + secret + "@" + rest
	}
	check := func(what, s string) {
		t.Helper()
		if strings.Contains(s, secret) {
			t.Errorf("%s shows the password: %s", what, s)
		}
	}

	b := mqtttest.NewBrokerWith(t, mqtttest.BrokerConfig{WebSocket: true})
	var logs logCapture
	c := dial(t, mqtt.Config{
		Servers:  []string{withPassword(b.URL())},
		ClientID: "redact",
		Backoff:  backoff.MaxAttempts(fastRetry, 1),
		Logger:   logs.logger(),
	})
	shown := strings.Replace(b.URL(), "ws://", "ws://dev:xxxxx@", 1)
	var events []mqtt.Event
	collect := func(k mqtt.EventKind) mqtt.Event {
		t.Helper()
		e := waitEvent(t, c, k)
		events = append(events, e)
		return e
	}
	if e := collect(mqtt.Connected); e.Server != shown {
		t.Errorf("Connected.Server = %q, want %q", e.Server, shown)
	}
	// Lost, one retry that fails, and the strategy gives up.
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	collect(mqtt.ConnectionLost)
	if e := collect(mqtt.GaveUp); !strings.Contains(e.Err.Error(), shown) {
		t.Errorf("the GaveUp error %q does not name %s", e.Err, shown)
	}
	<-c.Done()
	for {
		e, ok := <-c.Events()
		if !ok {
			break
		}
		events = append(events, e)
	}
	for _, e := range events {
		check("an event's Server", e.Server)
		check("an event's String", e.String())
		check("an event", fmt.Sprintf("%+v", e))
		if e.Err != nil {
			check("an event's Err", e.Err.Error())
		}
	}
	check("Client.Err", fmt.Sprint(c.Err()))
	check("Stats", fmt.Sprintf("%+v", c.Stats()))
	log := logs.String()
	check("the log", log)
	if !strings.Contains(log, shown) {
		t.Errorf("the log never names the server as %s:\n%s", shown, log)
	}

	// Dial's own error, when no connection ever comes up.
	down := listenCounting(t)
	_, err := mqtt.Dial(testCtx(t), mqtt.Config{Servers: []string{withPassword("ws://" + down.addr + "/mqtt")},
		ClientID: "redact", Backoff: backoff.Never(), Logger: logs.logger()})
	if err == nil || !strings.Contains(err.Error(), "dev:xxxxx@") {
		t.Errorf("Dial = %v, want an error naming the server redacted", err)
	} else {
		check("Dial's error", err.Error())
	}
	check("the log", logs.String())

	// Config errors.
	for url, want := range map[string]string{
		"tcp://dev:" + secret + "@127.0.0.1:1883":    "credentials in a tcp:// URL are not used; set the MQTT username and password",
		"tls://dev:" + secret + "@127.0.0.1":         "credentials in a tls:// URL are not used",
		"ws://dev:" + secret + "@127.0.0.1:99999":    "bad port",
		"ws://dev:" + secret + "@127.0.0.1:x/mqtt":   "invalid port",
		"dev:" + secret + "@127.0.0.1:1883":          "no scheme",
		"gopher://dev:" + secret + "@127.0.0.1:1883": "unknown scheme",
	} {
		_, err := mqtt.Dial(testCtx(t), mqtt.Config{Servers: []string{"tcp://127.0.0.1:1", url}, ClientID: "x", Backoff: backoff.Never()})
		if !errors.Is(err, mqtt.ErrInvalidConfig) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "Servers[1]") {
			t.Errorf("Servers[1] %s: Dial = %v, want ErrInvalidConfig saying %q", strings.ReplaceAll(url, secret, "xxxxx"), err, want)
			continue
		}
		check("a config error", err.Error())
	}
}

package conn_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
)

// A wss:// server that answers the upgrade with an HTTP redirect is not
// followed, wherever the redirect leads (to ws://, which would carry the
// CONNECT and its password in clear, or anywhere else): the dial fails
// with an error naming both URLs, passwords redacted, and the target
// sees no request.
func TestWebSocketRedirectNotFollowed(t *testing.T) {
	var plainRequests atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainRequests.Add(1)
		http.Error(w, "not here", http.StatusTeapot)
	}))
	t.Cleanup(plain.Close)
	plainHost := plain.Listener.Addr().String()

	for _, tc := range []struct {
		name     string
		location string // where the wss:// server redirects
		shown    string // how the error shows it
	}{
		{"to ws://", "ws://" + plainHost + "/mqtt", "ws://" + plainHost + "/mqtt"},
		{"to http://", "http://" + plainHost + "/mqtt", "http://" + plainHost + "/mqtt"},
		{"with credentials", "ws://eve:hunter2@" + plainHost + "/mqtt", "ws://eve:xxxxx@" + plainHost + "/mqtt"},
		{"same server, other path", "/other", "/other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var redirects atomic.Int32
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				redirects.Add(1)
				http.Redirect(w, r, tc.location, http.StatusFound)
			}))
			t.Cleanup(srv.Close)
			roots := x509.NewCertPool()
			roots.AddCert(srv.Certificate())
			server := "wss://dev:s3cret@" + srv.Listener.Addr().String() + "/mqtt"

			_, err := conn.Open(t.Context(), server, conn.Config{
				Connect:        &codec.Connect{Version: codec.V311, ClientID: "ws", CleanStart: true, Username: "u", HasUsername: true, Password: []byte("pw"), HasPassword: true},
				ConnectTimeout: 10 * time.Second,
				TLS:            &tls.Config{RootCAs: roots},
			})
			if err == nil {
				t.Fatal("Open followed the redirect and connected")
			}
			t.Log(err)
			msg := err.Error()
			for _, want := range []string{"wss://dev:xxxxx@" + srv.Listener.Addr().String() + "/mqtt", "redirected", tc.shown, "does not follow WebSocket redirects"} {
				if !strings.Contains(msg, want) {
					t.Errorf("the error does not say %q", want)
				}
			}
			for _, secret := range []string{"s3cret", "hunter2"} {
				if strings.Contains(msg, secret) {
					t.Errorf("the error shows the password %q", secret)
				}
			}
			// CheckRedirect runs before the redirected request is sent, so
			// after Open nothing more can reach either server.
			if n := redirects.Load(); n != 1 {
				t.Errorf("the wss:// server saw %d requests, want 1", n)
			}
			if n := plainRequests.Load(); n != 0 {
				t.Errorf("the redirect target saw %d requests, want none", n)
			}
		})
	}
}

func TestRedactServer(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://127.0.0.1:1883":                 "tcp://127.0.0.1:1883",
		"TCP://Host":                           "TCP://Host", // unchanged, byte for byte
		"ws://dev:s3cret@h/mqtt":               "ws://dev:xxxxx@h/mqtt",
		"ws://dev@h/mqtt":                      "ws://dev@h/mqtt", // a user name is not a secret
		"ws://dev:@h":                          "ws://dev:xxxxx@h",
		"wss://u:p%40ss:w@rd@h:443/a@b?c=@#@":  "wss://u:xxxxx@h:443/a@b?c=@#@",
		"ws://h/path@x":                        "ws://h/path@x",
		"tcp://u:s3cret@h:bad":                 "tcp://u:xxxxx@h:bad", // not a URL, still redacted
		"u:s3cret@h:1883":                      "u:xxxxx@h:1883",      // no scheme
		"":                                     "",
		"ws://u:s3cret@[::1]:80/mqtt?token=@x": "ws://u:xxxxx@[::1]:80/mqtt?token=@x",
	} {
		if got := conn.RedactServer(in); got != want {
			t.Errorf("RedactServer(%q) = %q, want %q", in, got, want)
		}
	}
}

// Credentials in a server URL are the WebSocket upgrade's HTTP Basic
// authentication, so only ws:// and wss:// take them; elsewhere they would
// go unused, and ParseServer says so. No error of ParseServer shows a
// password.
func TestParseServerCredentials(t *testing.T) {
	for _, in := range []string{"ws://u:s3cret@127.0.0.1/mqtt", "wss://u:s3cret@127.0.0.1/mqtt", "ws://token@127.0.0.1"} {
		if _, err := conn.ParseServer(in); err != nil {
			t.Errorf("ParseServer(%q) = %v, want it accepted", conn.RedactServer(in), err)
		}
	}
	for in, want := range map[string]string{
		"tcp://u:s3cret@127.0.0.1":        "credentials in a tcp:// URL are not used",
		"MQTT://u:s3cret@127.0.0.1":       "credentials in a mqtt:// URL are not used",
		"tls://u:s3cret@127.0.0.1":        "credentials in a tls:// URL are not used",
		"mqtts://u@127.0.0.1":             "Config.Username and Config.Password",
		"tcp://u:s3cret@127.0.0.1:99999":  "credentials",
		"tcp://u:s3cret@127.0.0.1:port":   "invalid port",
		"ws://u:s3cret@127.0.0.1:99999":   "bad port",
		"u:s3cret@127.0.0.1:1883":         "no scheme",
		"gopher://u:s3cret@127.0.0.1":     "unknown scheme",
		"ws://u:s3cret@:80":               "no host",
		"ws://u:s3cret@127.0.0.1/%zz":     "not a URL",
		"ws://u:s3cret@127.0.0.1:80/\x7f": "not a URL",
	} {
		_, err := conn.ParseServer(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseServer(%q) = %v, want an error saying %q", conn.RedactServer(in), err, want)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ParseServer's error shows the password: %v", err)
		}
	}
}

// A failed WebSocket dial names the server without its password.
func TestWebSocketDialErrorRedacted(t *testing.T) {
	// A listener that accepts and hangs up: the upgrade fails at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			nc.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)

	for _, server := range []string{
		"ws://dev:s3cret@" + ln.Addr().String() + "/mqtt",
		"ws://dev:s3cret@" + notFound.Listener.Addr().String() + "/mqtt",
	} {
		_, err := openWS(t, server, nil)
		if err == nil {
			t.Fatalf("%s: Open succeeded", conn.RedactServer(server))
		}
		t.Log(err)
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the dial error shows the password: %v", err)
		}
		if !strings.Contains(err.Error(), "dev:xxxxx@") {
			t.Errorf("the dial error does not name the server: %v", err)
		}
	}
}

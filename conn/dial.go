package conn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// A Transport opens the byte stream an MQTT connection runs over. Transports
// are chosen by the scheme of a server URL; see [ParseServer].
type Transport func(ctx context.Context, server *url.URL, tlsConfig *tls.Config) (net.Conn, error)

// transports maps a URL scheme to its transport, default port and, for
// WebSocket, the path used when the URL has none. A new transport plugs in
// here without the session knowing; add its scheme to schemeList too.
var transports = map[string]struct {
	dial        Transport
	defaultPort string
	defaultPath string
	secure      bool // encrypted: a redirect must not leave it (see IsSecure)
}{
	"tcp":   {dial: dialTCP, defaultPort: "1883"},
	"mqtt":  {dial: dialTCP, defaultPort: "1883"},
	"tls":   {dial: dialTLS, defaultPort: "8883", secure: true},
	"ssl":   {dial: dialTLS, defaultPort: "8883", secure: true},
	"mqtts": {dial: dialTLS, defaultPort: "8883", secure: true},
	"ws":    {dial: dialWebSocket, defaultPort: "80", defaultPath: DefaultWebSocketPath},
	"wss":   {dial: dialWebSocket, defaultPort: "443", defaultPath: DefaultWebSocketPath, secure: true},
}

// schemeList names the schemes of transports, for error messages.
const schemeList = "tcp://, mqtt://, tls://, ssl://, mqtts://, ws:// or wss://"

// ParseServer checks a server URL such as "tcp://127.0.0.1:1883" and returns
// it with the scheme's default port filled in when it had none (1883 for
// tcp:// and mqtt://, 8883 for tls://, ssl:// and mqtts://, 80 for ws://,
// 443 for wss://), and for ws:// and wss:// the path DefaultWebSocketPath
// when it had none. It says which part is wrong: an unknown scheme, a
// missing host, a bad port. User information (user:password@) is accepted
// in ws:// and wss:// URLs only, where it is the HTTP Basic authentication
// of the upgrade; in any other scheme it would be silently unused, so it is
// an error. Errors show the URL as [RedactServer] does.
func ParseServer(server string) (*url.URL, error) {
	shown := RedactServer(server)
	if !strings.Contains(server, "://") {
		return nil, fmt.Errorf("conn: server %q has no scheme (write it as tcp://host:port)", shown)
	}
	u, err := url.Parse(server)
	if err != nil {
		// url.Error repeats the URL, password and all: keep its reason only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("conn: server %q is not a URL: %w", shown, err)
	}
	scheme := strings.ToLower(u.Scheme)
	t, ok := transports[scheme]
	if !ok {
		return nil, fmt.Errorf("conn: server %q: unknown scheme %q (use %s)", shown, u.Scheme, schemeList)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("conn: server %q has no host (write it as %s://host:port)", shown, scheme)
	}
	if u.User != nil && !isWebSocket(scheme) {
		// An MQTT connection has no place for them but the CONNECT,
		// whose credentials the caller sets.
		return nil, fmt.Errorf("conn: server %q: credentials in a %s:// URL are not used; set the MQTT username and password (Config.Username and Config.Password of package mqtt)", shown, scheme)
	}
	if p := u.Port(); p == "" {
		u.Host = net.JoinHostPort(u.Hostname(), t.defaultPort)
	} else if _, err := net.LookupPort("tcp", p); err != nil {
		return nil, fmt.Errorf("conn: server %q: bad port %q", shown, p)
	}
	if u.Path == "" && u.RawPath == "" {
		u.Path = t.defaultPath
	}
	u.Scheme = scheme
	return u, nil
}

// RedactServer returns server as it may be shown in messages, logs and
// events: the password of its user information (user:password@) replaced
// by "xxxxx", as [url.URL.Redacted] does; the user name is kept. Anything
// else, including a server without a password, is returned unchanged,
// byte for byte, even when it is not a valid URL.
func RedactServer(server string) string {
	// The authority is what url.Parse takes it to be: from "//" (or the
	// start, without a scheme) to the first '/', '?' or '#'; the user
	// information ends at its last '@' and the password starts after the
	// first ':' of it.
	start := 0
	if i := strings.Index(server, "://"); i >= 0 {
		start = i + len("://")
	}
	end := len(server)
	if i := strings.IndexAny(server[start:], "/?#"); i >= 0 {
		end = start + i
	}
	at := strings.LastIndex(server[start:end], "@")
	if at < 0 {
		return server
	}
	at += start
	colon := strings.Index(server[start:at], ":")
	if colon < 0 {
		return server
	}
	colon += start
	return server[:colon+1] + "xxxxx" + server[at:]
}

// IsSecure reports whether scheme (tcp, tls, ws, ... in any case) is one
// whose transport is encrypted: tls, ssl, mqtts and wss.
func IsSecure(scheme string) bool {
	t, ok := transports[strings.ToLower(scheme)]
	return ok && t.secure
}

// isWebSocket reports whether scheme (lower case) is ws or wss.
func isWebSocket(scheme string) bool { return scheme == "ws" || scheme == "wss" }

// dial opens the transport for server, honouring ctx.
func dial(ctx context.Context, server *url.URL, tlsConfig *tls.Config) (net.Conn, error) {
	t, ok := transports[server.Scheme]
	if !ok {
		return nil, fmt.Errorf("conn: unknown scheme %q", server.Scheme)
	}
	return t.dial(ctx, server, tlsConfig)
}

func dialTCP(ctx context.Context, server *url.URL, _ *tls.Config) (net.Conn, error) {
	nc, err := tcpDialer(ctx).DialContext(ctx, "tcp", server.Host)
	if err != nil {
		return nil, dialError(server, err)
	}
	connected(ctx, nc)
	return nc, nil
}

// dialTLS connects over TCP, then runs the TLS handshake (as tls.Dialer
// would), so that the TCP handshake alone is timed (see linkTimer).
func dialTLS(ctx context.Context, server *url.URL, tlsConfig *tls.Config) (net.Conn, error) {
	nc, err := tcpDialer(ctx).DialContext(ctx, "tcp", server.Host)
	if err != nil {
		return nil, dialError(server, err)
	}
	connected(ctx, nc)
	tc := tls.Client(nc, clientTLS(tlsConfig, server))
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, dialError(server, err)
	}
	return tc, nil
}

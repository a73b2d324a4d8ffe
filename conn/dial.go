package conn

import (
	"context"
	"crypto/tls"
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
}{
	"tcp":   {dial: dialTCP, defaultPort: "1883"},
	"mqtt":  {dial: dialTCP, defaultPort: "1883"},
	"tls":   {dial: dialTLS, defaultPort: "8883"},
	"ssl":   {dial: dialTLS, defaultPort: "8883"},
	"mqtts": {dial: dialTLS, defaultPort: "8883"},
	"ws":    {dial: dialWebSocket, defaultPort: "80", defaultPath: DefaultWebSocketPath},
	"wss":   {dial: dialWebSocket, defaultPort: "443", defaultPath: DefaultWebSocketPath},
}

// schemeList names the schemes of transports, for error messages.
const schemeList = "tcp://, mqtt://, tls://, ssl://, mqtts://, ws:// or wss://"

// ParseServer checks a server URL such as "tcp://127.0.0.1:1883" and returns
// it with the scheme's default port filled in when it had none (1883 for
// tcp:// and mqtt://, 8883 for tls://, ssl:// and mqtts://, 80 for ws://,
// 443 for wss://), and for ws:// and wss:// the path DefaultWebSocketPath
// when it had none. It says which part is wrong: an unknown scheme, a
// missing host, a bad port.
func ParseServer(server string) (*url.URL, error) {
	if !strings.Contains(server, "://") {
		return nil, fmt.Errorf("conn: server %q has no scheme (write it as tcp://host:port)", server)
	}
	u, err := url.Parse(server)
	if err != nil {
		return nil, fmt.Errorf("conn: server %q is not a URL: %w", server, err)
	}
	scheme := strings.ToLower(u.Scheme)
	t, ok := transports[scheme]
	if !ok {
		return nil, fmt.Errorf("conn: server %q: unknown scheme %q (use %s)", server, u.Scheme, schemeList)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("conn: server %q has no host (write it as %s://host:port)", server, scheme)
	}
	if p := u.Port(); p == "" {
		u.Host = net.JoinHostPort(u.Hostname(), t.defaultPort)
	} else if _, err := net.LookupPort("tcp", p); err != nil {
		return nil, fmt.Errorf("conn: server %q: bad port %q", server, p)
	}
	if u.Path == "" && u.RawPath == "" {
		u.Path = t.defaultPath
	}
	u.Scheme = scheme
	return u, nil
}

// dial opens the transport for server, honouring ctx.
func dial(ctx context.Context, server *url.URL, tlsConfig *tls.Config) (net.Conn, error) {
	t, ok := transports[server.Scheme]
	if !ok {
		return nil, fmt.Errorf("conn: unknown scheme %q", server.Scheme)
	}
	return t.dial(ctx, server, tlsConfig)
}

func dialTCP(ctx context.Context, server *url.URL, _ *tls.Config) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", server.Host)
	if err != nil {
		return nil, dialError(server, err)
	}
	return nc, nil
}

func dialTLS(ctx context.Context, server *url.URL, tlsConfig *tls.Config) (net.Conn, error) {
	d := tls.Dialer{Config: clientTLS(tlsConfig, server)}
	nc, err := d.DialContext(ctx, "tcp", server.Host)
	if err != nil {
		return nil, dialError(server, err)
	}
	return nc, nil
}

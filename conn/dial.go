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

// transports maps a URL scheme to its transport and default port. WebSocket
// (ws, wss) plugs in here without the session knowing.
var transports = map[string]struct {
	dial        Transport
	defaultPort string
}{
	"tcp":   {dialTCP, "1883"},
	"mqtt":  {dialTCP, "1883"},
	"tls":   {dialTLS, "8883"},
	"ssl":   {dialTLS, "8883"},
	"mqtts": {dialTLS, "8883"},
}

// ParseServer checks a server URL such as "tcp://127.0.0.1:1883" and returns
// it with the scheme's default port filled in when it had none. It says
// which part is wrong: an unknown scheme, a missing host, a bad port.
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
		return nil, fmt.Errorf("conn: server %q: unknown scheme %q (use tcp://, mqtt://, tls://, ssl:// or mqtts://)", server, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("conn: server %q has no host (write it as %s://host:port)", server, scheme)
	}
	if p := u.Port(); p == "" {
		u.Host = net.JoinHostPort(u.Hostname(), t.defaultPort)
	} else if _, err := net.LookupPort("tcp", p); err != nil {
		return nil, fmt.Errorf("conn: server %q: bad port %q", server, p)
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
		return nil, fmt.Errorf("conn: dial %s: %w", server.Redacted(), err)
	}
	return nc, nil
}

func dialTLS(ctx context.Context, server *url.URL, tlsConfig *tls.Config) (net.Conn, error) {
	cfg := tlsConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = server.Hostname()
	}
	d := tls.Dialer{Config: cfg}
	nc, err := d.DialContext(ctx, "tcp", server.Host)
	if err != nil {
		return nil, fmt.Errorf("conn: dial %s: %w", server.Redacted(), err)
	}
	return nc, nil
}

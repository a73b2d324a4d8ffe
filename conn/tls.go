package conn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// clientTLS is the TLS configuration for server, the same for tls:// and
// wss://: a copy of tlsConfig (the caller's stays untouched) with the server
// name taken from the URL's host when tlsConfig names none. Nil means the
// system roots.
func clientTLS(tlsConfig *tls.Config, server *url.URL) *tls.Config {
	cfg := tlsConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = server.Hostname()
	}
	return cfg
}

// dialError is the error of a failed dial of server.
func dialError(server *url.URL, err error) error {
	prefix := "conn: dial " + server.Redacted()
	if e := explainTLS(prefix, err); e != nil {
		return e
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

// tlsError is a TLS failure, explained: what went wrong and which field of
// Config.TLS fixes it. It unwraps to the error crypto/tls returned, and
// through it to the x509 error, if any.
type tlsError struct {
	msg string
	err error
}

func (e *tlsError) Error() string { return e.msg }
func (e *tlsError) Unwrap() error { return e.err }

// explainTLS returns err, prefixed and explained, if it is a TLS failure
// that the client's TLS configuration can fix: a server certificate that
// did not verify, or a server that rejected the client's certificate (or
// its lack of one). Otherwise it returns nil.
func explainTLS(prefix string, err error) error {
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		var hostErr x509.HostnameError
		var invalid x509.CertificateInvalidError
		hint := "if a private CA signed it, set Config.TLS.RootCAs to a pool that holds that CA"
		switch {
		case errors.As(cve.Err, &hostErr):
			hint = "connect by a name the certificate holds, or set Config.TLS.ServerName to one"
		case errors.As(cve.Err, &invalid) && invalid.Reason == x509.Expired:
			hint = "renew it, or check this machine's clock"
		}
		return &tlsError{
			msg: fmt.Sprintf("%s: the server's certificate did not verify: %v; %s", prefix, cve.Err, hint),
			err: err,
		}
	}
	// A TLS alert from the server arrives as a *net.OpError whose Op is
	// "remote error"; crypto/tls exports no type for it. With TLS 1.3 the
	// client's side of the handshake is over before the server has checked
	// the client's certificate, so this shows on the first read (the
	// CONNACK, or the WebSocket upgrade's response).
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" && strings.Contains(oe.Err.Error(), "certificate") {
		return &tlsError{
			msg: fmt.Sprintf("%s: the server rejected the TLS session (%v); if it requires a client certificate, set Config.TLS.Certificates to one that a CA it trusts signed", prefix, oe.Err),
			err: err,
		}
	}
	return nil
}

package mqtttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// CA is a certificate authority made up for one test, to serve and dial TLS
// on loopback without files: its Pool goes in a client's RootCAs (and in a
// server's ClientCAs for mutual TLS), and the certificates it issues in a
// server's or a client's Certificates.
//
//	ca := mqtttest.NewCA(t)
//	b := mqtttest.NewBrokerWith(t, mqtttest.BrokerConfig{
//		TLS: &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1")}},
//	})
//	// dial b.URL() with &tls.Config{RootCAs: ca.Pool()}
//
// Keys are ECDSA P-256; certificates are valid from an hour ago for a day.
type CA struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	pool   *x509.CertPool
	serial atomic.Int64
}

// NewCA makes a new certificate authority, unknown to every other. It
// calls t.Fatal if it cannot.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mqtttest CA " + t.Name()},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("mqtttest: make a CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("mqtttest: parse the CA certificate: %v", err)
	}
	ca := &CA{cert: cert, key: key, pool: x509.NewCertPool()}
	ca.pool.AddCert(cert)
	ca.serial.Store(1)
	return ca
}

// Pool returns a pool that holds the CA's certificate only.
func (ca *CA) Pool() *x509.CertPool { return ca.pool }

// Certificate returns the CA's own certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Issue returns a certificate the CA signed for hosts, with its key: an IP
// address ("127.0.0.1", "::1") becomes an IP address name, anything else a
// DNS name, and the first is also the subject's common name. It is good
// both for a server and for a client (mutual TLS). It calls t.Fatal if it
// cannot.
func (ca *CA) Issue(t testing.TB, hosts ...string) tls.Certificate {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial.Add(1)),
		NotBefore:    ca.cert.NotBefore,
		NotAfter:     ca.cert.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if len(hosts) > 0 {
		tmpl.Subject.CommonName = hosts[0]
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("mqtttest: issue a certificate for %q: %v", hosts, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("mqtttest: parse the certificate for %q: %v", hosts, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("mqtttest: make an ECDSA key: %v", err)
	}
	return key
}

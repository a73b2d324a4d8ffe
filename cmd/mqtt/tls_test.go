package main

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/robustmqtt/mqtt/mqtttest"
)

// --cafile, --cert, --key and --insecure, against the embedded broker
// serving TLS with certificates made up in the test.
func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := mqtttest.NewCA(t)
	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Certificate().Raw)
	otherFile := writePEM(t, dir, "other-ca.pem", "CERTIFICATE", mqtttest.NewCA(t).Certificate().Raw)
	clientCert, clientKey := writeCertificate(t, dir, "client", ca.Issue(t, "client"))
	serve := func(cfg *tls.Config) string {
		u, err := url.Parse(mqtttest.NewBrokerWith(t, mqtttest.BrokerConfig{TLS: cfg}).URL())
		if err != nil {
			t.Fatal(err)
		}
		return u.Host
	}
	byIP := serve(&tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1")}})
	byName := serve(&tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "broker.test")}})
	mutual := serve(&tls.Config{
		Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1")},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
	})

	// A round trip, both ends over TLS: -h and -p with --cafile mean tls://.
	s := sub(t, byIP, "--cafile", caFile, "-q", "1", "-C", "1", "-t", "cli/tls")
	s.waitStderr("mqtt sub: connected to tls://" + byIP)
	pub(t, byIP, "", "--cafile", caFile, "-q", "1", "-t", "cli/tls", "-m", "secret")
	finish(t, s, 0, "secret\n")

	cases := []struct {
		name string
		args []string
		want string // "" for success, else what the one line of stderr says
	}{
		{"system roots", []string{"--url", "tls://" + byIP + "/cli/tls"}, "certificate signed by unknown authority"},
		{"another CA", []string{"--url", "mqtts://" + byIP + "/cli/tls", "--cafile", otherFile}, "certificate signed by unknown authority"},
		{"name mismatch", []string{"--url", "tls://" + byName + "/cli/tls", "--cafile", caFile}, "certificate for 127.0.0.1 because it doesn't contain any IP SANs"},
		{"insecure", []string{"--url", "tls://" + byName + "/cli/tls", "--cafile", caFile, "--insecure"}, ""},
		{"insecure another CA", []string{"--url", "tls://" + byName + "/cli/tls", "--cafile", otherFile, "--insecure"}, "certificate signed by unknown authority"},
		{"no client certificate", []string{"--url", "tls://" + mutual + "/cli/tls", "--cafile", caFile}, "certificate required"},
		{"client certificate", []string{"--url", "tls://" + mutual + "/cli/tls", "--cafile", caFile, "--cert", clientCert, "--key", clientKey}, ""},
		{"client certificate, -p", append(at(mutual), "-t", "cli/tls", "--cafile", caFile, "--cert", clientCert, "--key", clientKey), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A certificate that does not verify is final: no retry, no
			// wait for -W.
			args := append([]string{"pub", "-q", "1", "-m", "x", "-W", "5"}, tc.args...)
			_, stderr, status := runCmd(t, nil, args...)
			switch {
			case tc.want == "" && (status != 0 || stderr != ""):
				t.Errorf("exit status %d, stderr %q; want 0 and nothing", status, stderr)
			case tc.want != "":
				if status != 1 {
					t.Errorf("exit status %d, want 1; stderr %q", status, stderr)
				}
				oneLine(t, stderr, "mqtt pub: gave up connecting: ", tc.want)
			}
		})
	}
}

// writeCertificate writes c and its key as the PEM files --cert and --key
// read.
func writeCertificate(t *testing.T, dir, name string, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	key, err := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name+".pem", "CERTIFICATE", c.Certificate[0]),
		writePEM(t, dir, name+"-key.pem", "EC PRIVATE KEY", key)
}

func writePEM(t *testing.T, dir, name, kind string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

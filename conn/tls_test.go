package conn_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// TLS over TCP (tls://) and under WebSocket (wss://), against the embedded
// broker with certificates from a CA made up here: what verifies connects;
// what does not is an error that names the server and the field of
// Config.TLS that fixes it.
func TestTLS(t *testing.T) {
	ca := mqtttest.NewCA(t)
	other := mqtttest.NewCA(t)
	serverCert := ca.Issue(t, "127.0.0.1")
	clientCert := ca.Issue(t, "device-1")
	strangerCert := other.Issue(t, "device-2")

	for _, ws := range []bool{false, true} {
		name := "tls"
		if ws {
			name = "wss"
		}
		t.Run(name, func(t *testing.T) {
			plain := mqtttest.NewBrokerWith(t, mqtttest.BrokerConfig{
				TLS:       &tls.Config{Certificates: []tls.Certificate{serverCert}},
				WebSocket: ws,
			})
			mutual := mqtttest.NewBrokerWith(t, mqtttest.BrokerConfig{
				TLS: &tls.Config{
					Certificates: []tls.Certificate{serverCert},
					ClientAuth:   tls.RequireAndVerifyClientCert,
					ClientCAs:    ca.Pool(),
				},
				WebSocket: ws,
			})
			if !strings.HasPrefix(plain.URL(), name+"://") {
				t.Fatalf("URL() = %s, want %s://", plain.URL(), name)
			}
			for _, tc := range []struct {
				name   string
				server string
				tls    *tls.Config
				want   []string // in the error; none: connects
				as     any      // errors.As target the error must match
			}{
				{name: "verifies", server: plain.URL(), tls: &tls.Config{RootCAs: ca.Pool()}},
				{name: "system roots", server: plain.URL(),
					want: []string{"certificate did not verify", "Config.TLS.RootCAs"}, as: &x509.UnknownAuthorityError{}},
				{name: "another CA", server: plain.URL(), tls: &tls.Config{RootCAs: other.Pool()},
					want: []string{"certificate did not verify", "Config.TLS.RootCAs"}, as: &x509.UnknownAuthorityError{}},
				{name: "server name mismatch", server: plain.URL(), tls: &tls.Config{RootCAs: ca.Pool(), ServerName: "broker.example"},
					want: []string{"certificate did not verify", "broker.example", "Config.TLS.ServerName"}, as: &x509.HostnameError{}},
				{name: "mutual", server: mutual.URL(),
					tls: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{clientCert}}},
				{name: "mutual without a client certificate", server: mutual.URL(), tls: &tls.Config{RootCAs: ca.Pool()},
					want: []string{"rejected", "certificate", "Config.TLS.Certificates"}},
				{name: "mutual with a stranger's certificate", server: mutual.URL(),
					tls:  &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{strangerCert}},
					want: []string{"rejected", "certificate", "Config.TLS.Certificates"}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					var before tls.Config
					if tc.tls != nil {
						before.ServerName = tc.tls.ServerName
					}
					c, err := conn.Open(t.Context(), tc.server, conn.Config{
						Connect:        &codec.Connect{Version: codec.V5, ClientID: "tls", CleanStart: true},
						ConnectTimeout: 10 * time.Second,
						TLS:            tc.tls,
					})
					if tc.tls != nil && tc.tls.ServerName != before.ServerName {
						t.Errorf("Open changed the caller's ServerName to %q", tc.tls.ServerName)
					}
					if len(tc.want) == 0 {
						if err != nil {
							t.Fatal(err)
						}
						c.Close()
						return
					}
					if err == nil {
						c.Close()
						t.Fatal("connected, want an error")
					}
					for _, w := range append(tc.want, tc.server) {
						if !strings.Contains(err.Error(), w) {
							t.Errorf("the error does not say %q: %v", w, err)
						}
					}
					if tc.as != nil && !errors.As(err, tc.as) {
						t.Errorf("the error does not wrap a %T: %v", tc.as, err)
					}
					t.Log(err)
				})
			}
		})
	}
}

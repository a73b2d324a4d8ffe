package main

import (
	"context"
	"crypto/tls"
	"testing"

	"github.com/robustmqtt/mqtt/mqtttest"
)

// --url passes ws:// and wss:// through to the client: pub and sub over
// WebSocket, through a broker restart.
func TestWebSocket(t *testing.T) {
	t.Parallel()
	ca := mqtttest.NewCA(t)
	caFile := writePEM(t, t.TempDir(), "ca.pem", "CERTIFICATE", ca.Certificate().Raw)
	for _, tc := range []struct {
		name string
		cfg  mqtttest.BrokerConfig
		tls  []string
	}{
		{"ws", mqtttest.BrokerConfig{WebSocket: true}, nil},
		{"wss", mqtttest.BrokerConfig{WebSocket: true, TLS: &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1")}}}, []string{"--cafile", caFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := mqtttest.NewBrokerWith(t, tc.cfg)
			url := b.URL() // ws://127.0.0.1:port/mqtt: the path is the endpoint's
			id := "cli-" + tc.name
			s := start(t, nil, append([]string{"sub", "-d", "-c", "-i", id, "-q", "1", "-C", "2", "--url", url, "-t", "cli/ws"}, tc.tls...)...)
			s.waitStderr("mqtt sub: subscribed to cli/ws")
			publish := func(msg string) {
				t.Helper()
				_, stderr, status := runCmd(t, nil, append([]string{"pub", "-q", "1", "--url", url, "-t", "cli/ws", "-m", msg}, tc.tls...)...)
				if status != 0 || stderr != "" {
					t.Fatalf("pub: exit status %d, stderr:\n%s", status, stderr)
				}
			}
			publish("before")
			s.waitStdout("before")
			// Acknowledged, or QoS 1 may deliver it again after the restart.
			ctx, cancel := context.WithTimeout(t.Context(), patience)
			defer cancel()
			if err := b.Wait(ctx, func() bool { return b.Inflight(id) == 0 }); err != nil {
				t.Fatal(err)
			}
			if err := b.Restart(); err != nil {
				t.Fatal(err)
			}
			s.waitStderr("mqtt sub: reconnected to " + url + " (session present: true)")
			publish("after")
			finish(t, s, 0, "before\nafter\n")
		})
	}
}

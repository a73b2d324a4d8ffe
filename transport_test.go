package mqtt_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// echo subscribes c to topic at QoS 1, publishes payload to it at QoS 1
// and waits for the message to come back.
func echo(t *testing.T, c *mqtt.Client, topic, payload string) {
	t.Helper()
	ctx := testCtx(t)
	if err := c.Subscribe(ctx, mqtt.Subscription{Filter: topic, QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := c.Publish(ctx, mqtt.Message{Topic: topic, Payload: []byte(payload), QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if m := receive(t, c); m.Topic != topic || string(m.Payload) != payload || m.QoS != mqtt.AtLeastOnce {
		t.Fatalf("received %q %q QoS %d, want %q %q QoS 1", m.Topic, m.Payload, m.QoS, topic, payload)
	}
}

// tlsBroker returns the server side of TLS with a certificate for
// 127.0.0.1 from ca.
func tlsBroker(t *testing.T, ca *mqtttest.CA) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1")}}
}

// transport is a broker configuration of one transport.
type transport struct {
	name string
	cfg  mqtttest.BrokerConfig
}

// transports are the broker configurations of tcp://, tls:// (a
// certificate from ca), ws:// and wss://, in that order.
func transports(t *testing.T, ca *mqtttest.CA) []transport {
	return []transport{
		{"tcp", mqtttest.BrokerConfig{}},
		{"tls", mqtttest.BrokerConfig{TLS: tlsBroker(t, ca)}},
		{"ws", mqtttest.BrokerConfig{WebSocket: true}},
		{"wss", mqtttest.BrokerConfig{TLS: tlsBroker(t, ca), WebSocket: true}},
	}
}

// A QoS 1 round trip through mqtt.Dial over tls://, ws:// and wss://, in
// MQTT 3.1.1 and 5.
func TestTLSAndWebSocketRoundTrip(t *testing.T) {
	ca := mqtttest.NewCA(t)
	for _, tc := range transports(t, ca)[1:] {
		t.Run(tc.name, func(t *testing.T) {
			b := mqtttest.NewBrokerWith(t, tc.cfg)
			for _, v := range versions {
				t.Run(v.name, func(t *testing.T) {
					c := dial(t, mqtt.Config{
						Servers:  []string{b.URL()},
						ClientID: tc.name + "-" + v.name,
						Version:  v.version,
						TLS:      &tls.Config{RootCAs: ca.Pool()},
					})
					echo(t, c, "transport/"+tc.name, "over "+tc.name)
				})
			}
		})
	}
}

// Over ws://, a broker restart in the middle: the client reconnects, its
// session is still there, and a message published meanwhile flows.
func TestWebSocketBrokerRestart(t *testing.T) {
	b := mqtttest.NewBrokerWith(t, mqtttest.BrokerConfig{WebSocket: true})
	c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "ws-restart"})
	waitEvent(t, c, mqtt.Connected)
	echo(t, c, "restart/ws", "before")
	// Its PUBACK in, or the resumed session would send "before" again.
	if err := b.Wait(testCtx(t), func() bool { return b.Inflight("ws-restart") == 0 }); err != nil {
		t.Fatal(err)
	}

	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, c, mqtt.ConnectionLost); e.Server != b.URL() {
		t.Errorf("ConnectionLost names %q, want %q", e.Server, b.URL())
	}
	published := c.PublishAsync(testCtx(t), mqtt.Message{Topic: "restart/ws", Payload: []byte("after"), QoS: mqtt.AtLeastOnce})
	if e := waitEvent(t, c, mqtt.Connected); !e.SessionPresent {
		t.Error("reconnected without the session")
	}
	if err := <-published; err != nil {
		t.Fatalf("Publish across the restart: %v", err)
	}
	if m := receive(t, c); string(m.Payload) != "after" {
		t.Fatalf("received %q, want after", m.Payload)
	}
}

// A certificate that does not verify: Dial fails with an error that names
// the server, says what is wrong and what to set.
func TestTLSBadCertificate(t *testing.T) {
	ca := mqtttest.NewCA(t)
	for _, ws := range []bool{false, true} {
		b := mqtttest.NewBrokerWith(t, mqtttest.BrokerConfig{TLS: tlsBroker(t, ca), WebSocket: ws})
		t.Run(strings.Split(b.URL(), ":")[0], func(t *testing.T) {
			c, err := mqtt.Dial(testCtx(t), mqtt.Config{
				Servers:  []string{b.URL()},
				ClientID: "bad-cert",
				TLS:      &tls.Config{RootCAs: mqtttest.NewCA(t).Pool()}, // not the broker's CA
				Backoff:  backoff.Never(),
			})
			if err == nil {
				c.Close()
				t.Fatal("Dial connected to a broker whose certificate does not verify")
			}
			for _, want := range []string{b.URL(), "certificate did not verify", "Config.TLS.RootCAs"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error does not say %q: %v", want, err)
				}
			}
			if !errors.As(err, &x509.UnknownAuthorityError{}) {
				t.Errorf("the error does not wrap x509.UnknownAuthorityError: %v", err)
			}
			t.Log(err)
		})
	}
}

// ws:// against real Mosquitto (libwebsockets on its side), when installed.
func TestWebSocketMosquitto(t *testing.T) {
	b := mosquitto.NewWith(t, mosquitto.Config{WebSockets: true})
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			c := dial(t, mqtt.Config{Servers: []string{b.WSURL()}, ClientID: "ws-" + v.name, Version: v.version})
			echo(t, c, "mosquitto/ws", "over ws to mosquitto")
		})
	}
}

// A graceful Disconnect over every transport, in both versions: the
// client waits for the broker to close after the DISCONNECT, and the
// broker, having read it, publishes no Will. The message published after
// the broker let the client go is the first the watcher gets; a Will would
// have come before it.
func TestGracefulDisconnectOverEveryTransport(t *testing.T) {
	ca := mqtttest.NewCA(t)
	for _, tc := range transports(t, ca) {
		t.Run(tc.name, func(t *testing.T) {
			b := mqtttest.NewBrokerWith(t, tc.cfg)
			for _, v := range versions {
				t.Run(v.name, func(t *testing.T) {
					ctx := testCtx(t)
					topic := "will/" + tc.name + "/" + v.name
					watcher := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "watcher", Version: v.version, TLS: &tls.Config{RootCAs: ca.Pool()}})
					if err := watcher.Subscribe(ctx, mqtt.Subscription{Filter: topic, QoS: mqtt.AtLeastOnce}); err != nil {
						t.Fatal(err)
					}
					id := "leaving-" + tc.name + "-" + v.name
					c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: id, Version: v.version, TLS: &tls.Config{RootCAs: ca.Pool()},
						Will: &mqtt.Message{Topic: topic, Payload: []byte("will"), QoS: mqtt.AtLeastOnce}})
					if err := c.Publish(ctx, mqtt.Message{Topic: "elsewhere", Payload: []byte("x"), QoS: mqtt.AtLeastOnce}); err != nil {
						t.Fatal(err)
					}
					if err := c.Disconnect(ctx); err != nil {
						t.Fatalf("Disconnect: %v", err)
					}
					if err := b.WaitDisconnected(ctx, id); err != nil {
						t.Fatal(err)
					}
					if err := watcher.Publish(ctx, mqtt.Message{Topic: topic, Payload: []byte("after"), QoS: mqtt.AtLeastOnce}); err != nil {
						t.Fatal(err)
					}
					if m := receive(t, watcher); string(m.Payload) != "after" {
						t.Fatalf("the watcher got %q first, want %q: the broker published the Will of a client that said DISCONNECT", m.Payload, "after")
					}
				})
			}
		})
	}
}

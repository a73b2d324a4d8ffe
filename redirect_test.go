package mqtt_test

import (
	"testing"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// A CONNACK that says "use another server" sends the next attempt to its
// Server Reference.
func TestRedirectInConnack(t *testing.T) {
	target := mqtttest.NewBroker(t)
	sb := mqtttest.NewScriptedBroker(t)
	sb.SetConnack(frame(t, 5, &codec.Connack{ReasonCode: codec.UseAnotherServer,
		Properties: &codec.Properties{ServerReference: target.Addr()}}))
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "redirect", Version: 5})
	if e := waitEvent(t, c, mqtt.Connected); e.Server != target.URL() {
		t.Fatalf("connected to %s, want the referenced %s", e.Server, target.URL())
	}
	if err := c.Publish(testCtx(t), mqtt.Message{Topic: "r", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats().Connections; st.Redirected != 1 || st.Refused != 1 {
		t.Fatalf("connection stats %+v: want 1 refusal and 1 redirect", st)
	}
}

// A DISCONNECT with "server moved" sends the next attempt to its Server
// Reference; when that fails, the client goes back to its own list.
func TestRedirectInDisconnect(t *testing.T) {
	moved := mqtttest.NewBroker(t)
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "moved", Version: 5})
	sc := scripted(t, sb)
	waitEvent(t, c, mqtt.Connected)
	send(t, sc, 5, &codec.Disconnect{ReasonCode: codec.ServerMoved,
		Properties: &codec.Properties{ServerReference: moved.URL()}})
	if e := waitEvent(t, c, mqtt.Connected); e.Server != moved.URL() {
		t.Fatalf("connected to %s, want %s", e.Server, moved.URL())
	}

	// Moved again, to a server that is down: back to the list.
	deadURL := moved.URL()
	if err := moved.Stop(); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, c, mqtt.ConnectionLost)
	sc = scripted(t, sb)
	waitEvent(t, c, mqtt.Connected)
	send(t, sc, 5, &codec.Disconnect{ReasonCode: codec.UseAnotherServer,
		Properties: &codec.Properties{ServerReference: deadURL}})
	if e := waitEvent(t, c, mqtt.Connected); e.Server != sb.URL() {
		t.Fatalf("connected to %s, want the configured %s after the reference failed", e.Server, sb.URL())
	}
	scripted(t, sb)
}

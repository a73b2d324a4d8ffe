package mqtttest_test

import (
	"testing"

	client "github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// A QoS 1 PUBLISH with User Properties is acknowledged with a plain PUBACK:
// mochi v2.7.9 on its own copies the properties into the PUBACK with reason
// code 0x01, which a compliant client refuses as a protocol error.
func TestBrokerAckWithoutInheritedProperties(t *testing.T) {
	b := mqtttest.NewBroker(t)
	c, err := client.Dial(t.Context(), client.Config{Servers: []string{b.URL()}, ClientID: "props", Version: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := client.Message{Topic: "p", QoS: 1, Properties: &client.Properties{User: []client.UserProperty{{Key: "k", Value: "v"}}}}
	if err := c.Publish(t.Context(), m); err != nil {
		t.Fatalf("Publish with user properties: %v", err)
	}
	if s := c.Stats(); s.Connections.Succeeded != 1 {
		t.Fatalf("%d connections: the PUBACK cost a reconnect", s.Connections.Succeeded)
	}
}

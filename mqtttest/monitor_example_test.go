package mqtttest_test

import (
	"fmt"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// A Monitor on a transport of one's own: give it each frame as it crosses
// the wire, and Close it when the connection ends.
func ExampleMonitor() {
	m := mqtttest.NewMonitor("pipe 1")
	connect, _ := (&codec.Connect{Version: codec.V311, ClientID: "c", CleanStart: true}).AppendTo(nil, 0)
	m.Client(connect)
	m.Server([]byte{0x20, 0x02, 0x00, 0x00}) // CONNACK
	m.Client([]byte{0xE0, 0x00})             // DISCONNECT
	m.Client([]byte{0xC0, 0x00})             // PINGREQ: one packet too many
	m.Close()
	for _, v := range m.Violations() {
		fmt.Println(v)
	}
	// Output:
	// [MQTT-3.14.4-2] the client sent PINGREQ after DISCONNECT
	// 	requirement: after DISCONNECT the client sends nothing more on the connection
	// 	connection: pipe 1 (client "c", MQTT 3.1.1)
	// 	last frames (→ client to server, ← server to client):
	// 		  → CONNECT v4 client="c" keepalive=0 clean (15 bytes)
	// 		  ← CONNACK code=0x00 (4 bytes)
	// 		  → DISCONNECT (2 bytes)
	// 		! → PINGREQ (2 bytes)
}

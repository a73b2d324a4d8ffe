package interop_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
)

// Mosquitto keeps at most max_inflight_messages QoS 2 messages of a client
// between PUBLISH and PUBREL, and refuses a QoS 1 or 2 PUBLISH beyond that
// with "quota exceeded". An MQTT 5 client is told the limit (Receive
// Maximum; see TestReceiveMaximumOfTheBroker). MQTT 3.1.1 can neither
// announce it nor refuse a message: Mosquitto 2.0.11 answers with a plain
// PUBACK or PUBREC, drops the message and closes the connection. The client
// reconnects and sends it again, unless the acknowledgement got out before
// the close: then the client holds an acknowledged message that is lost (the
// chaos suite saw it happen). A 3.1.1 client must keep MaxInflight within
// the broker's limit (20 by default); then nothing is lost and the
// connection stays up. Beyond it, this test only reports what happened.
func TestV311MosquittoInflightQuota(t *testing.T) {
	const quota, n = 5, 60
	b := mosquitto.New(t, "max_inflight_messages "+strconv.Itoa(quota))
	for _, tc := range []struct {
		name     string
		inflight int
	}{{"within", quota}, {"beyond", 100}} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := "quota/" + tc.name + "/"
			sub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "quota-sub-" + tc.name, MaxPending: 4 * n})
			subscribe(t, sub, mqtt.Subscription{Filter: prefix + "#", QoS: mqtt.ExactlyOnce})
			pub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "quota-pub-" + tc.name, MaxInflight: tc.inflight})
			q1 := &stream{topic: prefix + "q1", qos: mqtt.AtLeastOnce}
			q2 := &stream{topic: prefix + "q2", qos: mqtt.ExactlyOnce}
			publishAsync(t, pub, n, q2, q1)()
			if tc.inflight <= quota {
				receiveAll(t, sub, q1, q2)
				expectNext(t, pub, sub, prefix+"marker")
				if n := strings.Count(b.Log(), "as quota-pub-"+tc.name); n != 1 {
					t.Fatalf("the publisher connected %d times, want 1", n)
				}
				return
			}
			// Beyond the quota: count what arrived, up to a marker published
			// after every result was in.
			publish(t, pub, mqtt.Message{Topic: prefix + "marker", Payload: []byte("marker"), QoS: mqtt.AtLeastOnce})
			got := map[string]map[string]bool{q1.topic: {}, q2.topic: {}}
			for {
				m := receive(t, sub)
				if m.Topic == prefix+"marker" {
					break
				}
				got[m.Topic][string(m.Payload)] = true
			}
			dropped := strings.Count(b.Log(), "rc151)")
			lost := 2*n - len(got[q1.topic]) - len(got[q2.topic])
			t.Logf("MaxInflight %d against max_inflight_messages %d: %d of %d acknowledged messages lost; mosquitto refused %d PUBLISH packets with quota exceeded (0x97) and the client reconnected %d times",
				tc.inflight, quota, lost, 2*n, dropped, strings.Count(b.Log(), "as quota-pub-"+tc.name)-1)
		})
	}
}

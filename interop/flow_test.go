package interop_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
)

// MQTT 5, client to broker: Mosquitto announces max_inflight_messages as
// its Receive Maximum, and answers a QoS 1 or 2 PUBLISH beyond it with
// "quota exceeded". A hundred publishes at once, within a window of 2: every
// one succeeds, so the client never had more than 2 unacknowledged.
func TestReceiveMaximumOfTheBroker(t *testing.T) {
	b := mosquitto.New(t, "max_inflight_messages 2")
	c := dial(t, config(b, "rm-pub", 5))
	var results []<-chan error
	for i := range 100 {
		qos := mqtt.AtLeastOnce + mqtt.QoS(i%2)
		results = append(results, c.PublishAsync(testCtx(t), mqtt.Message{Topic: "rm/" + strconv.Itoa(i), QoS: qos}))
	}
	for i, r := range results {
		if err := <-r; err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if strings.Contains(b.Log(), "rc151") { // 0x97
		t.Fatal("mosquitto reported quota exceeded")
	}
}

// MQTT 5, broker to client: the client announces MaxPending as its Receive
// Maximum, and Mosquitto holds back what does not fit until the
// application has taken (and, with ManualAck, acknowledged) what it has.
func TestReceiveMaximumOfTheClient(t *testing.T) {
	const window, n = 3, 20
	b := mosquitto.New(t, "")
	sub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "rm-sub", Version: 5, MaxPending: window, ManualAck: true})
	subscribe(t, sub, mqtt.Subscription{Filter: "rm/#", QoS: mqtt.ExactlyOnce})
	pub := dial(t, config(b, "rm-pub", 5))
	s := &stream{topic: "rm/q1", qos: mqtt.AtLeastOnce}
	publishAsync(t, pub, n, s)()

	var unacked []mqtt.Message
	for range window {
		unacked = append(unacked, receive(t, sub))
	}
	// Mosquitto has every message (each PUBACK came after it was queued for
	// the subscriber) and has sent the subscriber only the window's worth.
	sent := func(log string) int { return strings.Count(log, "Sending PUBLISH to rm-sub") }
	if got := sent(b.Log()); got != window {
		t.Fatalf("mosquitto sent %d messages to a client whose Receive Maximum is %d", got, window)
	}
	for _, m := range unacked {
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	for i := window; i < n; i++ {
		m := receive(t, sub)
		if string(m.Payload) != strconv.Itoa(i) {
			t.Fatalf("got %q, want %d", m.Payload, i)
		}
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if got := sent(b.Log()); got != n {
		t.Fatalf("mosquitto sent %d messages, want %d", got, n)
	}
}

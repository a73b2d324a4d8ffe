package interop_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// A message of each QoS goes through Mosquitto and arrives as sent, with
// the QoS the subscription allows.
func TestRoundTripEveryQoS(t *testing.T) {
	eachVersion(t, "", func(t *testing.T, b *mosquitto.Broker, v version) {
		sub := dial(t, config(b, "rt-sub-"+v.name, v.version))
		pub := dial(t, config(b, "rt-pub-"+v.name, v.version))
		prefix := "rt/" + v.name + "/"
		subscribe(t, sub, mqtt.Subscription{Filter: prefix + "#", QoS: mqtt.ExactlyOnce})
		for qos := mqtt.AtMostOnce; qos <= mqtt.ExactlyOnce; qos++ {
			topic := fmt.Sprintf("%sqos%d", prefix, qos)
			publish(t, pub, mqtt.Message{Topic: topic, Payload: []byte("payload " + topic), QoS: qos})
			if m := receiveWant(t, sub, topic, "payload "+topic); m.QoS != qos || m.Retain || m.Duplicate {
				t.Fatalf("QoS %d message arrived with QoS %d, retain %v, dup %v", qos, m.QoS, m.Retain, m.Duplicate)
			}
		}
		// A subscription's QoS caps the delivery's.
		subscribe(t, sub, mqtt.Subscription{Filter: prefix + "#", QoS: mqtt.AtLeastOnce})
		publish(t, pub, mqtt.Message{Topic: prefix + "capped", Payload: []byte("2 to 1"), QoS: mqtt.ExactlyOnce})
		if m := receiveWant(t, sub, prefix+"capped", "2 to 1"); m.QoS != mqtt.AtLeastOnce {
			t.Fatalf("QoS 2 message on a QoS 1 subscription arrived with QoS %d", m.QoS)
		}
		if err := pub.Disconnect(testCtx(t)); err != nil {
			t.Fatalf("Disconnect: %v", err)
		}
	})
}

// A retained message is handed to a later subscriber with Retain set, and
// an empty retained message clears it.
func TestRetained(t *testing.T) {
	eachVersion(t, "", func(t *testing.T, b *mosquitto.Broker, v version) {
		topic := "retained/" + v.name
		pub := dial(t, config(b, "ret-pub-"+v.name, v.version))
		publish(t, pub, mqtt.Message{Topic: topic, Payload: []byte("kept"), QoS: mqtt.AtLeastOnce, Retain: true})

		late := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "ret-late-" + v.name, Version: v.version, CleanStart: true})
		subscribe(t, late, mqtt.Subscription{Filter: topic, QoS: mqtt.AtLeastOnce})
		if m := receiveWant(t, late, topic, "kept"); !m.Retain {
			t.Fatal("the retained message arrived without Retain")
		}
		// A live message is not a retained one, even to the same subscriber.
		publish(t, pub, mqtt.Message{Topic: topic, Payload: []byte("live"), QoS: mqtt.AtLeastOnce})
		if m := receiveWant(t, late, topic, "live"); m.Retain {
			t.Fatal("a live message arrived with Retain set")
		}

		publish(t, pub, mqtt.Message{Topic: topic, QoS: mqtt.AtLeastOnce, Retain: true}) // clears it
		receiveWant(t, late, topic, "")
		later := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "ret-later-" + v.name, Version: v.version, CleanStart: true})
		subscribe(t, later, mqtt.Subscription{Filter: topic, QoS: mqtt.AtLeastOnce})
		// Mosquitto sends retained messages right after the SUBACK: had
		// one survived, it would arrive before this live one.
		publish(t, pub, mqtt.Message{Topic: topic, Payload: []byte("after clear"), QoS: mqtt.AtLeastOnce})
		receiveWant(t, later, topic, "after clear")
	})
}

// The will is published when the client's connection drops without a
// DISCONNECT (cut by the network), and not after a clean Disconnect.
func TestWillOnUncleanDrop(t *testing.T) {
	eachVersion(t, "", func(t *testing.T, b *mosquitto.Broker, v version) {
		topic := "will/" + v.name
		watcher := dial(t, config(b, "will-watcher-"+v.name, v.version))
		subscribe(t, watcher, mqtt.Subscription{Filter: topic + "/#", QoS: mqtt.AtLeastOnce})

		p := mqtttest.NewProxy(t, b.Addr())
		will := &mqtt.Message{Topic: topic + "/gone", Payload: []byte("sensor lost"), QoS: mqtt.AtLeastOnce}
		sensor := dial(t, mqtt.Config{Servers: []string{p.URL()}, ClientID: "will-sensor-" + v.name, Version: v.version, Will: will})
		waitEvent(t, sensor, mqtt.Connected)
		p.Cut()
		if m := receiveWant(t, watcher, will.Topic, "sensor lost"); m.QoS != mqtt.AtLeastOnce {
			t.Fatalf("will arrived with QoS %d, want 1", m.QoS)
		}

		// The sensor reconnects on its own, then leaves cleanly: no will.
		waitEvent(t, sensor, mqtt.Connected)
		if err := sensor.Disconnect(testCtx(t)); err != nil {
			t.Fatalf("Disconnect: %v", err)
		}
		// Mosquitto discards the will as it handles the DISCONNECT; had
		// it kept it, the will would go out before the marker below.
		if err := b.WaitLog(testCtx(t), func(log string) bool {
			return strings.Contains(log, "Received DISCONNECT from will-sensor-"+v.name)
		}); err != nil {
			t.Fatalf("mosquitto never got the DISCONNECT: %v", err)
		}
		pub := dial(t, config(b, "will-marker-"+v.name, v.version))
		publish(t, pub, mqtt.Message{Topic: topic + "/marker", Payload: []byte("after disconnect"), QoS: mqtt.AtLeastOnce})
		receiveWant(t, watcher, topic+"/marker", "after disconnect")
	})
}

// SubscribeGranted reports what Mosquitto granted: a listener with
// max_qos 1 grants QoS 1 to a QoS 2 subscription, and delivers with it.
func TestSubscribeGrantedMosquittoMaxQoS(t *testing.T) {
	eachVersion(t, "max_qos 1", func(t *testing.T, b *mosquitto.Broker, v version) {
		sub := dial(t, config(b, "granted-sub-"+v.name, v.version))
		topic := "granted/" + v.name
		codes, err := sub.SubscribeGranted(testCtx(t), mqtt.Subscription{Filter: topic, QoS: mqtt.ExactlyOnce}, mqtt.Subscription{Filter: topic + "/0", QoS: mqtt.AtMostOnce})
		if err != nil || !slices.Equal(codes, []codec.ReasonCode{codec.GrantedQoS1, codec.GrantedQoS0}) {
			t.Fatalf("SubscribeGranted = %v, %v; want [1 0], nil", codes, err)
		}
		pub := dial(t, config(b, "granted-pub-"+v.name, v.version))
		publish(t, pub, mqtt.Message{Topic: topic, Payload: []byte("one"), QoS: mqtt.AtLeastOnce})
		if m := receiveWant(t, sub, topic, "one"); m.QoS != mqtt.AtLeastOnce {
			t.Fatalf("delivered with QoS %d, want 1", m.QoS)
		}
	})
}

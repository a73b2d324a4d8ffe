package interop_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// A client restarted with the ClientID of one that crashed in the middle
// of a QoS 2 publish, with defaults (a persistent session, no Store),
// against Mosquitto, which holds that flow waiting for a PUBREL: one
// connection, every new publish delivered, QoS 2 once. (The same against
// mochi-mqtt, which sends the old PUBREC again, made the client reconnect
// for ever; see TestResumedSessionWithAnEarlierClientsQoS2Flow.)
func TestResumedSessionWithAnEarlierClientsQoS2FlowMosquitto(t *testing.T) {
	eachVersion(t, "", func(t *testing.T, b *mosquitto.Broker, v version) {
		ctx := testCtx(t)
		watcher := dial(t, config(b, "watcher-"+v.name, v.version))
		prefix := "foreign/" + v.name + "/"
		subscribe(t, watcher, mqtt.Subscription{Filter: prefix + "#", QoS: mqtt.ExactlyOnce})
		id := "restarted-" + v.name

		// The earlier client: its PUBLISH reaches Mosquitto, the PUBREC
		// never comes back, and it is gone.
		p := mqtttest.NewProxy(t, b.Addr())
		cfg := config(b, id, v.version)
		cfg.Servers = []string{p.URL()}
		a := dial(t, cfg)
		p.Latency(30 * time.Millisecond)
		up := p.Stats().BytesUp
		res := a.PublishAsync(ctx, mqtt.Message{Topic: prefix + "earlier", Payload: []byte("earlier"), QoS: mqtt.ExactlyOnce})
		if err := p.WaitStats(ctx, func(s mqtttest.ProxyStats) bool { return s.BytesUp > up }); err != nil {
			t.Fatal(err)
		}
		p.Blackhole(true)
		a.Close()
		<-res
		p.Cut()

		c := dial(t, config(b, id, v.version))
		for i, qos := range []mqtt.QoS{mqtt.ExactlyOnce, mqtt.AtLeastOnce, mqtt.ExactlyOnce} {
			publish(t, c, mqtt.Message{Topic: fmt.Sprint(prefix, "new/", i), Payload: []byte("new"), QoS: qos})
		}
		if n := c.Stats().Connections.Attempts; n != 1 {
			t.Errorf("%d connections, want 1", n)
		}
		// From the same client: the broker routes one connection's
		// messages in order.
		publish(t, c, mqtt.Message{Topic: prefix + "end", QoS: mqtt.AtLeastOnce})
		got := map[string]int{}
		for m := receive(t, watcher); m.Topic != prefix+"end"; m = receive(t, watcher) {
			got[m.Topic]++
		}
		for i := range 3 {
			topic := fmt.Sprint(prefix, "new/", i)
			if n := got[topic]; n == 0 || n > 1 && i != 1 {
				t.Errorf("%s delivered %d times", topic, n)
			}
		}
	})
}

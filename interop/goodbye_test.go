package interop_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// Close and Disconnect right after publishing, against Mosquitto: the
// broker publishes no Will of a client that said DISCONNECT. (Against the
// embedded mochi, a Close that closed the socket as soon as the DISCONNECT
// was written made the broker publish the Will nearly every time; see
// TestStopRightAfterPublishingPublishesNoWill.)
func TestStopRightAfterPublishingMosquitto(t *testing.T) {
	eachVersion(t, "", func(t *testing.T, b *mosquitto.Broker, v version) {
		ctx := testCtx(t)
		watcher := dial(t, config(b, "watcher-"+v.name, v.version))
		subscribe(t, watcher, mqtt.Subscription{Filter: "will/" + v.name + "/#", QoS: mqtt.AtLeastOnce})
		const rounds = 30
		for _, stop := range []string{"Close", "Disconnect"} {
			for i := range rounds {
				id := fmt.Sprint("leaving-", v.name, "-", stop, "-", i)
				cfg := config(b, id, v.version)
				cfg.Will = &mqtt.Message{Topic: "will/" + v.name + "/" + id, Payload: []byte("will"), QoS: mqtt.AtLeastOnce}
				c := dial(t, cfg)
				for range 5 {
					c.PublishAsync(ctx, mqtt.Message{Topic: "t/" + id, Payload: []byte("x"), QoS: mqtt.AtLeastOnce})
				}
				if stop == "Close" {
					c.Close()
				} else if err := c.Disconnect(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		if wills := willsBefore(t, watcher, "will/"+v.name+"/end"); len(wills) > 0 {
			t.Errorf("%d Wills published by %d clients that stopped with Close or Disconnect: %v", len(wills), 2*rounds, wills[:min(5, len(wills))])
		}
	})
}

// A stop that lands while the client waits for its CONNACK, once Mosquitto
// has the CONNECT, ends that connection with DISCONNECT too: Mosquitto,
// which holds the client connected, publishes no Will. (Cut instead, every
// one of them did.)
func TestStopWhileConnackPendingMosquitto(t *testing.T) {
	eachVersion(t, "", func(t *testing.T, b *mosquitto.Broker, v version) {
		ctx := testCtx(t)
		watcher := dial(t, config(b, "watcher-"+v.name, v.version))
		subscribe(t, watcher, mqtt.Subscription{Filter: "will/" + v.name + "/#", QoS: mqtt.AtLeastOnce})
		p := mqtttest.NewProxy(t, b.Addr())
		// The CONNACK takes this long to reach the client once Mosquitto
		// has sent it: the stop lands in that window.
		p.Latency(20 * time.Millisecond)
		const rounds = 10
		for _, stop := range []string{"Close", "Disconnect"} {
			for i := range rounds {
				id := fmt.Sprint("connecting-", v.name, "-", stop, "-", i)
				up := p.Stats().BytesUp
				c, err := mqtt.Start(mqtt.Config{Servers: []string{p.URL()}, ClientID: id, Version: v.version,
					Will: &mqtt.Message{Topic: "will/" + v.name + "/" + id, Payload: []byte("will"), QoS: mqtt.AtLeastOnce}})
				if err != nil {
					t.Fatal(err)
				}
				// Mosquitto has the CONNECT once the proxy delivered it.
				if err := p.WaitStats(ctx, func(s mqtttest.ProxyStats) bool { return s.BytesUp > up }); err != nil {
					c.Close()
					t.Fatal(err)
				}
				if stop == "Close" {
					c.Close()
				} else if err := c.Disconnect(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		p.Latency(0)
		// Mosquitto publishes a Will as it lets a client go, before this.
		// The proxy delivers each client's last bytes (its DISCONNECT, or
		// the end of the stream) a latency after the client sent them:
		// the end marker goes after the proxy has delivered them all.
		if err := p.WaitStats(ctx, func(s mqtttest.ProxyStats) bool { return s.Active == 0 }); err != nil {
			t.Fatal(err)
		}
		if wills := willsBefore(t, watcher, "will/"+v.name+"/end"); len(wills) > 0 {
			t.Errorf("%d Wills published by %d clients stopped while their CONNACK was on its way: %v", len(wills), 2*rounds, wills[:min(5, len(wills))])
		}
	})
}

// willsBefore publishes end from watcher, a subscriber to the Wills, and
// returns the topics of the Wills it received before it. Mosquitto
// publishes a Will as it lets a client go, so those of clients already
// gone come first.
func willsBefore(t *testing.T, watcher *mqtt.Client, end string) []string {
	t.Helper()
	publish(t, watcher, mqtt.Message{Topic: end, QoS: mqtt.AtLeastOnce})
	var wills []string
	for m := receive(t, watcher); m.Topic != end; m = receive(t, watcher) {
		wills = append(wills, m.Topic)
	}
	return wills
}

package interop_test

import (
	"fmt"
	"testing"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
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
		// Mosquitto publishes a Will as it lets a client go, before this.
		publish(t, watcher, mqtt.Message{Topic: "will/" + v.name + "/end", QoS: mqtt.AtLeastOnce})
		wills := 0
		for m := receive(t, watcher); m.Topic != "will/"+v.name+"/end"; m = receive(t, watcher) {
			if wills++; wills <= 5 {
				t.Errorf("the Will on %s was published", m.Topic)
			}
		}
		if wills > 0 {
			t.Errorf("%d Wills published by %d clients that stopped with Close or Disconnect", wills, 2*rounds)
		}
	})
}

package interop_test

import (
	"errors"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
)

// Two clients by mistake share a ClientID: Mosquitto hands the session to
// each new connection (MQTT 5: DISCONNECT 0x8E; 3.1.1: it just closes the
// old one). Both clients are told (ClientIDConflict, ErrClientIDConflict
// in the strategy's Attempt.Err), and a strategy can stop the loop: here
// each gives up after a few retries of the conflict, and the broker is
// left with one of them.
func TestTwinClientsOnMosquitto(t *testing.T) {
	eachVersion(t, "", func(t *testing.T, b *mosquitto.Broker, v version) {
		id := "twin-" + v.name
		giveUp := backoff.Func(func(a backoff.Attempt) (time.Duration, bool) {
			if errors.Is(a.Err, mqtt.ErrClientIDConflict) && a.N > 3 {
				return 0, false
			}
			return backoff.Exponential{Initial: 20 * time.Millisecond, Max: 500 * time.Millisecond, Jitter: backoff.FullJitter}.Next(a)
		})
		cfg := config(b, id, v.version)
		cfg.Backoff, cfg.StableAfter = giveUp, 5*time.Second
		first := dial(t, cfg)
		second := dial(t, cfg)
		for i, c := range []*mqtt.Client{first, second} {
			e := waitEvent(t, c, mqtt.ClientIDConflict)
			if !errors.Is(e.Err, mqtt.ErrClientIDConflict) || e.ClientID != id {
				t.Fatalf("client %d: %v", i+1, e)
			}
		}
		// One of them gives up first; the other then keeps the session.
		var quit, kept *mqtt.Client
		select {
		case <-first.Done():
			quit, kept = first, second
		case <-second.Done():
			quit, kept = second, first
		case <-time.After(wait):
			t.Fatal("neither twin gave up on the conflict")
		}
		if err := quit.Err(); !errors.Is(err, mqtt.ErrGaveUp) || !errors.Is(err, mqtt.ErrClientIDConflict) {
			t.Fatalf("the twin that stopped: %v, want ErrGaveUp wrapping ErrClientIDConflict", err)
		}
		if err := kept.WaitConnected(testCtx(t)); err != nil {
			t.Fatalf("the other twin: %v", err)
		}
		publish(t, kept, mqtt.Message{Topic: "twins/" + v.name, QoS: mqtt.AtLeastOnce})
	})
}

package interop_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
)

// unknownMethod is an Authenticator whose method no broker knows.
type unknownMethod struct{}

func (unknownMethod) Method() string                                { return "TOY-CHALLENGE" }
func (unknownMethod) Start(context.Context, string) ([]byte, error) { return []byte("hello"), nil }
func (unknownMethod) Next(context.Context, []byte) ([]byte, error) {
	return nil, errors.New("no challenge expected")
}
func (unknownMethod) Done(context.Context, []byte) error { return nil }

// Mosquitto 2.0 runs enhanced authentication only through a plugin;
// without one it refuses a CONNECT with an Authentication Method with
// CONNACK 0x8C Bad authentication method, which the client reports as a
// *ConnectError (and the strategy decides whether to retry).
func TestEnhancedAuthUnknownMethod(t *testing.T) {
	b := mosquitto.New(t, "")
	cfg := config(b, "auth-unknown", 5)
	cfg.Auth = unknownMethod{}
	cfg.Backoff = backoff.Never()
	_, err := mqtt.Dial(testCtx(t), cfg)
	var ce *mqtt.ConnectError
	if !errors.As(err, &ce) || ce.ReasonCode != codec.BadAuthenticationMethod {
		t.Fatalf("Dial = %v, want a *ConnectError 0x8C", err)
	}
	t.Log(err)
}

// Mosquitto announces a Topic Alias Maximum of 10 (max_topic_alias): with
// Config.TopicAliases the client uses aliases, Mosquitto resolves them,
// and a subscriber receives every message under its topic, for fewer
// bytes from the publisher.
func TestTopicAliasesMosquitto(t *testing.T) {
	b := mosquitto.New(t, "")
	sub := dial(t, config(b, "alias-sub", 5))
	subscribe(t, sub, mqtt.Subscription{Filter: "fleet/#", QoS: 1})
	topics := []string{"fleet/truck-0042/engine/temperature", "fleet/truck-0042/engine/oil-pressure"}
	written := make(map[int]uint64)
	for _, aliases := range []int{0, 10} {
		cfg := config(b, "alias-pub-"+strconv.Itoa(aliases), 5)
		cfg.TopicAliases = aliases
		pub := dial(t, cfg)
		before := pub.Stats().BytesWritten
		for i := range 50 {
			m := mqtt.Message{Topic: topics[i%2], Payload: []byte(strconv.Itoa(i)), QoS: mqtt.QoS(i % 3)}
			publish(t, pub, m)
			receiveWant(t, sub, m.Topic, string(m.Payload))
		}
		written[aliases] = pub.Stats().BytesWritten - before
		pub.Close()
	}
	t.Logf("50 publishes to two topics: %d bytes without aliases, %d with", written[0], written[10])
	if written[10] >= written[0] {
		t.Fatalf("with aliases %d bytes, without %d: no saving", written[10], written[0])
	}
}

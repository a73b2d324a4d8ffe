package interop_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// aclConfig is the dynamic security configuration of aclBroker: anonymous
// clients may publish to open/#, subscribe to open/# and readonly/#, and
// nothing else.
const aclConfig = `{
  "defaultACLAccess": {"publishClientSend": false, "publishClientReceive": true, "subscribe": false, "unsubscribe": true},
  "clients": [],
  "groups": [{"groupname": "anonymous", "roles": [{"rolename": "interop"}]}],
  "roles": [{"rolename": "interop", "acls": [
    {"acltype": "publishClientSend", "topic": "open/#", "allow": true},
    {"acltype": "subscribePattern", "topic": "open/#", "allow": true},
    {"acltype": "subscribePattern", "topic": "readonly/#", "allow": true}
  ]}],
  "anonymousGroup": "anonymous"
}`

// aclBroker starts mosquitto with aclConfig and extra configuration.
func aclBroker(t *testing.T, conf string) *mosquitto.Broker {
	t.Helper()
	return mosquitto.New(t, mosquitto.DynamicSecurity(t, aclConfig)+conf)
}

// MQTT 5: a publish the broker refuses ends with a *PublishError carrying
// the broker's reason code, for QoS 1 (PUBACK) and QoS 2 (PUBREC), and the
// client carries on. A success code other than 0 ("no matching
// subscribers") is a success.
func TestRefusedPublishReasonCode(t *testing.T) {
	b := aclBroker(t, "")
	c := dial(t, config(b, "refused-pub", 5))
	for _, qos := range []mqtt.QoS{mqtt.AtLeastOnce, mqtt.ExactlyOnce} {
		t.Run("qos"+strconv.Itoa(int(qos)), func(t *testing.T) {
			err := c.Publish(testCtx(t), mqtt.Message{Topic: "readonly/x", Payload: []byte("denied"), QoS: qos})
			var pe *mqtt.PublishError
			if !errors.As(err, &pe) || pe.ReasonCode != codec.NotAuthorized || pe.Topic != "readonly/x" {
				t.Fatalf("Publish = %v, want a *PublishError for readonly/x with reason code 0x87", err)
			}
			t.Log(err)
			// Allowed, nobody subscribed: PUBACK or PUBREC 0x10.
			publish(t, c, mqtt.Message{Topic: "open/nobody", Payload: []byte("ok"), QoS: qos})
		})
	}
	if err := b.WaitLog(testCtx(t), func(log string) bool {
		return strings.Contains(log, "Sending PUBACK to refused-pub (m") && strings.Contains(log, "rc16)")
	}); err != nil {
		t.Fatalf("mosquitto never said 'no matching subscribers': %v", err)
	}
}

// MQTT 3.1.1 has no negative acknowledgement: Mosquitto acknowledges a
// refused publish and drops it. The client reports success.
func TestRefusedPublishV311(t *testing.T) {
	b := aclBroker(t, "")
	pub := dial(t, config(b, "refused-pub311", 4))
	publish(t, pub, mqtt.Message{Topic: "readonly/x", Payload: []byte("denied"), QoS: mqtt.AtLeastOnce})
	if err := b.WaitLog(testCtx(t), func(log string) bool {
		return strings.Contains(log, "Denied PUBLISH from refused-pub311")
	}); err != nil {
		t.Fatalf("mosquitto did not deny the publish: %v\n%s", err, b.Log())
	}
}

// A subscription the broker refuses is reported in a *SubscribeError with
// its reason code (0x87 not authorized in MQTT 5, 0x80 failure in 3.1.1);
// the filters it granted in the same SUBSCRIBE are in effect.
func TestRefusedSubscribeReasonCode(t *testing.T) {
	b := aclBroker(t, "")
	want := map[byte]codec.ReasonCode{4: 0x80, 5: codec.NotAuthorized}
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			c := dial(t, config(b, "refused-sub-"+v.name, v.version))
			err := c.Subscribe(testCtx(t),
				mqtt.Subscription{Filter: "secret/#", QoS: mqtt.AtLeastOnce},
				mqtt.Subscription{Filter: "open/" + v.name, QoS: mqtt.AtLeastOnce})
			var se *mqtt.SubscribeError
			if !errors.As(err, &se) || len(se.Refused) != 1 || se.Refused["secret/#"] != want[v.version] {
				t.Fatalf("Subscribe = %v, want a *SubscribeError refusing only secret/# with %#x", err, byte(want[v.version]))
			}
			t.Log(err)
			publish(t, c, mqtt.Message{Topic: "open/" + v.name, Payload: []byte("granted"), QoS: mqtt.AtLeastOnce})
			receiveWant(t, c, "open/"+v.name, "granted")
		})
	}
}

// MQTT 5: Mosquitto announces its max_packet_size in CONNACK, and the client
// refuses a larger publish itself, sending nothing.
func TestBrokerMaximumPacketSize(t *testing.T) {
	b := mosquitto.New(t, "max_packet_size 1000")
	c := dial(t, config(b, "max-packet", 5))
	err := c.Publish(testCtx(t), mqtt.Message{Topic: "big", Payload: make([]byte, 2000), QoS: mqtt.AtLeastOnce})
	if !errors.Is(err, mqtt.ErrInvalidMessage) {
		t.Fatalf("Publish of 2000 bytes to a broker that takes 1000 = %v, want ErrInvalidMessage", err)
	}
	publish(t, c, mqtt.Message{Topic: "small", Payload: make([]byte, 500), QoS: mqtt.AtLeastOnce})
	if log := b.Log(); strings.Contains(log, "'big'") {
		t.Fatalf("the refused message reached the broker:\n%s", log)
	}
}

// Over message_size_limit, Mosquitto 2.0 answers a QoS 1 or 2 PUBLISH with
// reason code 0x95 (packet too large), which MQTT 5 does not list for PUBACK
// or PUBREC. The refusal is unambiguous (0x80 and above), and a client that
// calls it a protocol error instead drops the connection, re-sends the
// message on the next one, is refused again, and loops until the publish's
// context ends; the messages behind it wait. The publish should end with
// the broker's refusal.
func TestPublishOverMessageSizeLimit(t *testing.T) {
	b := mosquitto.New(t, "message_size_limit 100")
	c := dial(t, config(b, "size-limit", 5))
	for _, qos := range []mqtt.QoS{mqtt.AtLeastOnce, mqtt.ExactlyOnce} {
		t.Run("qos"+strconv.Itoa(int(qos)), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			err := c.Publish(ctx, mqtt.Message{Topic: "open/big", Payload: make([]byte, 200), QoS: qos})
			var pe *mqtt.PublishError
			if !errors.As(err, &pe) || pe.ReasonCode != 0x95 {
				n := strings.Count(b.Log(), "New client connected from")
				t.Fatalf("Publish over the size limit = %v after %d connections, want a *PublishError with reason code 0x95", err, n)
			}
		})
	}
	// The refused message must not hold up the ones behind it.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if err := c.Publish(ctx, mqtt.Message{Topic: "open/small", Payload: []byte("fits"), QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatalf("a small publish after the refused ones: %v", err)
	}
}

// MQTT 3.1.1 has no way for a broker to refuse a message but to close the
// connection, and Mosquitto does so for a PUBLISH over max_packet_size or
// above max_qos. The client sends such a message alone after the first
// close, takes it for refused after three closes in a row (ErrRefused,
// with ErrOutcomeUnknown), and the messages behind it go on, instead of
// sending it first on every reconnect, forever, holding them all back.
func TestV311MosquittoRefusesByClosing(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		refused    mqtt.Message
	}{
		{"max_packet_size", "max_packet_size 1000", mqtt.Message{Topic: "refused/big", Payload: make([]byte, 2000), QoS: mqtt.AtLeastOnce}},
		{"max_qos", "max_qos 1", mqtt.Message{Topic: "refused/qos2", Payload: []byte("exactly once"), QoS: mqtt.ExactlyOnce}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mosquitto.New(t, tc.conf)
			sub := dial(t, config(b, "refused-close-sub", 4))
			subscribe(t, sub, mqtt.Subscription{Filter: "refused/#", QoS: mqtt.AtLeastOnce})
			pub := dial(t, config(b, "refused-close-pub", 4))
			ctx := testCtx(t)
			refused := pub.PublishAsync(ctx, tc.refused)
			behind := pub.PublishAsync(ctx, mqtt.Message{Topic: "refused/behind", Payload: []byte("behind"), QoS: mqtt.AtLeastOnce})
			refusedThenBehind(ctx, t, b, sub, refused, behind)
			if n := pub.Stats().Connections.Lost.TakenOver; n != 0 {
				t.Fatalf("Stats Lost.TakenOver %d: the refusals were taken for another client with the ClientID", n)
			}
		})
	}
}

// The same refusal by Mosquitto (max_qos 1, a QoS 2 message) over a slow
// link: the publisher, with every default, reaches the broker through the
// fault proxy at 1.2 s round trips (its TCP handshake too, through
// Config.Dial), so that each close comes more than a second after the
// message left. It is still recognised, and the message
// behind it arrives.
func TestV311MosquittoRefusesByClosingOverASlowLink(t *testing.T) {
	b := mosquitto.New(t, "max_qos 1")
	sub := dial(t, config(b, "slow-refused-sub", 4))
	subscribe(t, sub, mqtt.Subscription{Filter: "refused/#", QoS: mqtt.AtLeastOnce})
	p := mqtttest.NewProxy(t, b.Addr())
	p.Latency(600 * time.Millisecond)
	// The link's TCP handshake takes its round trip too.
	pub := dialDefaults(t, mqtt.Config{Servers: []string{p.URL()}, ClientID: "slow-refused-pub", Dial: p.Dial(1200 * time.Millisecond)})
	// Longer than wait: four or five connections at 1.2 s round trips,
	// and the default backoff's delays between them.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	refused := pub.PublishAsync(ctx, mqtt.Message{Topic: "refused/qos2", Payload: []byte("exactly once"), QoS: mqtt.ExactlyOnce})
	behind := pub.PublishAsync(ctx, mqtt.Message{Topic: "refused/behind", Payload: []byte("behind"), QoS: mqtt.AtLeastOnce})
	refusedThenBehind(ctx, t, b, sub, refused, behind)
}

// refusedThenBehind checks the results of a publish Mosquitto (b) refuses
// by closing, ErrRefused with ErrOutcomeUnknown, and of the one published
// behind it, nil, which sub then receives; each before ctx ends.
func refusedThenBehind(ctx context.Context, t *testing.T, b *mosquitto.Broker, sub *mqtt.Client, refused, behind <-chan error) {
	t.Helper()
	select {
	case err := <-refused:
		if !errors.Is(err, mqtt.ErrRefused) || !errors.Is(err, mqtt.ErrOutcomeUnknown) {
			t.Fatalf("the message mosquitto refuses: %v, want ErrRefused and ErrOutcomeUnknown", err)
		}
		t.Log(err)
	case <-ctx.Done():
		t.Fatalf("no result for the message mosquitto refuses:\n%s", b.Log())
	}
	select {
	case err := <-behind:
		if err != nil {
			t.Fatalf("the message behind it: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("no result for the message behind the refused one")
	}
	receiveWant(t, sub, "refused/behind", "behind")
}

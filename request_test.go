package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// responder answers every request on topic with its own payload and the
// prefix, until the test ends.
func responder(t *testing.T, url, topic, prefix string) *mqtt.Client {
	t.Helper()
	ctx := testCtx(t)
	r := dial(t, mqtt.Config{Servers: []string{url}, ClientID: "responder-" + topic, Version: 5})
	if err := r.Subscribe(ctx, mqtt.Subscription{Filter: topic, QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { r.Close(); <-done })
	go func() {
		defer close(done)
		for m := range r.Messages() {
			reply := mqtt.Message{Payload: append([]byte(prefix), m.Payload...), QoS: mqtt.AtLeastOnce}
			// The test's ctx ends before its cleanup closes r: a Respond
			// still waiting for its PUBACK then ends with that ctx.
			if err := r.Respond(ctx, m, reply); err != nil && !errors.Is(err, mqtt.ErrClosed) && ctx.Err() == nil {
				t.Errorf("Respond: %v", err)
			}
		}
	}()
	return r
}

// Concurrent requests each get their own reply, matched by correlation
// data, over one subscription; replies never reach Messages.
func TestRequestConcurrent(t *testing.T) {
	b := mqtttest.NewBroker(t)
	responder(t, b.URL(), "svc/echo", "echo:")
	c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "requester", Version: 5})
	ctx := testCtx(t)
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			payload := fmt.Sprint(i)
			r, err := c.Request(ctx, mqtt.Message{Topic: "svc/echo", Payload: []byte(payload), QoS: mqtt.QoS(i % 3)})
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			if string(r.Payload) != "echo:"+payload || r.Topic != "responses/requester" {
				t.Errorf("request %d: reply %q on %s", i, r.Payload, r.Topic)
			}
		})
	}
	wg.Wait()
	if s := c.Stats(); s.RepliesDropped != 0 || s.Received[1] != n {
		t.Fatalf("RepliesDropped %d, Received %v; want 0 and %d at QoS 1", s.RepliesDropped, s.Received, n)
	}
	select {
	case m := <-c.Messages():
		t.Fatalf("a message reached Messages: %+v", m)
	default:
	}
}

// A reply that comes after its request's ctx ended, and one that answers
// no request, are dropped and counted; neither reaches Messages.
func TestRequestLateReplyDropped(t *testing.T) {
	b := mqtttest.NewBroker(t)
	ctx := testCtx(t)
	svc := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "slow-svc", Version: 5})
	if err := svc.Subscribe(ctx, mqtt.Subscription{Filter: "svc/slow", QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "impatient", Version: 5})

	reqCtx, cancel := context.WithCancel(ctx)
	result := make(chan error, 1)
	go func() {
		_, err := c.Request(reqCtx, mqtt.Message{Topic: "svc/slow", Payload: []byte("late"), QoS: mqtt.AtLeastOnce})
		result <- err
	}()
	req := receive(t, svc)
	cancel()
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Fatalf("Request: %v, want context.Canceled", err)
	}
	if err := svc.Respond(ctx, req, mqtt.Message{Payload: []byte("too late"), QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	stray := mqtt.Message{Topic: "responses/impatient", Payload: []byte("stray"), QoS: mqtt.AtLeastOnce}
	if err := svc.Publish(ctx, stray); err != nil {
		t.Fatal(err)
	}

	// A request answered after those: by then the client has handled
	// them (one publisher, one topic: the broker keeps their order).
	got := make(chan error, 1)
	go func() {
		r, err := c.Request(ctx, mqtt.Message{Topic: "svc/slow", Payload: []byte("on time")})
		if err == nil && string(r.Payload) != "answer" {
			err = fmt.Errorf("reply %q", r.Payload)
		}
		got <- err
	}()
	req = receive(t, svc)
	if err := svc.Respond(ctx, req, mqtt.Message{Payload: []byte("answer"), QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.RepliesDropped != 2 {
		t.Fatalf("RepliesDropped %d, want 2", s.RepliesDropped)
	}
	select {
	case m := <-c.Messages():
		t.Fatalf("a reply reached Messages: %+v", m)
	default:
	}
}

// A request nobody answers ends with its ctx, with an error that wraps the
// ctx's cause; a reply racing it later is dropped, not delivered.
func TestRequestContextExpires(t *testing.T) {
	b := mqtttest.NewBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "no-answer", Version: 5})
	ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Request(ctx, mqtt.Message{Topic: "svc/nobody", Payload: []byte("?"), QoS: mqtt.AtLeastOnce})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Request: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Request returned %v after its deadline", d)
	}
	// An ended ctx ends a request at once, before anything is sent.
	_, err = c.Request(ctx, mqtt.Message{Topic: "svc/nobody", QoS: mqtt.AtLeastOnce})
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, mqtt.ErrWithdrawn) {
		t.Fatalf("Request with an ended ctx: %v, want ErrWithdrawn and DeadlineExceeded", err)
	}
}

// Request and Respond need MQTT 5: under 3.1.1 they fail at once, and say
// so, with an error that is also ErrInvalidMessage.
func TestRequestNeedsMQTT5(t *testing.T) {
	b := mqtttest.NewBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "v311"})
	_, err := c.Request(testCtx(t), mqtt.Message{Topic: "svc/x"})
	if !errors.Is(err, mqtt.ErrNeedsMQTT5) || !errors.Is(err, mqtt.ErrInvalidMessage) {
		t.Fatalf("Request under 3.1.1: %v, want ErrNeedsMQTT5", err)
	}
	err = c.Respond(testCtx(t), mqtt.Message{Topic: "svc/x"}, mqtt.Message{})
	if !errors.Is(err, mqtt.ErrNeedsMQTT5) {
		t.Fatalf("Respond under 3.1.1: %v, want ErrNeedsMQTT5", err)
	}
}

// Misuse is an error at the call, and nothing is sent.
func TestRequestRefusesMisuse(t *testing.T) {
	b := mqtttest.NewBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "misuse", Version: 5})
	ctx := testCtx(t)
	for _, m := range []mqtt.Message{
		{Topic: "svc/x", Properties: &mqtt.Properties{CorrelationData: []byte{}}},
		{Topic: "svc/x", Properties: &mqtt.Properties{ResponseTopic: "mine"}},
		{Topic: "svc/+"},
	} {
		if _, err := c.Request(ctx, m); !errors.Is(err, mqtt.ErrInvalidMessage) {
			t.Errorf("Request(%+v): %v, want ErrInvalidMessage", m, err)
		}
	}
	if err := c.Respond(ctx, mqtt.Message{Topic: "svc/x"}, mqtt.Message{}); !errors.Is(err, mqtt.ErrInvalidMessage) {
		t.Errorf("Respond to a request without Response Topic: %v, want ErrInvalidMessage", err)
	}
	req := mqtt.Message{Topic: "svc/x", Properties: &mqtt.Properties{ResponseTopic: "back"}}
	if err := c.Respond(ctx, req, mqtt.Message{Topic: "elsewhere"}); !errors.Is(err, mqtt.ErrInvalidMessage) {
		t.Errorf("Respond with another topic: %v, want ErrInvalidMessage", err)
	}
	if s := c.Stats(); s.Publishes[0].Acknowledged+s.Publishes[1].Acknowledged != 0 {
		t.Fatalf("something was sent: %+v", s.Publishes)
	}
}

// The response topic is derived from the ClientID when it can be a topic
// level, and is the same for every Request of the client.
func TestRequestResponseTopic(t *testing.T) {
	b := mqtttest.NewBroker(t)
	svc := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "topic-svc", Version: 5})
	ctx := testCtx(t)
	if err := svc.Subscribe(ctx, mqtt.Subscription{Filter: "svc/t"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ id, prefix string }{
		{"plain-id", "responses/plain-id"},
		{"with/slash", "responses/"},
	} {
		c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: tc.id, Version: 5})
		reqCtx, cancel := context.WithCancel(ctx)
		go func() { _, _ = c.Request(reqCtx, mqtt.Message{Topic: "svc/t"}) }()
		m := receive(t, svc)
		cancel()
		rt := m.Properties.ResponseTopic
		if len(rt) < len(tc.prefix) || rt[:len(tc.prefix)] != tc.prefix || !mqtt.Match(rt, rt) {
			t.Errorf("ClientID %q: Response Topic %q, want %s...", tc.id, rt, tc.prefix)
		}
		if len(m.Properties.CorrelationData) != 16 {
			t.Errorf("Correlation Data %x", m.Properties.CorrelationData)
		}
	}
}

package interop_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
)

// The defaults must keep every promise against a broker in its own default
// configuration (Config.MaxInflight has the table of brokers). Stock
// Mosquitto keeps max_inflight_messages (20) QoS 2 messages of a client
// between PUBLISH and PUBREL, and cannot tell an MQTT 3.1.1 client so: it
// acknowledges a message beyond that and drops it. With the former default
// window of 100, 60 of 300 messages queued during an outage arrived, and 400
// of a burst of 2000, every publish reporting success. Here clients
// configured with nothing but Servers and ClientID queue 300 QoS 2 messages
// while the broker is down, then publish 2000 at once, and the subscriber
// gets every one exactly once. MQTT 5 learns the limit from the CONNACK
// (Receive Maximum); it runs too, to keep it so.
//
// The helper's max_queued_messages 0 is put back to Mosquitto's own 1000:
// stock in every limit on messages. The subscriber reads while the burst is
// published, as an application does, so that what Mosquitto queues for it
// stays within that.
func TestDefaultsLoseNothingOnStockMosquitto(t *testing.T) {
	const outage, burst = 300, 2000
	eachVersion(t, "max_queued_messages 1000", func(t *testing.T, b *mosquitto.Broker, v version) {
		topic := "defaults/" + v.name
		cfg := func(id string) mqtt.Config {
			cfg := mqtt.Config{Servers: []string{b.URL()}, ClientID: id}
			if v.version == 5 {
				cfg.Version = 5 // the one setting more; 0 is 3.1.1
			}
			return cfg
		}
		sub := dialDefaults(t, cfg("defaults-sub-"+v.name))
		subscribe(t, sub, mqtt.Subscription{Filter: topic, QoS: mqtt.ExactlyOnce})
		pubID := "defaults-pub-" + v.name
		pub := dialDefaults(t, cfg(pubID))

		if err := b.Stop(); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*mqtt.Client{pub, sub} {
			waitEvent(t, c, mqtt.ConnectionLost)
		}
		queued := publishEach(t, pub, topic, "outage", outage)
		queued.accepted(t) // all in the client's queue
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*mqtt.Client{pub, sub} {
			if e := waitEvent(t, c, mqtt.Connected); !e.SessionPresent {
				t.Fatal("the broker lost a session across its restart")
			}
		}
		receiveEach(t, sub, topic, queued)
		queued.succeeded(t)

		sent := publishEach(t, pub, topic, "burst", burst)
		receiveEach(t, sub, topic, sent)
		sent.succeeded(t)
		expectNext(t, pub, sub, topic) // and nothing arrives twice, late

		// Within the broker's limit the publisher keeps its connection:
		// it connected before the restart and after.
		if n := strings.Count(b.Log(), " as "+pubID+" ("); n != 2 {
			t.Errorf("the publisher connected %d times, want 2", n)
		}
	})
}

// dialDefaults is dial without the test's fast reconnect: the client's
// default backoff is part of what is under test.
func dialDefaults(t *testing.T, cfg mqtt.Config) *mqtt.Client {
	t.Helper()
	c, err := mqtt.Dial(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Dial %s: %v", cfg.ClientID, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// published is a run of QoS 2 publishes with unique payloads, made by a
// goroutine of its own so that the test can receive meanwhile.
type published struct {
	payloads []string
	calls    chan []<-chan error // every PublishAsync's result, once all returned
	results  []<-chan error      // what calls delivered
}

// publishEach publishes n QoS 2 messages to topic with PublishAsync and no
// deadline, as an alarm would, with payloads name-0000, name-0001, ... A
// full queue blocks PublishAsync; the test's end unblocks it.
func publishEach(t *testing.T, c *mqtt.Client, topic, name string, n int) *published {
	p := &published{calls: make(chan []<-chan error, 1)}
	for i := range n {
		p.payloads = append(p.payloads, fmt.Sprintf("%s-%04d", name, i))
	}
	ctx := t.Context()
	go func() {
		results := make([]<-chan error, 0, n)
		for _, s := range p.payloads {
			results = append(results, c.PublishAsync(ctx, mqtt.Message{Topic: topic, Payload: []byte(s), QoS: mqtt.ExactlyOnce}))
		}
		p.calls <- results
	}()
	return p
}

// accepted waits until every PublishAsync of p has returned.
func (p *published) accepted(t *testing.T) {
	t.Helper()
	if p.results != nil {
		return
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case p.results = <-p.calls:
	case <-timer.C:
		t.Fatalf("PublishAsync of %d messages still blocked after %s", len(p.payloads), wait)
	}
}

// succeeded waits for every result of p and fails the test on an error, or
// when none comes for the wait of one message.
func (p *published) succeeded(t *testing.T) {
	t.Helper()
	p.accepted(t)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for i, r := range p.results {
		select {
		case err := <-r:
			if err != nil {
				t.Fatalf("publish %s: %v", p.payloads[i], err)
			}
		case <-timer.C:
			t.Fatalf("publish %s: no result within %s of the one before (%d of %d in)", p.payloads[i], wait, i, len(p.results))
		}
		timer.Reset(wait)
	}
}

// receiveEach receives until every payload of p has arrived on topic. It
// fails the test on an unexpected message or a duplicate, and, saying how
// many arrived, when none arrives for the wait of one message while some
// are missing.
func receiveEach(t *testing.T, c *mqtt.Client, topic string, p *published) {
	t.Helper()
	missing := make(map[string]bool, len(p.payloads))
	for _, s := range p.payloads {
		missing[s] = true
	}
	got := map[string]bool{}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for len(missing) > 0 {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				t.Fatal("Messages closed while waiting for a message")
			}
			s := string(m.Payload)
			switch {
			case m.Topic == topic && got[s]:
				t.Fatalf("%s arrived twice", s)
			case m.Topic != topic || !missing[s]:
				t.Fatalf("unexpected message %q %q", m.Topic, m.Payload)
			}
			got[s] = true
			delete(missing, s)
		case <-timer.C:
			first := ""
			for _, s := range p.payloads {
				if missing[s] {
					first = s
					break
				}
			}
			t.Fatalf("%d of %d messages arrived, then none for %s; the first missing is %s", len(got), len(p.payloads), wait, first)
		}
		timer.Reset(wait)
	}
}

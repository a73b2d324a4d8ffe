package interop_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// stream is a run of numbered messages on one topic, and the check that they
// arrived once each, in order.
type stream struct {
	topic string
	qos   mqtt.QoS
	sent  int
	got   []int
}

// publishAsync publishes the next n messages of each stream, interleaved,
// without waiting, and returns a function that waits for every result and
// fails the test on an error.
func publishAsync(t *testing.T, c *mqtt.Client, n int, streams ...*stream) (wait func()) {
	t.Helper()
	var results []<-chan error
	for range n {
		for _, s := range streams {
			m := mqtt.Message{Topic: s.topic, Payload: []byte(strconv.Itoa(s.sent)), QoS: s.qos}
			results = append(results, c.PublishAsync(testCtx(t), m))
			s.sent++
		}
	}
	return func() {
		t.Helper()
		for i, r := range results {
			if err := <-r; err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
	}
}

// receiveAll receives from c until every stream got all its messages, and
// checks that each arrived once, in order.
func receiveAll(t *testing.T, c *mqtt.Client, streams ...*stream) {
	t.Helper()
	byTopic := map[string]*stream{}
	missing := 0
	for _, s := range streams {
		byTopic[s.topic] = s
		missing += s.sent - len(s.got)
	}
	for ; missing > 0; missing-- {
		m := receive(t, c)
		s := byTopic[m.Topic]
		n, err := strconv.Atoi(string(m.Payload))
		if s == nil || err != nil {
			t.Fatalf("unexpected message %q %q", m.Topic, m.Payload)
		}
		if n != len(s.got) {
			t.Fatalf("%s: got message %d, want %d (received so far: %v)", s.topic, n, len(s.got), s.got)
		}
		s.got = append(s.got, n)
	}
}

// subscribeAndLeave connects with cfg, subscribes and closes the client,
// leaving its session (if persistent) at the broker.
func subscribeAndLeave(t *testing.T, cfg mqtt.Config, sub mqtt.Subscription) {
	t.Helper()
	c := dial(t, cfg)
	subscribe(t, c, sub)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// expectNext publishes a marker with pub and checks that it is the next
// message sub receives: whatever should not have arrived would come first.
func expectNext(t *testing.T, pub, sub *mqtt.Client, topic string) {
	t.Helper()
	publish(t, pub, mqtt.Message{Topic: topic, Payload: []byte("marker"), QoS: mqtt.AtLeastOnce})
	receiveWant(t, sub, topic, "marker")
}

// A persistent subscriber that went away gets every QoS 1 and 2 message
// published meanwhile, including those published before the broker
// restarted, once each and in order.
func TestPersistentSubscriberAway(t *testing.T) {
	eachVersion(t, "", func(t *testing.T, b *mosquitto.Broker, v version) {
		prefix := "away/" + v.name + "/"
		subCfg := config(b, "away-sub-"+v.name, v.version)
		subscribeAndLeave(t, subCfg, mqtt.Subscription{Filter: prefix + "#", QoS: mqtt.ExactlyOnce})

		pub := dial(t, config(b, "away-pub-"+v.name, v.version))
		q1 := &stream{topic: prefix + "q1", qos: mqtt.AtLeastOnce}
		q2 := &stream{topic: prefix + "q2", qos: mqtt.ExactlyOnce}
		publishAsync(t, pub, 10, q1, q2)()
		if err := b.Restart(); err != nil {
			t.Fatal(err)
		}
		publishAsync(t, pub, 10, q1, q2)()

		sub := dial(t, subCfg)
		if e := waitEvent(t, sub, mqtt.Connected); !e.SessionPresent {
			t.Fatal("the broker lost the session across its restart")
		}
		receiveAll(t, sub, q1, q2)
		expectNext(t, pub, sub, prefix+"marker")
	})
}

// A subscriber that stays connected, through a broker outage during which a
// publisher keeps publishing into its own queue, gets everything once and in
// order after the restart.
func TestPersistentSubscriberThroughRestart(t *testing.T) {
	eachVersion(t, "", func(t *testing.T, b *mosquitto.Broker, v version) {
		prefix := "through/" + v.name + "/"
		sub := dial(t, config(b, "through-sub-"+v.name, v.version))
		subscribe(t, sub, mqtt.Subscription{Filter: prefix + "#", QoS: mqtt.ExactlyOnce})
		pub := dial(t, config(b, "through-pub-"+v.name, v.version))
		q1 := &stream{topic: prefix + "q1", qos: mqtt.AtLeastOnce}
		q2 := &stream{topic: prefix + "q2", qos: mqtt.ExactlyOnce}
		publishAsync(t, pub, 5, q1, q2)()

		if err := b.Stop(); err != nil {
			t.Fatal(err)
		}
		wait := publishAsync(t, pub, 10, q1, q2) // into the client's queue
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		wait()
		receiveAll(t, sub, q1, q2)
		expectNext(t, pub, sub, prefix+"marker")
	})
}

// CleanStart with an existing session discards it: nothing queued for the
// old session arrives, and the session is gone for the next persistent
// connection too.
func TestCleanStartDiscardsSession(t *testing.T) {
	eachVersion(t, "", func(t *testing.T, b *mosquitto.Broker, v version) {
		prefix := "clean/" + v.name + "/"
		cfg := config(b, "clean-sub-"+v.name, v.version)
		subscribeAndLeave(t, cfg, mqtt.Subscription{Filter: prefix + "#", QoS: mqtt.AtLeastOnce})
		pub := dial(t, config(b, "clean-pub-"+v.name, v.version))
		publish(t, pub, mqtt.Message{Topic: prefix + "missed", Payload: []byte("queued"), QoS: mqtt.AtLeastOnce})

		clean := cfg
		clean.CleanStart = true
		sub := dial(t, clean)
		if e := waitEvent(t, sub, mqtt.Connected); e.SessionPresent {
			t.Fatal("CleanStart connected with the old session present")
		}
		subscribe(t, sub, mqtt.Subscription{Filter: prefix + "#", QoS: mqtt.AtLeastOnce})
		expectNext(t, pub, sub, prefix+"marker") // not the queued message
		if err := sub.Close(); err != nil {
			t.Fatal(err)
		}

		sub = dial(t, cfg)
		if e := waitEvent(t, sub, mqtt.Connected); e.SessionPresent {
			t.Fatal("a session survived CleanStart")
		}
	})
}

// MQTT 5: a session outlives its connection for its expiry interval, and no
// longer. Mosquitto's log says when it expired the session.
func TestSessionExpiry(t *testing.T) {
	b := mosquitto.New(t, "")
	pub := dial(t, config(b, "expiry-pub", 5))

	t.Run("kept within the interval", func(t *testing.T) {
		cfg := mqtt.Config{Servers: []string{b.URL()}, ClientID: "expiry-kept", Version: 5, SessionExpiry: time.Hour}
		subscribeAndLeave(t, cfg, mqtt.Subscription{Filter: "expiry/kept", QoS: mqtt.AtLeastOnce})
		publish(t, pub, mqtt.Message{Topic: "expiry/kept", Payload: []byte("queued"), QoS: mqtt.AtLeastOnce})
		sub := dial(t, cfg)
		if e := waitEvent(t, sub, mqtt.Connected); !e.SessionPresent {
			t.Fatal("the session expired within its interval")
		}
		receiveWant(t, sub, "expiry/kept", "queued")
	})

	// The subscriber's client lives on, kept away by a proxy that refuses
	// it until the broker expired its session; when it is let back in it
	// reports the loss and subscribes again by itself.
	t.Run("expires after the interval", func(t *testing.T) {
		p := mqtttest.NewProxy(t, b.Addr())
		sub := dial(t, mqtt.Config{Servers: []string{p.URL()}, ClientID: "expiry-gone", Version: 5, SessionExpiry: time.Second})
		subscribe(t, sub, mqtt.Subscription{Filter: "expiry/gone", QoS: mqtt.AtLeastOnce})
		p.Refuse(true)
		p.Cut()
		publish(t, pub, mqtt.Message{Topic: "expiry/gone", Payload: []byte("queued"), QoS: mqtt.AtLeastOnce})
		if err := b.WaitLog(testCtx(t), func(log string) bool {
			return strings.Contains(log, "Expiring client expiry-gone")
		}); err != nil {
			t.Fatalf("mosquitto did not expire the session: %v\n%s", err, b.Log())
		}
		p.Refuse(false)
		waitEvent(t, sub, mqtt.SessionLost)
		subacks := func(log string) int { return strings.Count(log, "Sending SUBACK to expiry-gone") }
		if err := b.WaitLog(testCtx(t), func(log string) bool { return subacks(log) >= 2 }); err != nil {
			t.Fatalf("the client did not subscribe again: %v\n%s", err, b.Log())
		}
		expectNext(t, pub, sub, "expiry/gone") // not the queued message
		// One SUBSCRIBE, on one connection: the marker went through after
		// mosquitto had read everything the client sent with it.
		if n := subacks(b.Log()); n != 2 {
			t.Errorf("mosquitto answered %d SUBSCRIBEs, want 2 (the first, and one after the session was lost)", n)
		}
		for len(sub.Events()) > 0 {
			if e := <-sub.Events(); e.Kind == mqtt.ConnectionLost {
				t.Errorf("connection lost after the session was: %v", e)
			}
		}
	})

	t.Run("zero ends with the connection", func(t *testing.T) {
		cfg := mqtt.Config{Servers: []string{b.URL()}, ClientID: "expiry-zero", Version: 5, SessionExpiry: -1}
		subscribeAndLeave(t, cfg, mqtt.Subscription{Filter: "expiry/zero", QoS: mqtt.AtLeastOnce})
		sub := dial(t, cfg)
		if e := waitEvent(t, sub, mqtt.Connected); e.SessionPresent {
			t.Fatal("a session with expiry 0 outlived its connection")
		}
	})
}

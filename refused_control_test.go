package mqtt_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// AWS IoT Core ends the connection when a client subscribes to a topic
// filter its policy does not allow, and a SUBSCRIBE without its SUBACK is
// sent again on the next connection: left at that, every connection ended
// right after it started, forever, also after the Subscribe call had given
// up, and nothing else got through. After two ends in a row with it
// unanswered, the SUBSCRIBE goes alone; the third time in a row the broker
// ends the connection at once, the Subscribe ends with ErrRefused, and
// what waited behind it goes. Whether its caller still waits makes no
// difference.
func TestBrokerRefusesSubscribeByClosing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		v      byte
		refuse func(t *testing.T, sc *mqtttest.ScriptedConn)
		gaveUp bool // the Subscribe's ctx ends before the refusal
	}{
		{name: "3.1.1 closes", v: 4, refuse: closeConn},
		{name: "3.1.1 closes, caller gave up", v: 4, refuse: closeConn, gaveUp: true},
		{name: "5 says not authorized", v: 5, refuse: disconnectNotAuthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sb := mqtttest.NewScriptedBroker(t)
			sb.SetConnack(frame(t, tc.v, &codec.Connack{SessionPresent: true}))
			c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "subscribe-refused", Version: tc.v})
			sc := scripted(t, sb)

			subCtx, giveUp := context.WithCancel(t.Context())
			defer giveUp()
			subscribed := make(chan error, 1)
			go func() { subscribed <- c.Subscribe(subCtx, mqtt.Subscription{Filter: "forbidden/#", QoS: 1}) }()
			if s := nextOf[*codec.Subscribe](t, sc, tc.v); s.Subscriptions[0].Filter != "forbidden/#" {
				t.Fatalf("SUBSCRIBE to %q", s.Subscriptions[0].Filter)
			}
			good := c.PublishAsync(t.Context(), mqtt.Message{Topic: "alarm/taken", Payload: []byte("y"), QoS: mqtt.AtLeastOnce})
			nextOf[*codec.Publish](t, sc, tc.v)
			tc.refuse(t, sc)
			if tc.gaveUp {
				giveUp()
				if err := <-subscribed; !errors.Is(err, mqtt.ErrOutcomeUnknown) {
					t.Fatalf("Subscribe whose ctx ended after it was sent: %v, want ErrOutcomeUnknown", err)
				}
			}

			// One end changes nothing: both go again at once.
			sc = scripted(t, sb)
			nextOf[*codec.Subscribe](t, sc, tc.v)
			if p := nextOf[*codec.Publish](t, sc, tc.v); p.Topic != "alarm/taken" || !p.Dup {
				t.Fatalf("after one end: PUBLISH to %q DUP %v, want alarm/taken sent again", p.Topic, p.Dup)
			}
			tc.refuse(t, sc)

			for i := range refuseAfter {
				sc = scripted(t, sb)
				if s := nextOf[*codec.Subscribe](t, sc, tc.v); s.Subscriptions[0].Filter != "forbidden/#" {
					t.Fatalf("probe %d: SUBSCRIBE to %q, want forbidden/# alone", i+1, s.Subscriptions[0].Filter)
				}
				expectAlone(t, sc, tc.v)
				tc.refuse(t, sc)
			}
			if !tc.gaveUp {
				err := <-subscribed
				if !errors.Is(err, mqtt.ErrRefused) || !errors.Is(err, mqtt.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "forbidden/#") {
					t.Fatalf("refused Subscribe: %v, want ErrRefused and ErrOutcomeUnknown naming its filter", err)
				}
			}

			// The PUBLISH that waited goes, the SUBSCRIBE never again; a
			// SUBSCRIBE the broker takes goes as ever.
			sc = onlyTakenGoes(t, sb, tc.v, good)
			go func() { subscribed <- c.Subscribe(t.Context(), mqtt.Subscription{Filter: "allowed/#", QoS: 1}) }()
			s := nextOf[*codec.Subscribe](t, sc, tc.v)
			if s.Subscriptions[0].Filter != "allowed/#" {
				t.Fatalf("SUBSCRIBE to %q, want allowed/#", s.Subscriptions[0].Filter)
			}
			send(t, sc, tc.v, &codec.Suback{PacketID: s.PacketID, ReasonCodes: []codec.ReasonCode{codec.GrantedQoS1}})
			if err := <-subscribed; err != nil {
				t.Fatalf("Subscribe after the refusal: %v", err)
			}
			if n := c.Stats().Connections.Lost.TakenOver; n != 0 {
				t.Fatalf("Stats Lost.TakenOver %d: a refusing broker was taken for another client with the ClientID", n)
			}
		})
	}
}

// A SUBSCRIBE the broker did not answer before ending connections that a
// PUBLISH behind it caused goes alone, is answered, and its Subscribe
// succeeds; the PUBLISH is the one refused.
func TestInnocentSubscribeAnsweredAlone(t *testing.T) {
	t.Parallel()
	sb := mqtttest.NewScriptedBroker(t)
	sb.SetConnack(sessionPresent)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "subscribe-innocent"})
	sc := scripted(t, sb)
	subscribed := make(chan error, 1)
	go func() { subscribed <- c.Subscribe(t.Context(), mqtt.Subscription{Filter: "ok/#", QoS: 1}) }()
	nextOf[*codec.Subscribe](t, sc, 4)
	poison := c.PublishAsync(t.Context(), mqtt.Message{Topic: "alarm/refused", QoS: mqtt.ExactlyOnce})
	// The broker reads on, comes to the PUBLISH and closes, its SUBACK
	// never written: twice.
	for i := range 2 {
		if i > 0 {
			sc = scripted(t, sb)
			nextOf[*codec.Subscribe](t, sc, 4)
		}
		nextOf[*codec.Publish](t, sc, 4)
		sc.Close()
	}
	// The third connection sends the SUBSCRIBE alone, and the broker
	// answers it; then the PUBLISH goes, alone too (the first owed after
	// two ends), and the broker ends that connection and the next two.
	sc = scripted(t, sb)
	s := nextOf[*codec.Subscribe](t, sc, 4)
	expectAlone(t, sc, 4)
	send(t, sc, 4, &codec.Suback{PacketID: s.PacketID, ReasonCodes: []codec.ReasonCode{codec.GrantedQoS1}})
	select {
	case err := <-subscribed:
		if err != nil {
			t.Fatalf("Subscribe answered when sent alone: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Subscribe did not return once the broker answered it")
	}
	for i := range refuseAfter {
		if i > 0 {
			sc = scripted(t, sb)
		}
		if p := nextOf[*codec.Publish](t, sc, 4); p.Topic != "alarm/refused" {
			t.Fatalf("PUBLISH to %q, want alarm/refused", p.Topic)
		}
		expectAlone(t, sc, 4)
		sc.Close()
	}
	if err := resultOf(t, poison); !errors.Is(err, mqtt.ErrRefused) {
		t.Fatalf("the publish the broker ends connections for: %v, want ErrRefused", err)
	}
}

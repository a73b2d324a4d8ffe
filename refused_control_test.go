package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// subscribeGranted subscribes c to filters, one Subscribe of them all,
// and grants them on sc.
func subscribeGranted(t *testing.T, c *mqtt.Client, sc *mqtttest.ScriptedConn, filters ...string) {
	t.Helper()
	subs := make([]mqtt.Subscription, len(filters))
	codes := make([]codec.ReasonCode, len(filters))
	for i, f := range filters {
		subs[i], codes[i] = mqtt.Subscription{Filter: f, QoS: 1}, codec.GrantedQoS1
	}
	done := make(chan error, 1)
	go func() { done <- c.Subscribe(t.Context(), subs...) }()
	s := nextOf[*codec.Subscribe](t, sc, 4)
	send(t, sc, 4, &codec.Suback{PacketID: s.PacketID, ReasonCodes: codes})
	if err := <-done; err != nil {
		t.Fatalf("Subscribe %v: %v", filters, err)
	}
}

// After the broker lost the session the client subscribes again on its
// own, at most 8 filters per SUBSCRIBE: AWS IoT Core takes no more (a hard
// limit) and ends the connection over a larger one, so an application that
// subscribed within that limit, a few filters at a time, would otherwise
// have had every connection ended after the first session loss.
func TestResubscribeAtMostEightFiltersPerPacket(t *testing.T) {
	t.Parallel()
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "resubscribe-eight"})
	sc := scripted(t, sb)
	var want []string
	for i := range 4 {
		var filters []string
		for j := range 5 {
			filters = append(filters, fmt.Sprintf("f/%d/%d", i, j))
		}
		subscribeGranted(t, c, sc, filters...)
		want = append(want, filters...)
	}
	sc.Close() // the default CONNACK says: no session
	sc = scripted(t, sb)
	var got []string
	for len(got) < len(want) {
		s := nextOf[*codec.Subscribe](t, sc, 4)
		if n := len(s.Subscriptions); n > 8 {
			t.Fatalf("a re-subscription of %d filters; AWS IoT Core takes at most 8", n)
		}
		for _, sub := range s.Subscriptions {
			got = append(got, sub.Filter)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("subscribed again to %v, want %v", got, want)
	}
}

// A re-subscription of several filters that the broker refuses by ending
// the connection (its policy no longer allows one of them) is not given
// up whole: each filter goes again alone, the others are granted, and only
// the one the broker refuses is given up, also after the next session
// loss.
func TestRefusedResubscriptionSplits(t *testing.T) {
	t.Parallel()
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "resubscribe-split"})
	sc := scripted(t, sb)
	subscribeGranted(t, c, sc, "a/1", "deny/x", "a/2")
	sc.Close() // the default CONNACK says: no session; then it is kept
	granted := map[string]bool{}
	for conns := 0; !granted["a/1"] || !granted["a/2"]; conns++ {
		if conns == 12 {
			t.Fatalf("after %d connections the broker has granted only %v", conns, granted)
		}
		sc = scripted(t, sb)
		if conns == 0 {
			sb.SetConnack(sessionPresent)
		}
		for ended := false; !ended; {
			ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
			b, err := sc.ReadFrame(ctx)
			cancel()
			if err != nil {
				if !granted["a/1"] || !granted["a/2"] {
					sc.Close() // nothing more on this connection: the next one
				}
				break
			}
			p, _, _ := codec.Decode(b, 4, 0)
			s, ok := p.(*codec.Subscribe)
			if !ok {
				t.Fatalf("the client sent %T, want only SUBSCRIBEs", p)
			}
			var codes []codec.ReasonCode
			for _, sub := range s.Subscriptions {
				if sub.Filter == "deny/x" {
					sc.Close() // as AWS IoT Core does
					ended = true
					break
				}
				codes = append(codes, codec.GrantedQoS1)
			}
			if !ended {
				send(t, sc, 4, &codec.Suback{PacketID: s.PacketID, ReasonCodes: codes})
				for _, sub := range s.Subscriptions {
					granted[sub.Filter] = true
				}
			}
		}
	}
	if granted["deny/x"] {
		t.Fatal("deny/x granted")
	}
	if e := waitEvent(t, c, mqtt.ResubscribeFailed); !slices.Equal(mqtt.FailedFilters(e), []string{"deny/x"}) || !errors.Is(e.Err, mqtt.ErrRefused) {
		t.Fatalf("%v (filters %q), want deny/x refused", e, mqtt.FailedFilters(e))
	}
	sb.SetConnack(frame(t, 4, &codec.Connack{}))
	sc.Close()
	sc = scripted(t, sb)
	if s := nextOf[*codec.Subscribe](t, sc, 4); len(s.Subscriptions) != 2 || s.Subscriptions[0].Filter != "a/1" || s.Subscriptions[1].Filter != "a/2" {
		t.Fatalf("after the next session loss the client subscribed again to %+v, want a/1 and a/2", s.Subscriptions)
	}
}

// A re-subscription the client makes after the broker lost the session,
// still unanswered when the next connection finds the session lost again,
// is sent again as it is and not made anew beside it: before, every such
// connection added one more SUBSCRIBE of the same filters, each sent again
// on every later connection (and under MQTT 3.1.1 each brings the
// retained messages again).
func TestUnansweredResubscriptionsDoNotPileUp(t *testing.T) {
	t.Parallel()
	sb := mqtttest.NewScriptedBroker(t)
	sb.SetConnack(frame(t, 5, &codec.Connack{}))
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "resubscribe-pile", Version: 5})
	sc := scripted(t, sb)
	done := make(chan error, 1)
	go func() {
		done <- c.Subscribe(t.Context(), mqtt.Subscription{Filter: "a", QoS: 1}, mqtt.Subscription{Filter: "b", QoS: 2})
	}()
	s := nextOf[*codec.Subscribe](t, sc, 5)
	send(t, sc, 5, &codec.Suback{PacketID: s.PacketID, ReasonCodes: []codec.ReasonCode{codec.GrantedQoS1, codec.GrantedQoS2}})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	shutDown := func(sc *mqtttest.ScriptedConn) { // not a refusal (refused_control.go)
		send(t, sc, 5, &codec.Disconnect{ReasonCode: codec.ServerShuttingDown})
		sc.Close()
	}
	shutDown(sc)
	for i := range 4 {
		sc = scripted(t, sb)
		s = nextOf[*codec.Subscribe](t, sc, 5)
		if len(s.Subscriptions) != 2 || s.Subscriptions[0].Filter != "a" || s.Subscriptions[1].Filter != "b" {
			t.Fatalf("connection %d: SUBSCRIBE %+v, want a and b", i+2, s.Subscriptions)
		}
		if i < 3 {
			barrier(t, sc, 5) // a second SUBSCRIBE would have come before the barrier's PUBCOMP
			shutDown(sc)
		}
	}
	send(t, sc, 5, &codec.Suback{PacketID: s.PacketID, ReasonCodes: []codec.ReasonCode{codec.GrantedQoS1, codec.GrantedQoS2}})
}

// mochi-mqtt v2.7 answers a SUBSCRIBE or UNSUBSCRIBE whose identifier
// equals one of its own messages in flight with Packet Identifier in use
// for every filter, also at MQTT 3.1.1, whose SUBACK has no such code.
// After a reconnect the client cannot know those identifiers before the
// broker's messages sent again arrive. Nothing took effect: the request
// goes again under another identifier, and the call returns what that
// one got; after three such answers the refusal stands. (Taken for a
// protocol error at 3.1.1, it made the client reconnect.)
func TestIdentifierInUseSendsTheRequestAgain(t *testing.T) {
	inUse := codec.PacketIdentifierInUse
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			sb := mqtttest.NewScriptedBroker(t)
			c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "in-use", Version: v})
			sc := scripted(t, sb)
			res := make(chan error, 1)
			go func() {
				res <- c.Subscribe(testCtx(t), mqtt.Subscription{Filter: "a", QoS: 1}, mqtt.Subscription{Filter: "b", QoS: 1})
			}()
			first := nextOf[*codec.Subscribe](t, sc, v)
			send(t, sc, v, &codec.Suback{PacketID: first.PacketID, ReasonCodes: []codec.ReasonCode{inUse, inUse}})
			again := nextOf[*codec.Subscribe](t, sc, v)
			if again.PacketID == first.PacketID || len(again.Subscriptions) != 2 {
				t.Fatalf("sent again under %d with %d filters, want another identifier than %d, both filters", again.PacketID, len(again.Subscriptions), first.PacketID)
			}
			send(t, sc, v, &codec.Suback{PacketID: again.PacketID, ReasonCodes: []codec.ReasonCode{1, 1}})
			if err := <-res; err != nil {
				t.Fatal(err)
			}

			// Refused so every time: after three moves, the refusal stands.
			go func() { res <- c.Subscribe(testCtx(t), mqtt.Subscription{Filter: "c", QoS: 1}) }()
			for range 4 {
				p := nextOf[*codec.Subscribe](t, sc, v)
				send(t, sc, v, &codec.Suback{PacketID: p.PacketID, ReasonCodes: []codec.ReasonCode{inUse}})
			}
			var se *mqtt.SubscribeError
			if err := <-res; !errors.As(err, &se) || se.Refused["c"] != inUse {
				t.Fatalf("Subscribe = %v, want a *SubscribeError refusing c with %v", err, inUse)
			}
			barrier(t, sc, v) // nothing more sent

			if v == 5 {
				go func() { res <- c.Unsubscribe(testCtx(t), "a") }()
				u := nextOf[*codec.Unsubscribe](t, sc, v)
				send(t, sc, v, &codec.Unsuback{PacketID: u.PacketID, ReasonCodes: []codec.ReasonCode{inUse}})
				u2 := nextOf[*codec.Unsubscribe](t, sc, v)
				if u2.PacketID == u.PacketID {
					t.Fatalf("UNSUBSCRIBE sent again under the same identifier %d", u.PacketID)
				}
				send(t, sc, v, &codec.Unsuback{PacketID: u2.PacketID, ReasonCodes: []codec.ReasonCode{codec.Success}})
				if err := <-res; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// recvOn waits for the next message on ch.
func recvOn(t testing.TB, ch <-chan mqtt.Message, what string) mqtt.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatalf("%s: closed while waiting for a message", what)
		}
		return m
	case <-time.After(wait):
		t.Fatalf("%s: no message within the deadline", what)
	}
	return mqtt.Message{}
}

// route makes a route and closes it when the test ends.
func route(t testing.TB, c *mqtt.Client, filters ...string) *mqtt.Route {
	t.Helper()
	r, err := c.Route(filters...)
	if err != nil {
		t.Fatalf("Route(%q): %v", filters, err)
	}
	t.Cleanup(r.Close)
	return r
}

// Each message goes to the first route whose filter matches its topic, in
// the order the routes were made, and the rest to Messages; each route's
// reader gets its messages in order, whatever the others do.
func TestRouteByTopic(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			ctx := testCtx(t)
			b := mqtttest.NewBroker(t)
			c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "router", Version: v})
			if err := c.Subscribe(ctx, mqtt.Subscription{Filter: "home/#", QoS: mqtt.AtLeastOnce}); err != nil {
				t.Fatal(err)
			}
			kitchen := route(t, c, "home/kitchen/#")
			temps := route(t, c, "home/+/temp", "home/+/humidity")
			pub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "router-pub", Version: v})

			const n = 200
			topics := []string{"home/kitchen/temp", "home/hall/temp", "home/hall/light", "home/cellar/humidity"}
			go func() {
				for i := range n {
					pub.PublishAsync(ctx, mqtt.Message{Topic: topics[i%len(topics)], Payload: fmt.Appendf(nil, "%d", i), QoS: mqtt.AtLeastOnce})
				}
			}()
			var wg sync.WaitGroup
			got := make([][]string, 3)
			read := func(i int, ch <-chan mqtt.Message, count int) {
				defer wg.Done()
				for range count {
					m := recvOn(t, ch, fmt.Sprintf("reader %d", i))
					got[i] = append(got[i], m.Topic+"="+string(m.Payload))
				}
			}
			wg.Add(3)
			go read(0, kitchen.Messages(), n/4)
			go read(1, temps.Messages(), n/2)
			go read(2, c.Messages(), n/4)
			wg.Wait()

			var want [3][]string
			for i := range n {
				topic := topics[i%len(topics)]
				dest := map[string]int{"home/kitchen/temp": 0, "home/hall/temp": 1, "home/cellar/humidity": 1, "home/hall/light": 2}[topic]
				want[dest] = append(want[dest], fmt.Sprintf("%s=%d", topic, i))
			}
			for i := range got {
				if !slices.Equal(got[i], want[i]) {
					t.Errorf("reader %d got %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}

// A route whose reader is behind does not hold back one whose reader
// keeps up; the acknowledgements still go out in the order the messages
// arrived [MQTT-4.6.0-2], so those of the fast route's messages wait for
// the slow route's earlier one.
func TestRouteSlowDoesNotBlockFast(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "slow-fast"})
	sc := scripted(t, sb)
	slow, fast := route(t, c, "slow"), route(t, c, "fast")
	send(t, sc, 4,
		&codec.Publish{Topic: "slow", Payload: []byte("s1"), QoS: 1, PacketID: 1},
		&codec.Publish{Topic: "fast", Payload: []byte("f1"), QoS: 1, PacketID: 2},
		&codec.Publish{Topic: "fast", Payload: []byte("f2"), QoS: 2, PacketID: 3},
		&codec.Publish{Topic: "other", Payload: []byte("o1"), QoS: 0})
	for _, want := range []string{"f1", "f2"} {
		if m := recvOn(t, fast.Messages(), "fast"); string(m.Payload) != want {
			t.Fatalf("fast route got %q, want %q", m.Payload, want)
		}
	}
	if m := receive(t, c); string(m.Payload) != "o1" {
		t.Fatalf("Messages got %q, want o1", m.Payload)
	}
	barrier(t, sc, 4) // f1 and f2 are taken, but their acks wait for s1
	if m := recvOn(t, slow.Messages(), "slow"); string(m.Payload) != "s1" {
		t.Fatalf("slow route got %q", m.Payload)
	}
	if p := nextOf[*codec.Puback](t, sc, 4); p.PacketID != 1 {
		t.Fatalf("PUBACK for %d, want 1", p.PacketID)
	}
	if p := nextOf[*codec.Puback](t, sc, 4); p.PacketID != 2 {
		t.Fatalf("PUBACK for %d, want 2", p.PacketID)
	}
	if p := nextOf[*codec.Pubrec](t, sc, 4); p.PacketID != 3 {
		t.Fatalf("PUBREC for %d, want 3", p.PacketID)
	}
}

// The routes share MaxPending: once that many messages wait, on whichever
// route, the client stops reading and every route waits; nothing is lost,
// and once the slow route is read everything arrives.
func TestRoutesShareMaxPending(t *testing.T) {
	ctx := testCtx(t)
	b := mqtttest.NewBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "shared-limit", MaxPending: 5})
	if err := c.Subscribe(ctx, mqtt.Subscription{Filter: "#", QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	slow, fast := route(t, c, "slow"), route(t, c, "fast")
	pub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "shared-limit-pub"})
	const nSlow, nFast = 20, 50
	for i := range nSlow {
		if err := pub.Publish(ctx, mqtt.Message{Topic: "slow", Payload: fmt.Appendf(nil, "%d", i), QoS: mqtt.AtLeastOnce}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range nFast {
		pub.PublishAsync(ctx, mqtt.Message{Topic: "fast", Payload: fmt.Appendf(nil, "%d", i), QoS: mqtt.AtLeastOnce})
	}
	// The fast route gets nothing while the slow one holds the client's
	// whole budget; that is the documented price of one connection.
	select {
	case m := <-fast.Messages():
		t.Fatalf("the fast route got %q before the slow route was read", m.Payload)
	case <-time.After(200 * time.Millisecond):
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range nFast {
			if m := recvOn(t, fast.Messages(), "fast"); string(m.Payload) != fmt.Sprint(i) {
				t.Errorf("fast message %d: %q", i, m.Payload)
				return
			}
		}
	}()
	for i := range nSlow {
		if m := recvOn(t, slow.Messages(), "slow"); string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("slow message %d: %q", i, m.Payload)
		}
	}
	<-done
}

// Closing a route sends what waited for it, in order, to where it would
// have gone without the route, and so does every later message; the
// route's channel is closed.
func TestRouteCloseReroutes(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "close-route"})
	sc := scripted(t, sb)
	broad := route(t, c, "a/#")
	narrow := route(t, c, "a/b")
	send(t, sc, 4,
		&codec.Publish{Topic: "a/b", Payload: []byte("1"), QoS: 1, PacketID: 1},
		&codec.Publish{Topic: "a/b", Payload: []byte("2"), QoS: 1, PacketID: 2},
		&codec.Publish{Topic: "x", Payload: []byte("3"), QoS: 1, PacketID: 3})
	barrier(t, sc, 4)
	narrow.Close()
	if _, ok := <-narrow.Messages(); ok {
		t.Fatal("a closed route's channel delivered a message")
	}
	send(t, sc, 4, &codec.Publish{Topic: "a/b", Payload: []byte("4"), QoS: 1, PacketID: 4})
	for _, want := range []string{"1", "2", "4"} {
		if m := recvOn(t, broad.Messages(), "broad"); string(m.Payload) != want {
			t.Fatalf("broad route got %q, want %q", m.Payload, want)
		}
	}
	broad.Close()
	broad.Close() // harmless
	if m := receive(t, c); string(m.Payload) != "3" {
		t.Fatalf("Messages got %q, want 3", m.Payload)
	}
	for id := uint16(1); id <= 4; id++ {
		if p := nextOf[*codec.Puback](t, sc, 4); p.PacketID != id {
			t.Fatalf("PUBACK for %d, want %d", p.PacketID, id)
		}
	}
}

// Stopping the client closes every route's channel; Route then fails with
// ErrClosed, and Close still returns.
func TestRoutesEndWithTheClient(t *testing.T) {
	b := mqtttest.NewBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "routes-end"})
	r1, err := c.Route("a")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.Route("b")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	for _, r := range []*mqtt.Route{r1, r2} {
		if _, ok := <-r.Messages(); ok {
			t.Fatal("a route's channel is open after Close")
		}
		r.Close()
	}
	if _, err := c.Route("c"); !errors.Is(err, mqtt.ErrClosed) {
		t.Fatalf("Route after Close: %v, want ErrClosed", err)
	}
	if _, err := c.SubscribeRoute(testCtx(t), mqtt.Subscription{Filter: "c"}); !errors.Is(err, mqtt.ErrClosed) {
		t.Fatalf("SubscribeRoute after Close: %v, want ErrClosed", err)
	}
}

func TestRouteRefusesBadFilters(t *testing.T) {
	b := mqtttest.NewBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "bad-route"})
	for _, filters := range [][]string{nil, {"a/#/b"}, {"ok", "a+"}, {""}} {
		if _, err := c.Route(filters...); !errors.Is(err, mqtt.ErrInvalidMessage) {
			t.Errorf("Route(%q): %v, want ErrInvalidMessage", filters, err)
		}
	}
	if _, err := c.SubscribeRoute(testCtx(t)); !errors.Is(err, mqtt.ErrInvalidMessage) {
		t.Errorf("SubscribeRoute(): %v, want ErrInvalidMessage", err)
	}
}

// Under MQTT 5 a SubscribeRoute gets exactly the messages of its
// subscription, by Subscription Identifier, even where an earlier route's
// filter matches too; under 3.1.1 topic matching decides, in creation
// order. The retained messages of its subscription reach it too.
func TestSubscribeRoute(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			ctx := testCtx(t)
			b := mqtttest.NewBroker(t)
			pub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "sr-pub", Version: v})
			// From the broker itself, which returns once the message is
			// routed: mochi acknowledges a client's QoS 1 PUBLISH before
			// it routes it, so a subscription made right after that PUBACK
			// could get the message live as well as retained (under
			// load, 3 runs in 300).
			if err := b.Publish("status/hall", []byte("retained"), 1, true); err != nil {
				t.Fatal(err)
			}
			c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "sr", Version: v})
			// Alone, a SubscribeRoute gets the retained messages the broker
			// sends on subscribing. (mochi sends them without the
			// Subscription Identifier: the client routes them by topic.)
			retained, err := c.SubscribeRoute(ctx, mqtt.Subscription{Filter: "status/#", QoS: mqtt.AtLeastOnce})
			if err != nil {
				t.Fatal(err)
			}
			if m := recvOn(t, retained.Messages(), "retained"); string(m.Payload) != "retained" || !m.Retain {
				t.Fatalf("got %+v, want the retained message", m)
			}
			retained.Close()
			if err := c.Unsubscribe(ctx, "status/#"); err != nil {
				t.Fatal(err)
			}

			all := route(t, c, "sensors/#")
			temps, err := c.SubscribeRoute(ctx, mqtt.Subscription{Filter: "sensors/+/temp", QoS: mqtt.AtLeastOnce})
			if err != nil {
				t.Fatal(err)
			}
			defer temps.Close()
			if err := c.Subscribe(ctx, mqtt.Subscription{Filter: "sensors/kitchen/#", QoS: mqtt.AtLeastOnce}); err != nil {
				t.Fatal(err)
			}
			tempsGot, allGot := temps.Messages(), all.Messages()
			if v == 4 {
				tempsGot = allGot // the earlier route's filter matches
			}
			for _, topic := range []string{"sensors/hall/temp", "sensors/kitchen/humidity"} {
				if err := pub.Publish(ctx, mqtt.Message{Topic: topic, Payload: []byte(topic), QoS: 1}); err != nil {
					t.Fatal(err)
				}
			}
			if m := recvOn(t, tempsGot, "temps"); m.Topic != "sensors/hall/temp" {
				t.Fatalf("got %s, want sensors/hall/temp", m.Topic)
			}
			if m := recvOn(t, allGot, "all"); m.Topic != "sensors/kitchen/humidity" {
				t.Fatalf("got %s, want sensors/kitchen/humidity", m.Topic)
			}
		})
	}
}

// A broker without Subscription Identifiers gets none, and a
// SubscribeRoute then routes by topic. A broker that has them gets one per
// SubscribeRoute, also when the client subscribes again after the broker
// lost the session, in a SUBSCRIBE of its own; and the route then gets
// exactly the messages that carry it.
func TestSubscribeRouteIdentifiers(t *testing.T) {
	no := false
	sb := mqtttest.NewScriptedBroker(t)
	sb.SetConnack(frame(t, 5, &codec.Connack{Properties: &codec.Properties{SubIDAvailable: &no}}))
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "sr-ids", Version: 5})
	sc := scripted(t, sb)

	// subscribe runs sub in the background and answers its SUBSCRIBE, which
	// it returns.
	subscribe := func(sub func() error) *codec.Subscribe {
		t.Helper()
		got := make(chan error, 1)
		go func() { got <- sub() }()
		s := nextOf[*codec.Subscribe](t, sc, 5)
		send(t, sc, 5, &codec.Suback{PacketID: s.PacketID, ReasonCodes: make([]codec.ReasonCode, len(s.Subscriptions))})
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		return s
	}
	idsOf := func(s *codec.Subscribe) []uint32 {
		if s.Properties == nil {
			return nil
		}
		return s.Properties.SubscriptionIdentifier
	}
	subscribeRoute := func(filter string) (*mqtt.Route, *codec.Subscribe) {
		t.Helper()
		var r *mqtt.Route
		s := subscribe(func() (err error) {
			r, err = c.SubscribeRoute(testCtx(t), mqtt.Subscription{Filter: filter})
			return err
		})
		t.Cleanup(r.Close)
		return r, s
	}

	r1, s := subscribeRoute("t/+")
	if ids := idsOf(s); ids != nil {
		t.Fatalf("SUBSCRIBE carries Subscription Identifiers %v to a broker without them", ids)
	}
	send(t, sc, 5, &codec.Publish{Topic: "t/1", Payload: []byte("x")})
	if m := recvOn(t, r1.Messages(), "t/+"); m.Topic != "t/1" {
		t.Fatalf("got %s", m.Topic)
	}

	// A broker that has them, and has lost the session.
	sb.SetConnack(frame(t, 5, &codec.Connack{}))
	sc.Close()
	sc = scripted(t, sb)
	s = nextOf[*codec.Subscribe](t, sc, 5)
	if ids := idsOf(s); ids != nil {
		t.Fatalf("re-subscribe of a filter subscribed without identifier carries %v", ids)
	}
	send(t, sc, 5, &codec.Suback{PacketID: s.PacketID, ReasonCodes: []codec.ReasonCode{0}})

	r2, s := subscribeRoute("u")
	ids := idsOf(s)
	if len(ids) != 1 || ids[0] == 0 {
		t.Fatalf("SUBSCRIBE of a route to a broker with identifiers carries %v", ids)
	}
	if s := subscribe(func() error { return c.Subscribe(testCtx(t), mqtt.Subscription{Filter: "u/#"}) }); idsOf(s) != nil {
		t.Fatalf("a plain SUBSCRIBE carries %v", idsOf(s))
	}
	send(t, sc, 5,
		&codec.Publish{Topic: "u", Payload: []byte("mine"), Properties: &codec.Properties{SubscriptionIdentifier: ids}},
		&codec.Publish{Topic: "u", Payload: []byte("another subscription's")})
	if m := recvOn(t, r2.Messages(), "u"); string(m.Payload) != "mine" {
		t.Fatalf("route got %q", m.Payload)
	}
	if m := receive(t, c); string(m.Payload) != "another subscription's" {
		t.Fatalf("Messages got %q", m.Payload)
	}

	// The broker loses the session again: one SUBSCRIBE per identifier.
	sc.Close()
	sc = scripted(t, sb)
	for _, want := range []struct {
		filter string
		ids    []uint32
	}{{"t/+", nil}, {"u", ids}, {"u/#", nil}} {
		s := nextOf[*codec.Subscribe](t, sc, 5)
		if len(s.Subscriptions) != 1 || s.Subscriptions[0].Filter != want.filter || !slices.Equal(idsOf(s), want.ids) {
			t.Fatalf("re-subscribe %+v with identifiers %v, want %s with %v", s.Subscriptions, idsOf(s), want.filter, want.ids)
		}
	}
}

// A SubscribeRoute whose ctx ends before the SUBACK returns no route, and
// the messages its subscription may bring go to Messages.
func TestSubscribeRouteFails(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "sr-fails", Version: 5})
	sc := scripted(t, sb)
	ctx, cancel := context.WithCancel(testCtx(t))
	got := make(chan error, 1)
	go func() {
		r, err := c.SubscribeRoute(ctx, mqtt.Subscription{Filter: "f"})
		if r != nil {
			t.Error("SubscribeRoute returned a route with its error")
		}
		got <- err
	}()
	s := nextOf[*codec.Subscribe](t, sc, 5)
	cancel()
	if err := <-got; !errors.Is(err, mqtt.ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) {
		t.Fatalf("SubscribeRoute: %v, want ErrOutcomeUnknown and context.Canceled", err)
	}
	send(t, sc, 5, &codec.Suback{PacketID: s.PacketID, ReasonCodes: []codec.ReasonCode{0}},
		&codec.Publish{Topic: "f", Payload: []byte("x"), Properties: &codec.Properties{SubscriptionIdentifier: s.Properties.SubscriptionIdentifier}})
	if m := receive(t, c); m.Topic != "f" {
		t.Fatalf("got %s", m.Topic)
	}

	ended, cancel := context.WithCancel(testCtx(t))
	cancel()
	if _, err := c.SubscribeRoute(ended, mqtt.Subscription{Filter: "g"}); !errors.Is(err, mqtt.ErrWithdrawn) {
		t.Fatalf("SubscribeRoute with an ended ctx: %v, want ErrWithdrawn", err)
	}
}

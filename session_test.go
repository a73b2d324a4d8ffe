package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// Tests of the session's protocol flows, driven frame by frame with the
// scripted broker. A PUBREL for an identifier the client never saw is the
// "barrier": the client answers it with PUBCOMP in the order it processes
// frames, so once the PUBCOMP arrives, everything written before the
// PUBREL has been handled.
const barrierID = 0xBEEF

func barrier(t *testing.T, sc *mqtttest.ScriptedConn, v byte) {
	t.Helper()
	send(t, sc, v, &codec.Pubrel{PacketID: barrierID})
	awaitBarrier(t, sc, v)
}

func awaitBarrier(t *testing.T, sc *mqtttest.ScriptedConn, v byte) {
	t.Helper()
	if p := nextOf[*codec.Pubcomp](t, sc, v); p.PacketID != barrierID {
		t.Fatalf("PUBCOMP for %d, want the barrier %d", p.PacketID, barrierID)
	}
}

var sessionPresent = []byte{0x20, 0x02, 0x01, 0x00}

// Inbound QoS 1 is acknowledged only after the application received it.
func TestInboundQoS1AckedAfterReceipt(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "ack-after"})
	sc := scripted(t, sb)
	send(t, sc, 4, &codec.Publish{Topic: "t", Payload: []byte("one"), QoS: 1, PacketID: 7},
		&codec.Pubrel{PacketID: barrierID})
	// The client handled the PUBLISH before the barrier, and sent no
	// PUBACK: the first frame is the barrier's PUBCOMP.
	awaitBarrier(t, sc, 4)
	if m := receive(t, c); string(m.Payload) != "one" {
		t.Fatalf("got %q", m.Payload)
	}
	if p := nextOf[*codec.Puback](t, sc, 4); p.PacketID != 7 {
		t.Fatalf("PUBACK for %d, want 7", p.PacketID)
	}
}

// With ManualAck the acknowledgement waits for Message.Ack, and the
// acknowledgements still go out in the order the PUBLISHes arrived
// [MQTT-4.6.0-2, MQTT-4.6.0-3]: one acked early waits for those before it.
func TestManualAck(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "manual", ManualAck: true})
	sc := scripted(t, sb)
	send(t, sc, 4, &codec.Publish{Topic: "t", Payload: []byte("q1"), QoS: 1, PacketID: 1},
		&codec.Publish{Topic: "t", Payload: []byte("q2"), QoS: 2, PacketID: 2})
	m1, m2 := receive(t, c), receive(t, c)
	barrier(t, sc, 4) // received, but not acked: no PUBACK/PUBREC yet
	if err := m2.Ack(); err != nil {
		t.Fatal(err)
	}
	barrier(t, sc, 4) // the PUBREC for 2 waits for the PUBACK for 1
	if err := m1.Ack(); err != nil {
		t.Fatal(err)
	}
	if err := m1.Ack(); err != nil { // a second Ack is harmless and sends nothing
		t.Fatal(err)
	}
	if p := nextOf[*codec.Puback](t, sc, 4); p.PacketID != 1 {
		t.Fatalf("PUBACK for %d, want 1", p.PacketID)
	}
	if p := nextOf[*codec.Pubrec](t, sc, 4); p.PacketID != 2 {
		t.Fatalf("PUBREC for %d, want 2", p.PacketID)
	}
	barrier(t, sc, 4)
}

// Inbound QoS 2 is delivered once, never twice, across a reconnect in the
// middle of its flow.
func TestInboundQoS2OnceAcrossReconnect(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "qos2-once"})
	sc := scripted(t, sb)
	send(t, sc, 4, &codec.Publish{Topic: "alarm", Payload: []byte("window"), QoS: 2, PacketID: 5})
	if m := receive(t, c); string(m.Payload) != "window" {
		t.Fatalf("got %q", m.Payload)
	}
	if p := nextOf[*codec.Pubrec](t, sc, 4); p.PacketID != 5 {
		t.Fatalf("PUBREC for %d, want 5", p.PacketID)
	}
	// The broker's connection dies before it saw our PUBREC, as far as it
	// knows, and it sends the PUBLISH again on the next one.
	sb.SetConnack(sessionPresent)
	sc.Close()
	sc = scripted(t, sb)
	send(t, sc, 4, &codec.Publish{Topic: "alarm", Payload: []byte("window"), QoS: 2, PacketID: 5, Dup: true})
	if p := nextOf[*codec.Pubrec](t, sc, 4); p.PacketID != 5 {
		t.Fatalf("PUBREC for %d after the re-send, want 5", p.PacketID)
	}
	send(t, sc, 4, &codec.Pubrel{PacketID: 5})
	if p := nextOf[*codec.Pubcomp](t, sc, 4); p.PacketID != 5 {
		t.Fatalf("PUBCOMP for %d, want 5", p.PacketID)
	}
	// The identifier is free again: a new message with it is new.
	send(t, sc, 4, &codec.Publish{Topic: "alarm", Payload: []byte("door"), QoS: 2, PacketID: 5})
	if m := receive(t, c); string(m.Payload) != "door" {
		t.Fatalf("got %q after the re-sent message, want the next one (door): a QoS 2 message was delivered twice", m.Payload)
	}
}

// On reconnect with the session present, unacknowledged PUBLISHes go again
// with DUP=1 and PUBRELs again, in their original order, before anything
// new.
func TestResendInOrderBeforeNew(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "resend"})
	sc := scripted(t, sb)
	ctx := t.Context()
	a := c.PublishAsync(ctx, mqtt.Message{Topic: "a", QoS: 2})
	pa := nextOf[*codec.Publish](t, sc, 4)
	b := c.PublishAsync(ctx, mqtt.Message{Topic: "b", QoS: 1})
	pb := nextOf[*codec.Publish](t, sc, 4)
	d := c.PublishAsync(ctx, mqtt.Message{Topic: "d", QoS: 2})
	pd := nextOf[*codec.Publish](t, sc, 4)
	send(t, sc, 4, &codec.Pubrec{PacketID: pa.PacketID})
	if p := nextOf[*codec.Pubrel](t, sc, 4); p.PacketID != pa.PacketID {
		t.Fatalf("PUBREL for %d, want %d", p.PacketID, pa.PacketID)
	}
	sb.SetConnack(sessionPresent)
	sc.Close()
	waitEvent(t, c, mqtt.ConnectionLost)
	e := c.PublishAsync(ctx, mqtt.Message{Topic: "e", QoS: 1}) // queued while disconnected
	sc = scripted(t, sb)

	if p := nextOf[*codec.Pubrel](t, sc, 4); p.PacketID != pa.PacketID {
		t.Fatalf("first after reconnect: PUBREL %d, want PUBREL %d", p.PacketID, pa.PacketID)
	}
	for _, want := range []*codec.Publish{pb, pd} {
		p := nextOf[*codec.Publish](t, sc, 4)
		if p.Topic != want.Topic || p.PacketID != want.PacketID || !p.Dup {
			t.Fatalf("re-sent %q id %d dup %t, want %q id %d dup true", p.Topic, p.PacketID, p.Dup, want.Topic, want.PacketID)
		}
	}
	pe := nextOf[*codec.Publish](t, sc, 4)
	if pe.Topic != "e" || pe.Dup {
		t.Fatalf("after the re-sends: %q dup %t, want the new e with dup false", pe.Topic, pe.Dup)
	}
	for _, id := range []uint16{pb.PacketID, pe.PacketID} {
		send(t, sc, 4, &codec.Puback{PacketID: id})
	}
	send(t, sc, 4, &codec.Pubcomp{PacketID: pa.PacketID}, &codec.Pubrec{PacketID: pd.PacketID})
	nextOf[*codec.Pubrel](t, sc, 4)
	send(t, sc, 4, &codec.Pubcomp{PacketID: pd.PacketID})
	for name, r := range map[string]<-chan error{"a": a, "b": b, "d": d, "e": e} {
		if err := <-r; err != nil {
			t.Errorf("publish %s: %v", name, err)
		}
	}
}

// When the broker lost the session, the client subscribes again and sends
// what it still owes as new messages.
func TestSessionLostResubscribesAndResends(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "lost"})
	sc := scripted(t, sb)
	ctx := testCtx(t)
	subDone := make(chan error, 1)
	go func() {
		subDone <- c.Subscribe(ctx, mqtt.Subscription{Filter: "in/+", QoS: 1}, mqtt.Subscription{Filter: "other/#", QoS: 2})
	}()
	sp := nextOf[*codec.Subscribe](t, sc, 4)
	send(t, sc, 4, &codec.Suback{PacketID: sp.PacketID, ReasonCodes: []codec.ReasonCode{1, 2}})
	if err := <-subDone; err != nil {
		t.Fatal(err)
	}
	owed := c.PublishAsync(ctx, mqtt.Message{Topic: "owed", QoS: 1})
	nextOf[*codec.Publish](t, sc, 4)
	sc.Close() // the default CONNACK says: no session
	sc = scripted(t, sb)
	waitEvent(t, c, mqtt.SessionLost)
	rs := nextOf[*codec.Subscribe](t, sc, 4)
	if len(rs.Subscriptions) != 2 || rs.Subscriptions[0].Filter != "in/+" || rs.Subscriptions[1].Filter != "other/#" || rs.Subscriptions[1].QoS != 2 {
		t.Fatalf("re-subscribed to %+v, want in/+ and other/# (QoS 2)", rs.Subscriptions)
	}
	p := nextOf[*codec.Publish](t, sc, 4)
	if p.Topic != "owed" || p.Dup {
		t.Fatalf("re-sent %q dup %t, want owed as a new message (dup false)", p.Topic, p.Dup)
	}
	send(t, sc, 4, &codec.Suback{PacketID: rs.PacketID, ReasonCodes: []codec.ReasonCode{1, 2}}, &codec.Puback{PacketID: p.PacketID})
	if err := <-owed; err != nil {
		t.Fatal(err)
	}
}

// A re-subscription the broker refuses in its SUBACK is news the
// application hears of nowhere else (it made no call): a ResubscribeFailed
// event names the filter and carries the broker's reason code, the granted
// filter keeps delivering, and the refused one is tried again after the
// next session loss (a refusal such as Quota exceeded can pass).
func TestRefusedResubscriptionIsReported(t *testing.T) {
	for _, tc := range []struct {
		v    byte
		code codec.ReasonCode
	}{{4, codec.UnspecifiedError}, {5, codec.NotAuthorized}} {
		t.Run(fmt.Sprintf("v%d", tc.v), func(t *testing.T) {
			sb := mqtttest.NewScriptedBroker(t)
			c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "resub-refused", Version: tc.v})
			sc := scripted(t, sb)
			subDone := make(chan error, 1)
			go func() {
				subDone <- c.Subscribe(testCtx(t), mqtt.Subscription{Filter: "a/+", QoS: 1}, mqtt.Subscription{Filter: "deny/#", QoS: 1})
			}()
			sp := nextOf[*codec.Subscribe](t, sc, tc.v)
			send(t, sc, tc.v, &codec.Suback{PacketID: sp.PacketID, ReasonCodes: []codec.ReasonCode{1, 1}})
			if err := <-subDone; err != nil {
				t.Fatal(err)
			}
			for round := range 2 {
				sc.Close() // the default CONNACK says: no session
				sc = scripted(t, sb)
				rs := nextOf[*codec.Subscribe](t, sc, tc.v)
				if len(rs.Subscriptions) != 2 || rs.Subscriptions[0].Filter != "a/+" || rs.Subscriptions[1].Filter != "deny/#" {
					t.Fatalf("round %d: subscribed again to %+v, want a/+ and deny/#", round, rs.Subscriptions)
				}
				send(t, sc, tc.v, &codec.Suback{PacketID: rs.PacketID, ReasonCodes: []codec.ReasonCode{1, tc.code}})
				e := waitEvent(t, c, mqtt.ResubscribeFailed)
				var se *mqtt.SubscribeError
				if !slices.Equal(mqtt.FailedFilters(e), []string{"deny/#"}) || !errors.As(e.Err, &se) || se.Refused["deny/#"] != tc.code || len(se.Refused) != 1 {
					t.Fatalf("round %d: %v (filters %q), want deny/# refused with %v", round, e, mqtt.FailedFilters(e), tc.code)
				}
				if e.Server != sb.URL() {
					t.Errorf("the event names server %q, want %q", e.Server, sb.URL())
				}
			}
			send(t, sc, tc.v, &codec.Publish{Topic: "a/1", QoS: 1, PacketID: 7})
			if m := receive(t, c); m.Topic != "a/1" {
				t.Fatalf("got a message to %q, want a/1", m.Topic)
			}
		})
	}
}

// The in-flight window is the smaller of MaxInflight and the broker's
// Receive Maximum.
func TestInflightWindow(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	recvMax := uint16(2)
	sb.SetConnack(frame(t, 5, &codec.Connack{Properties: &codec.Properties{ReceiveMaximum: &recvMax}}))
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "window", Version: 5, MaxInflight: 3})
	sc := scripted(t, sb)
	var results []<-chan error
	for i := range 5 {
		results = append(results, c.PublishAsync(t.Context(), mqtt.Message{Topic: "w/" + strconv.Itoa(i), QoS: 1}))
	}
	p0 := nextOf[*codec.Publish](t, sc, 5)
	p1 := nextOf[*codec.Publish](t, sc, 5)
	barrier(t, sc, 5) // a third PUBLISH would have come before the PUBCOMP
	seen := map[uint16]bool{p0.PacketID: true, p1.PacketID: true}
	send(t, sc, 5, &codec.Puback{PacketID: p0.PacketID})
	p2 := nextOf[*codec.Publish](t, sc, 5)
	if p2.Topic != "w/2" || seen[p2.PacketID] && p2.PacketID != p0.PacketID {
		t.Fatalf("third PUBLISH %q id %d collides with one in use", p2.Topic, p2.PacketID)
	}
	barrier(t, sc, 5)
	send(t, sc, 5, &codec.Puback{PacketID: p1.PacketID}, &codec.Puback{PacketID: p2.PacketID})
	p3 := nextOf[*codec.Publish](t, sc, 5)
	p4 := nextOf[*codec.Publish](t, sc, 5)
	send(t, sc, 5, &codec.Puback{PacketID: p3.PacketID}, &codec.Puback{PacketID: p4.PacketID})
	for i, r := range results {
		if err := <-r; err != nil {
			t.Errorf("publish %d: %v", i, err)
		}
	}
}

// ctx ending after the PUBLISH was written: the outcome is unknown, and the
// session still completes the flow.
func TestOutcomeUnknownAfterWrite(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "unknown"})
	sc := scripted(t, sb)
	ctx, cancel := context.WithCancel(t.Context())
	r := c.PublishAsync(ctx, mqtt.Message{Topic: "u", QoS: 2})
	p := nextOf[*codec.Publish](t, sc, 4)
	cancel()
	err := <-r
	if !errors.Is(err, mqtt.ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) {
		t.Fatalf("result = %v, want ErrOutcomeUnknown wrapping Canceled", err)
	}
	send(t, sc, 4, &codec.Pubrec{PacketID: p.PacketID})
	if rel := nextOf[*codec.Pubrel](t, sc, 4); rel.PacketID != p.PacketID {
		t.Fatalf("PUBREL %d, want %d: the session must finish the flow", rel.PacketID, p.PacketID)
	}
	send(t, sc, 4, &codec.Pubcomp{PacketID: p.PacketID})
	barrier(t, sc, 4) // the late PUBCOMP is not a protocol error
	if err := c.Publish(testCtx(t), mqtt.Message{Topic: "after"}); err != nil {
		t.Fatal(err)
	}
}

// An MQTT 5 broker's refusal of a publish is a *PublishError with its code.
func TestPublishRefusedV5(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "refused-pub", Version: 5})
	sc := scripted(t, sb)
	r1 := c.PublishAsync(t.Context(), mqtt.Message{Topic: "acl/1", QoS: 1})
	p1 := nextOf[*codec.Publish](t, sc, 5)
	r2 := c.PublishAsync(t.Context(), mqtt.Message{Topic: "acl/2", QoS: 2})
	p2 := nextOf[*codec.Publish](t, sc, 5)
	reason := "not on my broker"
	send(t, sc, 5, &codec.Puback{PacketID: p1.PacketID, ReasonCode: codec.NotAuthorized, Properties: &codec.Properties{ReasonString: reason}},
		&codec.Pubrec{PacketID: p2.PacketID, ReasonCode: codec.QuotaExceeded})
	var pe *mqtt.PublishError
	if err := <-r1; !errors.As(err, &pe) || pe.ReasonCode != codec.NotAuthorized || pe.ReasonString != reason {
		t.Fatalf("QoS 1 result = %v, want a *PublishError NotAuthorized %q", err, reason)
	}
	if err := <-r2; !errors.As(err, &pe) || pe.ReasonCode != codec.QuotaExceeded {
		t.Fatalf("QoS 2 result = %v, want a *PublishError QuotaExceeded", err)
	}
	barrier(t, sc, 5) // no PUBREL after a refused PUBREC
}

// MQTT 5 topic aliases from the broker are resolved into Message.Topic.
func TestInboundTopicAlias(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "alias", Version: 5, TopicAliasMaximum: 8})
	sc := scripted(t, sb)
	alias := uint16(3)
	send(t, sc, 5, &codec.Publish{Topic: "sensors/long/topic/name", Payload: []byte("1"), Properties: &codec.Properties{TopicAlias: &alias}},
		&codec.Publish{Payload: []byte("2"), Properties: &codec.Properties{TopicAlias: &alias}})
	for _, want := range []string{"1", "2"} {
		if m := receive(t, c); m.Topic != "sensors/long/topic/name" || string(m.Payload) != want {
			t.Fatalf("got %q %q, want sensors/long/topic/name %q", m.Topic, m.Payload, want)
		}
	}
}

// QoS 0 messages that arrive while the application is MaxPending behind are
// dropped (the newest), counted and reported; QoS 1 messages are never
// dropped.
func TestQoS0DroppedWhenApplicationFallsBehind(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	const maxPending, n = 10, 100
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "behind", MaxPending: maxPending})
	sc := scripted(t, sb)
	var flood []codec.Packet
	for i := range n {
		flood = append(flood, &codec.Publish{Topic: "flood/q0", Payload: []byte(strconv.Itoa(i))})
	}
	flood = append(flood, &codec.Publish{Topic: "flood/q1", Payload: []byte("kept"), QoS: 1, PacketID: 1})
	send(t, sc, 4, flood...)
	barrier(t, sc, 4) // everything was handled while nobody read
	// The first drop is news when it happens, not once the application
	// has caught up.
	first := waitEvent(t, c, mqtt.MessagesDropped)
	for i := range maxPending {
		if m := receive(t, c); m.Topic != "flood/q0" || string(m.Payload) != strconv.Itoa(i) {
			t.Fatalf("message %d: %q %q, want flood/q0 %d: the oldest are kept", i, m.Topic, m.Payload, i)
		}
	}
	if m := receive(t, c); m.Topic != "flood/q1" {
		t.Fatalf("got %q, want the QoS 1 message, which is never dropped", m.Topic)
	}
	// The rest is reported once the application caught up: the counts
	// add up to every drop.
	total := first.Count
	for total < n-maxPending {
		total += waitEvent(t, c, mqtt.MessagesDropped).Count
	}
	if total != n-maxPending {
		t.Fatalf("MessagesDropped counts add up to %d, want %d", total, n-maxPending)
	}
}

// QoS 0 Publish returns once written, and a QoS 0 message queued while
// disconnected is sent after the reconnect, not dropped.
func TestQoS0QueuedAcrossReconnect(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "q0"})
	sc := scripted(t, sb)
	sc.Close()
	waitEvent(t, c, mqtt.ConnectionLost)
	r := c.PublishAsync(t.Context(), mqtt.Message{Topic: "q0", Payload: []byte("while away")})
	sc = scripted(t, sb)
	if p := nextOf[*codec.Publish](t, sc, 4); p.Topic != "q0" || string(p.Payload) != "while away" {
		t.Fatalf("got %q %q", p.Topic, p.Payload)
	}
	select {
	case err := <-r:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("QoS 0 publish has no result after it was written")
	}
}

// Disconnect waits for in-flight publishes, then says goodbye.
func TestDisconnectDrains(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "drain"})
	sc := scripted(t, sb)
	r := c.PublishAsync(t.Context(), mqtt.Message{Topic: "last words", QoS: 1})
	p := nextOf[*codec.Publish](t, sc, 4)
	done := make(chan error, 1)
	go func() { done <- c.Disconnect(testCtx(t)) }()
	// Once the session has taken the Disconnect, new publishes are
	// refused; until then they go out as usual.
	for {
		err := c.Publish(testCtx(t), mqtt.Message{Topic: "late"})
		if isClosedErr(err) {
			break
		}
		if err != nil {
			t.Fatalf("Publish during Disconnect = %v, want nil or ErrClosed", err)
		}
		if p := nextOf[*codec.Publish](t, sc, 4); p.Topic != "late" {
			t.Fatalf("got %q", p.Topic)
		}
	}
	barrier(t, sc, 4) // still connected, still waiting for the PUBACK
	send(t, sc, 4, &codec.Puback{PacketID: p.PacketID})
	nextOf[*codec.Disconnect](t, sc, 4)
	if err := <-done; err != nil {
		t.Fatalf("Disconnect = %v", err)
	}
	if err := <-r; err != nil {
		t.Fatalf("the in-flight publish = %v, want nil", err)
	}
}

// Disconnect whose ctx ends first stops anyway and fails what is left.
func TestDisconnectTimesOut(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "drain-timeout"})
	sc := scripted(t, sb)
	r := c.PublishAsync(t.Context(), mqtt.Message{Topic: "never acked", QoS: 1})
	nextOf[*codec.Publish](t, sc, 4)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := c.Disconnect(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Disconnect = %v, want DeadlineExceeded", err)
	}
	if err := <-r; !isClosedErr(err) {
		t.Fatalf("the unacknowledged publish = %v, want ErrClosed", err)
	}
}

// MQTT 5: the broker completed a QoS 2 flow (PUBREC success, PUBREL, its
// PUBCOMP lost with the connection); the PUBREL sent again after the
// reconnect finds no flow and gets PUBCOMP 0x92. The broker accepted the
// message at PUBREC: the publish succeeded.
func TestV5PubcompNotFoundAfterReconnect(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "pubcomp-92", Version: 5})
	sc := scripted(t, sb)
	res := c.PublishAsync(testCtx(t), mqtt.Message{Topic: "alarm", Payload: []byte("window"), QoS: 2})
	p := nextOf[*codec.Publish](t, sc, 5)
	send(t, sc, 5, &codec.Pubrec{PacketID: p.PacketID})
	nextOf[*codec.Pubrel](t, sc, 5)
	sb.SetConnack([]byte{0x20, 0x03, 0x01, 0x00, 0x00}) // session present
	sc.Close()                                          // the PUBCOMP is lost
	sc = scripted(t, sb)
	if rel := nextOf[*codec.Pubrel](t, sc, 5); rel.PacketID != p.PacketID {
		t.Fatalf("PUBREL %d, want %d", rel.PacketID, p.PacketID)
	}
	send(t, sc, 5, &codec.Pubcomp{PacketID: p.PacketID, ReasonCode: codec.PacketIdentifierNotFound})
	if err := <-res; err != nil {
		t.Fatalf("QoS 2 publish whose PUBREC came: %v; want nil (the broker accepted it at PUBREC)", err)
	}
}

// An acknowledgement the application gave while disconnected waits for the
// broker's re-sent copy. Sent at once, it would cross that copy, which then
// looks new; the broker, free to reuse the identifier, sends a new message
// under it, which the client took for a duplicate of the copy and dropped,
// and then acknowledged with the copy's ack: lost (found by
// TestBrokerRestartMidStream under load, with mochi, which hands out
// identifiers from 1 again on every connection).
func TestInboundAckOwedWaitsForResend(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	px := mqtttest.NewProxy(t, sb.Addr())
	c := dial(t, mqtt.Config{Servers: []string{px.URL()}, ClientID: "owed"})
	sc := scripted(t, sb)
	send(t, sc, 4, &codec.Publish{Topic: "t", Payload: []byte("a"), QoS: 1, PacketID: 5})
	barrier(t, sc, 4)
	px.Refuse(true)
	px.Cut()
	waitEvent(t, c, mqtt.ConnectionLost)
	if m := receive(t, c); string(m.Payload) != "a" {
		t.Fatalf("received %q, want a", m.Payload)
	}
	sb.SetConnack(sessionPresent)
	px.Refuse(false)
	sc = scripted(t, sb)
	send(t, sc, 4, &codec.Publish{Topic: "t", Payload: []byte("a"), QoS: 1, PacketID: 5, Dup: true})
	if ack := nextOf[*codec.Puback](t, sc, 4); ack.PacketID != 5 {
		t.Fatalf("PUBACK for %d, want 5", ack.PacketID)
	}
	send(t, sc, 4, &codec.Publish{Topic: "t", Payload: []byte("b"), QoS: 1, PacketID: 5})
	if m := receive(t, c); string(m.Payload) != "b" {
		t.Fatalf("received %q after the re-sent copy, want the new message b", m.Payload)
	}
	if ack := nextOf[*codec.Puback](t, sc, 4); ack.PacketID != 5 {
		t.Fatalf("PUBACK for %d, want 5", ack.PacketID)
	}
}

// What the session does with a new connection is news of that connection:
// its events come after the Connected event that announced it (and after
// SessionLost, when the broker lost the session), never before. A
// re-subscription too large for the new broker's Maximum Packet Size is
// reported the instant the session takes the connection, so it was the
// first to overtake them.
func TestConnectionEventsFollowConnected(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "event-order", Version: 5})
	sc := scripted(t, sb)
	long := mqtt.Subscription{Filter: strings.Repeat("x", 100), QoS: 1}
	res := make(chan error, 1)
	go func() { res <- c.Subscribe(testCtx(t), long) }()
	p := nextOf[*codec.Subscribe](t, sc, 5)
	send(t, sc, 5, &codec.Suback{PacketID: p.PacketID, ReasonCodes: []codec.ReasonCode{codec.GrantedQoS1}})
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	waitEvent(t, c, mqtt.Connected)

	maxSize := uint32(60)
	sb.SetConnack(frame(t, 5, &codec.Connack{Properties: &codec.Properties{MaximumPacketSize: &maxSize}}))
	for round := range 5 {
		sc.Close()
		sc = scripted(t, sb)
		var kinds []mqtt.EventKind
		for len(kinds) == 0 || kinds[len(kinds)-1] != mqtt.ResubscribeFailed {
			kinds = append(kinds, waitAnyEvent(t, c).Kind)
		}
		at := func(k mqtt.EventKind) int { return slices.Index(kinds, k) }
		if at(mqtt.Connected) < 0 || at(mqtt.SessionLost) < at(mqtt.Connected) {
			t.Fatalf("round %d: events %v, want Connected, then SessionLost, then ResubscribeFailed", round, kinds)
		}
	}
}

// SubscribeGranted returns the SUBACK's answer to each subscription, in
// order: the QoS granted, which may be lower than asked, or the refusal,
// which the *SubscribeError names too. A call that got no SUBACK returns
// no codes.
func TestSubscribeGrantedReportsTheSuback(t *testing.T) {
	refusal := map[byte]codec.ReasonCode{4: codec.UnspecifiedError, 5: codec.NotAuthorized}
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			sb := mqtttest.NewScriptedBroker(t)
			c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "granted", Version: v})
			sc := scripted(t, sb)
			type result struct {
				codes []codec.ReasonCode
				err   error
			}
			call := func(ctx context.Context, subs ...mqtt.Subscription) chan result {
				res := make(chan result, 1)
				go func() {
					codes, err := c.SubscribeGranted(ctx, subs...)
					res <- result{codes, err}
				}()
				return res
			}

			res := call(testCtx(t), mqtt.Subscription{Filter: "a/#", QoS: 2}, mqtt.Subscription{Filter: "b", QoS: 1})
			p := nextOf[*codec.Subscribe](t, sc, v)
			send(t, sc, v, &codec.Suback{PacketID: p.PacketID, ReasonCodes: []codec.ReasonCode{codec.GrantedQoS1, codec.GrantedQoS0}})
			if r := <-res; r.err != nil || !slices.Equal(r.codes, []codec.ReasonCode{codec.GrantedQoS1, codec.GrantedQoS0}) {
				t.Fatalf("SubscribeGranted = %v, %v; want [1 0] (downgraded), nil", r.codes, r.err)
			}

			res = call(testCtx(t), mqtt.Subscription{Filter: "c", QoS: 2}, mqtt.Subscription{Filter: "deny", QoS: 1})
			p = nextOf[*codec.Subscribe](t, sc, v)
			send(t, sc, v, &codec.Suback{PacketID: p.PacketID, ReasonCodes: []codec.ReasonCode{codec.GrantedQoS2, refusal[v]}})
			r := <-res
			var se *mqtt.SubscribeError
			if !errors.As(r.err, &se) || se.Refused["deny"] != refusal[v] || !slices.Equal(r.codes, []codec.ReasonCode{codec.GrantedQoS2, refusal[v]}) {
				t.Fatalf("SubscribeGranted = %v, %v; want [2 %v] and a *SubscribeError refusing deny", r.codes, r.err, refusal[v])
			}

			ctx, cancel := context.WithCancel(testCtx(t))
			res = call(ctx, mqtt.Subscription{Filter: "late", QoS: 1})
			p = nextOf[*codec.Subscribe](t, sc, v)
			cancel()
			r = <-res
			if !errors.Is(r.err, mqtt.ErrOutcomeUnknown) || r.codes != nil {
				t.Fatalf("SubscribeGranted whose ctx ended after the SUBSCRIBE = %v, %v; want no codes, ErrOutcomeUnknown", r.codes, r.err)
			}
			send(t, sc, v, &codec.Suback{PacketID: p.PacketID, ReasonCodes: []codec.ReasonCode{codec.GrantedQoS1}})
			barrier(t, sc, v) // the late SUBACK is taken as any other
		})
	}
}

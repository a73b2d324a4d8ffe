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

// offline returns a broker, a subscriber to "q/#" on it, and a publisher
// that has lost its connection because the broker stopped. Start the
// broker again to let the queue flow.
func offline(t *testing.T, cfg mqtt.Config) (*mqtttest.Broker, *mqtt.Client, *mqtt.Client) {
	t.Helper()
	b := mqtttest.NewBroker(t)
	sub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: t.Name() + "-sub"})
	if err := sub.Subscribe(testCtx(t), mqtt.Subscription{Filter: "q/#", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	cfg.Servers = []string{b.URL()}
	cfg.ClientID = t.Name() + "-pub"
	pub := dial(t, cfg)
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, pub, mqtt.ConnectionLost)
	return b, sub, pub
}

// resultOf waits for a publish's result.
func resultOf(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(wait):
		t.Fatal("no publish result within the deadline")
	}
	return nil
}

// pending reports whether a publish has no result yet.
func pending(ch <-chan error) bool {
	select {
	case err := <-ch:
		panic(fmt.Sprintf("publish ended early: %v", err))
	default:
		return true
	}
}

// payloads receives n messages and returns "topic=payload" for each.
func payloads(t *testing.T, c *mqtt.Client, n int) []string {
	t.Helper()
	var got []string
	for range n {
		m := receive(t, c)
		got = append(got, m.Topic+"="+string(m.Payload))
	}
	return got
}

// noMore checks that nothing else arrives before a final marker message.
func noMore(t *testing.T, pub, sub *mqtt.Client) {
	t.Helper()
	if err := pub.Publish(testCtx(t), mqtt.Message{Topic: "q/end", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, sub); m.Topic != "q/end" {
		t.Fatalf("received %s=%s, which should never have been sent", m.Topic, m.Payload)
	}
}

func msg(topic, payload string, p mqtt.QueuePolicy) mqtt.Message {
	return mqtt.Message{Topic: topic, Payload: []byte(payload), QoS: 1, QueuePolicy: p}
}

func TestQueueFailNewest(t *testing.T) {
	b, sub, pub := offline(t, mqtt.Config{MaxInflight: 2, MaxQueued: 2, QueuePolicy: mqtt.FailNewest})
	ctx := testCtx(t)
	a, bb := pub.PublishAsync(ctx, msg("q/a", "1", 0)), pub.PublishAsync(ctx, msg("q/b", "2", 0))
	err := pub.Publish(ctx, msg("q/c", "3", 0))
	if !errors.Is(err, mqtt.ErrQueueFull) {
		t.Fatalf("third publish on a full queue: %v, want ErrQueueFull", err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan error{a, bb} {
		if err := resultOf(t, ch); err != nil {
			t.Fatal(err)
		}
	}
	if got := payloads(t, sub, 2); !slices.Equal(got, []string{"q/a=1", "q/b=2"}) {
		t.Fatalf("received %v", got)
	}
	noMore(t, pub, sub)
	if st := pub.Stats(); st.Publishes[1].QueueFull != 1 || st.Publishes[1].Acknowledged < 2 {
		t.Fatalf("stats %+v: want 1 queue-full and 2 acknowledged", st.Publishes[1])
	}
}

// DropOldest drops only messages that allow it, oldest first, and never
// one that is in flight.
func TestQueueDropOldest(t *testing.T) {
	b, sub, pub := offline(t, mqtt.Config{MaxInflight: 3, MaxQueued: 3, QueuePolicy: mqtt.DropOldest})
	ctx := testCtx(t)
	alarm := pub.PublishAsync(ctx, msg("q/alarm", "!", mqtt.Block))
	first := pub.PublishAsync(ctx, msg("q/t", "1", 0))
	second := pub.PublishAsync(ctx, msg("q/t", "2", 0))
	third := pub.PublishAsync(ctx, msg("q/t", "3", 0))
	if err := resultOf(t, first); !errors.Is(err, mqtt.ErrDropped) {
		t.Fatalf("oldest droppable message: %v, want ErrDropped", err)
	}
	fourth := pub.PublishAsync(ctx, msg("q/t", "4", 0))
	if err := resultOf(t, second); !errors.Is(err, mqtt.ErrDropped) {
		t.Fatalf("next oldest droppable message: %v, want ErrDropped", err)
	}
	pending(alarm)
	// Only the alarm and droppable messages are waiting; a FailNewest
	// publish still fails, a DropOldest one takes the room of "3".
	if err := pub.Publish(ctx, msg("q/x", "x", mqtt.FailNewest)); !errors.Is(err, mqtt.ErrQueueFull) {
		t.Fatalf("FailNewest on a full queue: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan error{alarm, third, fourth} {
		if err := resultOf(t, ch); err != nil {
			t.Fatal(err)
		}
	}
	if got := payloads(t, sub, 3); !slices.Equal(got, []string{"q/alarm=!", "q/t=3", "q/t=4"}) {
		t.Fatalf("received %v, want the alarm and the two newest", got)
	}
	noMore(t, pub, sub)
	if st := pub.Stats(); st.Publishes[1].Dropped != 2 {
		t.Fatalf("stats: %d dropped, want 2", st.Publishes[1].Dropped)
	}
}

// With only messages that may not be dropped in the queue, DropOldest
// fails the newest.
func TestQueueDropOldestNothingToDrop(t *testing.T) {
	_, _, pub := offline(t, mqtt.Config{MaxInflight: 1, MaxQueued: 1})
	ctx := testCtx(t)
	held := pub.PublishAsync(ctx, msg("q/held", "1", 0))
	if err := pub.Publish(ctx, msg("q/t", "2", mqtt.DropOldest)); !errors.Is(err, mqtt.ErrQueueFull) {
		t.Fatalf("DropOldest with nothing droppable: %v, want ErrQueueFull", err)
	}
	pending(held)
}

// LatestPerTopic keeps the newest value per topic while disconnected.
func TestQueueLatestPerTopic(t *testing.T) {
	b, sub, pub := offline(t, mqtt.Config{QueuePolicy: mqtt.LatestPerTopic})
	ctx := testCtx(t)
	var older []<-chan error
	for i := range 3 {
		older = append(older, pub.PublishAsync(ctx, msg("q/temp", fmt.Sprint(20+i), 0)))
	}
	humidity := pub.PublishAsync(ctx, msg("q/humidity", "40", 0))
	latest := pub.PublishAsync(ctx, msg("q/temp", "23", 0))
	for i, ch := range older {
		if err := resultOf(t, ch); !errors.Is(err, mqtt.ErrSuperseded) {
			t.Fatalf("reading %d: %v, want ErrSuperseded", i, err)
		}
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan error{humidity, latest} {
		if err := resultOf(t, ch); err != nil {
			t.Fatal(err)
		}
	}
	if got := payloads(t, sub, 2); !slices.Equal(got, []string{"q/humidity=40", "q/temp=23"}) {
		t.Fatalf("received %v, want one humidity and the latest temperature", got)
	}
	noMore(t, pub, sub)
	if st := pub.Stats(); st.Publishes[1].Superseded != 3 {
		t.Fatalf("stats: %d superseded, want 3", st.Publishes[1].Superseded)
	}
}

// Block waits for room until its ctx ends, and gets room when a publish
// finishes.
func TestQueueBlock(t *testing.T) {
	b, _, pub := offline(t, mqtt.Config{MaxInflight: 1, MaxQueued: 1})
	ctx := testCtx(t)
	first := pub.PublishAsync(ctx, msg("q/a", "1", 0))
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := pub.Publish(short, msg("q/b", "2", 0)); !errors.Is(err, mqtt.ErrWithdrawn) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("blocked publish whose ctx ended: %v, want ErrWithdrawn and DeadlineExceeded", err)
	}
	waiting := make(chan error, 1)
	go func() { waiting <- pub.Publish(ctx, msg("q/c", "3", 0)) }()
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := resultOf(t, first); err != nil {
		t.Fatal(err)
	}
	if err := resultOf(t, waiting); err != nil {
		t.Fatalf("blocked publish after room came: %v", err)
	}
}

func TestQueueBytesLimit(t *testing.T) {
	b, _, pub := offline(t, mqtt.Config{MaxQueuedBytes: 100, QueuePolicy: mqtt.FailNewest})
	ctx := testCtx(t)
	if err := pub.Publish(ctx, mqtt.Message{Topic: "q/big", Payload: make([]byte, 200), QoS: 1}); !errors.Is(err, mqtt.ErrQueueFull) {
		t.Fatalf("a message larger than MaxQueuedBytes: %v", err)
	}
	held := pub.PublishAsync(ctx, mqtt.Message{Topic: "q/a", Payload: make([]byte, 60), QoS: 1})
	if err := pub.Publish(ctx, mqtt.Message{Topic: "q/b", Payload: make([]byte, 60), QoS: 1}); !errors.Is(err, mqtt.ErrQueueFull) {
		t.Fatalf("a message beyond MaxQueuedBytes: %v", err)
	}
	small := pub.PublishAsync(ctx, mqtt.Message{Topic: "q/c", Payload: make([]byte, 10), QoS: 1})
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []<-chan error{held, small} {
		if err := resultOf(t, ch); err != nil {
			t.Fatal(err)
		}
	}
	if st := pub.Stats(); st.Queued != 0 || st.Inflight != 0 {
		t.Fatalf("queue depth %d, in flight %d after everything finished", st.Queued, st.Inflight)
	}
}

func expiring(topic string, secs uint32) mqtt.Message {
	return mqtt.Message{Topic: topic, Payload: []byte(topic), QoS: 1, Properties: &codec.Properties{MessageExpiry: &secs}}
}

// A message whose expiry interval runs out in the queue is never sent;
// one sent later carries the interval left.
func TestMessageExpiry(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	px := mqtttest.NewProxy(t, sb.Addr())
	c := dial(t, mqtt.Config{Servers: []string{px.URL()}, ClientID: "expiry", Version: 5})
	sc := scripted(t, sb)
	px.Refuse(true)
	px.Cut()
	waitEvent(t, c, mqtt.ConnectionLost)
	ctx := testCtx(t)
	long := c.PublishAsync(ctx, expiring("q/long", 10))
	short := c.PublishAsync(ctx, expiring("q/short", 1))
	if err := resultOf(t, short); !errors.Is(err, mqtt.ErrExpired) {
		t.Fatalf("expired while queued: %v, want ErrExpired", err)
	}
	px.Refuse(false)
	sc = scripted(t, sb) // at least 1 s after the publish
	p := nextOf[*codec.Publish](t, sc, 5)
	if p.Topic != "q/long" {
		t.Fatalf("client sent %q, want only q/long", p.Topic)
	}
	if left := *p.Properties.MessageExpiry; left < 1 || left > 9 {
		t.Fatalf("expiry interval on the wire %d s, want what is left of 10 s after at least 1 s (1 to 9)", left)
	}
	send(t, sc, 5, &codec.Puback{PacketID: p.PacketID})
	if err := resultOf(t, long); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Publishes[1].Expired != 1 || st.Publishes[1].Acknowledged != 1 {
		t.Fatalf("stats %+v", st.Publishes[1])
	}
}

// Flush returns once every earlier publish has its result, and says how
// many are left when its ctx ends first.
func TestFlush(t *testing.T) {
	b := mqtttest.NewBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "flush"})
	ctx := testCtx(t)
	var results []<-chan error
	for i := range 200 {
		results = append(results, c.PublishAsync(ctx, mqtt.Message{Topic: "f", Payload: []byte{byte(i)}, QoS: mqtt.QoS(i % 3)}))
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i, ch := range results {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		default:
			t.Fatalf("Flush returned before publish %d had its result", i)
		}
	}

	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, c, mqtt.ConnectionLost)
	for range 3 {
		c.PublishAsync(ctx, mqtt.Message{Topic: "f", QoS: 1})
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	err := c.Flush(short)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(fmt.Sprint(err), "3 publishes") {
		t.Fatalf("Flush while disconnected: %v, want a deadline error that says 3 remain", err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestStats(t *testing.T) {
	b := mqtttest.NewBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "stats"})
	ctx := testCtx(t)
	if err := c.Subscribe(ctx, mqtt.Subscription{Filter: "s/#", QoS: 2}); err != nil {
		t.Fatal(err)
	}
	for q := range 3 {
		if err := c.Publish(ctx, mqtt.Message{Topic: "s/x", QoS: mqtt.QoS(q)}); err != nil {
			t.Fatal(err)
		}
		receive(t, c)
	}
	b.Kick()
	waitEvent(t, c, mqtt.ConnectionLost)
	waitEvent(t, c, mqtt.Connected)
	st := c.Stats()
	for q := range 3 {
		if st.Publishes[q].Acknowledged != 1 || st.Received[q] != 1 {
			t.Errorf("QoS %d: %d acknowledged, %d received; want 1 and 1", q, st.Publishes[q].Acknowledged, st.Received[q])
		}
	}
	cs := st.Connections
	if cs.Attempts != 2 || cs.Succeeded != 2 || cs.Lost.ServerClosed+cs.Lost.Network != 1 {
		t.Errorf("connections %+v: want 2 attempts, 2 up, 1 lost", cs)
	}
	if st.BytesWritten == 0 || st.BytesRead == 0 || !st.Connected || st.TimeConnected <= 0 {
		t.Errorf("stats %+v: want bytes both ways, connected, time connected", st)
	}
}

// A message already written is never dropped, superseded or withdrawn:
// only messages still waiting in the queue are.
func TestQueueNeverDropsWhatWasSent(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "sent", MaxInflight: 1, MaxQueued: 2,
		QueuePolicy: mqtt.LatestPerTopic})
	sc := scripted(t, sb)
	ctx := testCtx(t)
	sent := c.PublishAsync(ctx, msg("q/t", "1", 0))
	p := nextOf[*codec.Publish](t, sc, 4)
	waiting := c.PublishAsync(ctx, msg("q/u", "2", 0))
	newer := c.PublishAsync(ctx, msg("q/t", "3", 0)) // same topic as the sent one, and the queue is full
	if err := resultOf(t, waiting); !errors.Is(err, mqtt.ErrDropped) {
		t.Fatalf("waiting message: %v, want ErrDropped", err)
	}
	pending(sent)
	send(t, sc, 4, &codec.Puback{PacketID: p.PacketID})
	if err := resultOf(t, sent); err != nil {
		t.Fatalf("the message in flight: %v, want its acknowledgement", err)
	}
	p = nextOf[*codec.Publish](t, sc, 4)
	if string(p.Payload) != "3" {
		t.Fatalf("sent %q next, want the newest", p.Payload)
	}
	send(t, sc, 4, &codec.Puback{PacketID: p.PacketID})
	if err := resultOf(t, newer); err != nil {
		t.Fatal(err)
	}
}

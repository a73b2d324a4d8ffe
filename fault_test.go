package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// ledger records what a subscriber received, per topic, for the fault
// tests: every payload is "<n>", numbered from 0 by its publisher.
type ledger struct {
	mu   sync.Mutex
	seen map[string][]int // topic -> payload numbers in arrival order
}

func newLedger() *ledger { return &ledger{seen: make(map[string][]int)} }

// collect receives from c until want distinct messages per topic arrived.
// It may run on its own goroutine, so it reports with t.Errorf, not Fatal.
func (l *ledger) collect(t *testing.T, c *mqtt.Client, want map[string]int) {
	deadline := time.After(2 * wait)
	distinct := map[string]map[int]bool{}
	remaining := 0
	for _, n := range want {
		remaining += n
	}
	for remaining > 0 {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				t.Errorf("Messages closed with %d messages missing", remaining)
				return
			}
			n, err := strconv.Atoi(string(m.Payload))
			if err != nil {
				t.Errorf("payload %q on %q is not a number", m.Payload, m.Topic)
				continue
			}
			l.mu.Lock()
			l.seen[m.Topic] = append(l.seen[m.Topic], n)
			l.mu.Unlock()
			if distinct[m.Topic] == nil {
				distinct[m.Topic] = map[int]bool{}
			}
			if !distinct[m.Topic][n] {
				distinct[m.Topic][n] = true
				remaining--
			}
		case <-deadline:
			t.Errorf("%d messages never arrived (want %v)", remaining, want)
			return
		}
	}
}

// check verifies, per topic: nothing lost, nothing never published, first
// arrivals in publish order, and no duplicates where exactly-once holds.
func (l *ledger) check(t *testing.T, topic string, n int, exactlyOnce bool) (dups int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[int]bool{}
	last := -1
	for _, v := range l.seen[topic] {
		if v < 0 || v >= n {
			t.Errorf("%s: received %d, which was never published", topic, v)
			continue
		}
		if seen[v] {
			dups++
			continue
		}
		seen[v] = true
		if v < last {
			t.Errorf("%s: %d arrived after %d: order lost", topic, v, last)
		}
		last = v
	}
	if len(seen) != n {
		t.Errorf("%s: %d of %d messages arrived", topic, len(seen), n)
	}
	if exactlyOnce && dups > 0 {
		t.Errorf("%s: %d duplicates of exactly-once messages", topic, dups)
	}
	return dups
}

// publishAll publishes n numbered messages on topic with PublishAsync and
// returns a function that waits for every result.
func publishAll(t *testing.T, c *mqtt.Client, topic string, qos mqtt.QoS, n int) func() []error {
	results := make([]<-chan error, n)
	for i := range n {
		results[i] = c.PublishAsync(t.Context(), mqtt.Message{Topic: topic, Payload: []byte(strconv.Itoa(i)), QoS: qos})
	}
	return func() []error {
		var errs []error
		for i, r := range results {
			select {
			case err := <-r:
				if err != nil {
					errs = append(errs, fmt.Errorf("message %d: %w", i, err))
				}
			case <-time.After(2 * wait):
				t.Fatalf("%s: publish %d has no result", topic, i)
			}
		}
		return errs
	}
}

// The headline: a broker restarted mid-stream with well over a
// thousand QoS 1 and QoS 2 messages in flight loses nothing, duplicates no
// QoS 2 message, and keeps order per QoS.
func TestBrokerRestartMidStream(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			const n = 1500
			b := mqtttest.NewBroker(t)
			ctx := testCtx(t)
			sub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "restart-sub", Version: v.version, MaxPending: 4 * n})
			if err := sub.Subscribe(ctx, mqtt.Subscription{Filter: "restart/#", QoS: mqtt.ExactlyOnce}); err != nil {
				t.Fatal(err)
			}
			pub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "restart-pub", Version: v.version, MaxQueued: 2 * n})

			waitQ1 := publishAll(t, pub, "restart/q1", mqtt.AtLeastOnce, n)
			waitQ2 := publishAll(t, pub, "restart/q2", mqtt.ExactlyOnce, n)
			l := newLedger()
			collected := make(chan struct{})
			go func() {
				defer close(collected)
				l.collect(t, sub, map[string]int{"restart/q1": n, "restart/q2": n})
			}()
			restarts := 0
			for range 3 {
				if err := b.Restart(); err != nil {
					t.Fatal(err)
				}
				restarts++
				if err := b.WaitConnected(ctx, "restart-pub"); err != nil {
					t.Fatal(err)
				}
			}
			if errs := append(waitQ1(), waitQ2()...); len(errs) > 0 {
				t.Fatalf("%d publishes failed, first: %v", len(errs), errs[0])
			}
			<-collected
			d1 := l.check(t, "restart/q1", n, false)
			l.check(t, "restart/q2", n, true)
			t.Logf("%d restarts, %d QoS 1 + %d QoS 2 messages: 0 lost, %d QoS 1 duplicates, 0 QoS 2 duplicates", restarts, n, n, d1)
		})
	}
}

// Connections cut by the network, again and again, while messages flow.
func TestProxyCut(t *testing.T) {
	const n = 600
	b := mqtttest.NewBroker(t)
	p := mqtttest.NewProxy(t, b.Addr())
	ctx := testCtx(t)
	sub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "cut-sub"})
	if err := sub.Subscribe(ctx, mqtt.Subscription{Filter: "cut/#", QoS: mqtt.ExactlyOnce}); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, mqtt.Config{Servers: []string{p.URL()}, ClientID: "cut-pub", MaxQueued: 2 * n})
	waitQ1 := publishAll(t, pub, "cut/q1", mqtt.AtLeastOnce, n)
	waitQ2 := publishAll(t, pub, "cut/q2", mqtt.ExactlyOnce, n)
	l := newLedger()
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		l.collect(t, sub, map[string]int{"cut/q1": n, "cut/q2": n})
	}()
	cuts := 0
	for i := range 5 {
		// Cut once the publisher is back up and has sent something more.
		before := p.Stats().BytesUp
		if err := p.WaitStats(ctx, func(s mqtttest.ProxyStats) bool { return s.Active == 1 && s.BytesUp > before }); err != nil {
			t.Fatalf("cut %d: %v", i, err)
		}
		p.Cut()
		cuts++
	}
	if errs := append(waitQ1(), waitQ2()...); len(errs) > 0 {
		t.Fatalf("%d publishes failed, first: %v", len(errs), errs[0])
	}
	<-collected
	d1 := l.check(t, "cut/q1", n, false)
	l.check(t, "cut/q2", n, true)
	t.Logf("%d cuts (%d connections), %d QoS 1 + %d QoS 2: 0 lost, %d QoS 1 duplicates, 0 QoS 2 duplicates",
		cuts, p.Stats().Accepted, n, n, d1)
}

// Every byte forwarded one at a time, both ways: framing must not care.
func TestSplitWritesOneByte(t *testing.T) {
	const n = 200
	b := mqtttest.NewBroker(t)
	p := mqtttest.NewProxy(t, b.Addr())
	p.SplitWrites(1)
	ctx := testCtx(t)
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			c := dial(t, mqtt.Config{Servers: []string{p.URL()}, ClientID: "split-" + v.name, Version: v.version})
			if err := c.Subscribe(ctx, mqtt.Subscription{Filter: "split/" + v.name + "/#", QoS: mqtt.ExactlyOnce}); err != nil {
				t.Fatal(err)
			}
			waitQ1 := publishAll(t, c, "split/"+v.name+"/q1", mqtt.AtLeastOnce, n)
			waitQ2 := publishAll(t, c, "split/"+v.name+"/q2", mqtt.ExactlyOnce, n)
			l := newLedger()
			l.collect(t, c, map[string]int{"split/" + v.name + "/q1": n, "split/" + v.name + "/q2": n})
			if errs := append(waitQ1(), waitQ2()...); len(errs) > 0 {
				t.Fatalf("%d publishes failed, first: %v", len(errs), errs[0])
			}
			l.check(t, "split/"+v.name+"/q1", n, false)
			l.check(t, "split/"+v.name+"/q2", n, true)
		})
	}
}

// A link that silently stops carrying data is declared dead by keepalive,
// within about 1.5 keepalive intervals, and the client comes back.
func TestBlackholeDetectedByKeepalive(t *testing.T) {
	const keepAlive = time.Second
	b := mqtttest.NewBroker(t)
	p := mqtttest.NewProxy(t, b.Addr())
	c := dial(t, mqtt.Config{Servers: []string{p.URL()}, ClientID: "blackhole", KeepAlive: keepAlive})
	waitEvent(t, c, mqtt.Connected)
	p.Blackhole(true)
	start := time.Now()
	e := waitEvent(t, c, mqtt.ConnectionLost)
	took := time.Since(start)
	if !errors.Is(e.Err, mqtt.ErrKeepAliveTimeout) {
		t.Fatalf("ConnectionLost error = %v, want ErrKeepAliveTimeout", e.Err)
	}
	// The bound is generous for a loaded CI machine; the exact schedule
	// (PINGREQ at 1x, failure at 1.5x) is tested with synctest in conn.
	if took > 3*keepAlive {
		t.Errorf("black hole detected after %s, want about 1.5 x %s", took, keepAlive)
	}
	t.Logf("black hole detected after %s (keepalive %s, %.2fx)", took.Round(time.Millisecond), keepAlive, float64(took)/float64(keepAlive))
	p.Blackhole(false)
	waitEvent(t, c, mqtt.Connected)
	if err := c.Publish(testCtx(t), mqtt.Message{Topic: "after/blackhole", QoS: 1}); err != nil {
		t.Fatalf("Publish after the link came back: %v", err)
	}
}

// The button: a publish whose relevance window closes while the broker is
// down is withdrawn, and never sent, even once the broker is back.
func TestDeadlineWithdrawalWhileBrokerDown(t *testing.T) {
	b := mqtttest.NewBroker(t)
	ctx := testCtx(t)
	sub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "withdraw-sub"})
	if err := sub.Subscribe(ctx, mqtt.Subscription{Filter: "button/#", QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "withdraw-pub"})
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, pub, mqtt.ConnectionLost)
	press, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err := pub.Publish(press, mqtt.Message{Topic: "button/pressed", Payload: []byte("stale"), QoS: mqtt.AtLeastOnce})
	if !errors.Is(err, mqtt.ErrWithdrawn) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish while the broker is down = %v, want ErrWithdrawn wrapping DeadlineExceeded", err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, mqtt.Message{Topic: "button/pressed", Payload: []byte("fresh"), QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	// Same publisher, same QoS: had the stale one been sent, it would
	// arrive first.
	if m := receive(t, sub); string(m.Payload) != "fresh" {
		t.Fatalf("subscriber got %q, want only the fresh press", m.Payload)
	}
}

// The temperature sensor: a strategy that gives up stops the client, and
// everything says so.
func TestStrategyGivesUp(t *testing.T) {
	b := mqtttest.NewBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "gives-up",
		Backoff: backoff.MaxAttempts(backoff.Constant(time.Millisecond), 2)})
	if err := c.Subscribe(testCtx(t), mqtt.Subscription{Filter: "x"}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, c, mqtt.Connected)
	pending := c.PublishAsync(t.Context(), mqtt.Message{Topic: "queued", QoS: 1})
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, c, mqtt.GaveUp)
	select {
	case <-c.Done():
	case <-time.After(wait):
		t.Fatal("Done not closed after the strategy gave up")
	}
	if err := c.Err(); !errors.Is(err, mqtt.ErrGaveUp) || !errors.Is(e.Err, mqtt.ErrGaveUp) {
		t.Fatalf("Err = %v, event error %v, want ErrGaveUp", err, e.Err)
	}
	if err := <-pending; err != nil && !isClosedErr(err) {
		t.Fatalf("a publish pending at give-up got %v, want nil (it made it) or ErrClosed", err)
	}
	if err := c.Publish(testCtx(t), mqtt.Message{Topic: "t", QoS: 1}); !isClosedErr(err) {
		t.Fatalf("Publish after give-up = %v, want ErrClosed", err)
	}
	if _, ok := <-c.Messages(); ok {
		t.Fatal("Messages still open after give-up")
	}
}

// Dial against a server that refuses connections, with a strategy that
// never retries, fails at once and says why.
func TestDialGivesUpWhenNothingListens(t *testing.T) {
	b := mqtttest.NewBroker(t)
	url := b.URL()
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	_, err := mqtt.Dial(testCtx(t), mqtt.Config{Servers: []string{url}, ClientID: "never", Backoff: backoff.Never()})
	if !errors.Is(err, mqtt.ErrGaveUp) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("Dial = %v, want ErrGaveUp saying the connection was refused", err)
	}
}

// Dial's ctx bounds the first connection only.
func TestDialContextEnds(t *testing.T) {
	b := mqtttest.NewBroker(t)
	url := b.URL()
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := mqtt.Dial(ctx, mqtt.Config{Servers: []string{url}, ClientID: "dial-ctx", Backoff: fastRetry})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial = %v, want DeadlineExceeded", err)
	}
}

// A slow application does not make the client miss keepalives: several
// keepalive periods without reading Messages, while messages keep coming,
// and the connection stays up.
func TestSlowConsumerKeepsConnection(t *testing.T) {
	const keepAlive = time.Second
	b := mqtttest.NewBroker(t)
	ctx := testCtx(t)
	sub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "slow", KeepAlive: keepAlive})
	if err := sub.Subscribe(ctx, mqtt.Subscription{Filter: "slow/#", QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, sub, mqtt.Connected)
	pub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "slow-pub"})
	const n = 200
	wait := publishAll(t, pub, "slow/q1", mqtt.AtLeastOnce, n)
	// The application is busy for 3.5 keepalive periods: this wait is the
	// behaviour under test, not a guess at how long something takes.
	busy := time.NewTimer(3*keepAlive + keepAlive/2)
	<-busy.C
	if errs := wait(); len(errs) > 0 {
		t.Fatalf("publishes failed: %v", errs[0])
	}
	l := newLedger()
	l.collect(t, sub, map[string]int{"slow/q1": n})
	l.check(t, "slow/q1", n, false)
	for {
		select {
		case e := <-sub.Events():
			if e.Kind == mqtt.ConnectionLost || e.Kind == mqtt.Reconnecting {
				t.Fatalf("the slow consumer lost its connection: %v", e)
			}
			continue
		default:
		}
		break
	}
	if got := b.Accepted(); got != 2 {
		t.Fatalf("broker accepted %d connections, want 2 (no reconnect)", got)
	}
}

// Several servers: a failed connect moves on to the next one, and the
// Connected event says which server is in use.
func TestFailoverToNextServer(t *testing.T) {
	down := mqtttest.NewBroker(t)
	downURL := down.URL()
	if err := down.Stop(); err != nil {
		t.Fatal(err)
	}
	up := mqtttest.NewBroker(t)
	c := dial(t, mqtt.Config{Servers: []string{downURL, up.URL()}, ClientID: "failover"})
	if e := waitEvent(t, c, mqtt.Connected); e.Server != up.URL() {
		t.Fatalf("connected to %q, want the second server %q", e.Server, up.URL())
	}
	// The second one goes away and the first comes back: the client
	// follows.
	if err := down.Start(); err != nil {
		t.Fatal(err)
	}
	if err := up.Stop(); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, c, mqtt.Connected); e.Server != downURL {
		t.Fatalf("connected to %q, want the first server %q again", e.Server, downURL)
	}
	if err := c.Publish(testCtx(t), mqtt.Message{Topic: "t", QoS: 1}); err != nil {
		t.Fatal(err)
	}
}

package failover

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// Broker is what a history needs of a broker: mqtttest.Broker (mochi) and
// the interoperability tests' Mosquitto have it.
type Broker interface {
	Addr() string // host:port, for the client's proxy
	URL() string  // for the watcher, which connects directly
	// Restart stops the broker and starts it again with the sessions it had.
	Restart() error
}

// wait bounds every wait of a history for something that must happen.
const wait = 20 * time.Second

// testCtx is a context that ends with the test, and after wait.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	t.Cleanup(cancel)
	return ctx
}

// dial connects a client with cfg; t's cleanup closes it.
func dial(t *testing.T, cfg mqtt.Config) *mqtt.Client {
	t.Helper()
	c, err := mqtt.Dial(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", cfg.ClientID, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// side is one broker of a failover history: the broker, the proxy
// the client reaches it through, and a watcher connected to it directly.
type side struct {
	name    string
	b       Broker
	p       *mqtttest.Proxy
	watcher *mqtt.Client
	seen    *tagSet // what the watcher received from the client
}

// tagSet is a set of message tags (payloads) that goroutines add to.
type tagSet struct {
	mu     sync.Mutex
	tags   map[string]int
	change chan struct{} // closed and replaced at each add
}

func newTagSet() *tagSet { return &tagSet{tags: map[string]int{}, change: make(chan struct{})} }

func (s *tagSet) add(tag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tags[tag]++
	close(s.change)
	s.change = make(chan struct{})
}

// collect adds the payload of every message from ch until it is closed.
func (s *tagSet) collect(ch <-chan mqtt.Message) {
	for m := range ch {
		s.add(string(m.Payload))
	}
}

// count returns how many times tag was added.
func (s *tagSet) count(tag string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tags[tag]
}

// waitMore waits until tag was added more than n times; it reports false if
// ctx ended first.
func (s *tagSet) waitMore(ctx context.Context, tag string, n int) bool {
	for {
		s.mu.Lock()
		more, change := s.tags[tag] > n, s.change
		s.mu.Unlock()
		if more {
			return true
		}
		select {
		case <-change:
		case <-ctx.Done():
			return false
		}
	}
}

// waitAll waits until every tag of want is in s, or ctx ends; it returns
// the tags still missing.
func (s *tagSet) waitAll(ctx context.Context, want []string) []string {
	for {
		s.mu.Lock()
		var missing []string
		for _, tag := range want {
			if s.tags[tag] == 0 {
				missing = append(missing, tag)
			}
		}
		change := s.change
		s.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-change:
		case <-ctx.Done():
			return missing
		}
	}
}

// waitInEither waits until every tag of want is in a or b, or ctx ends; it
// returns the tags in neither.
func waitInEither(ctx context.Context, a, b *tagSet, want []string) []string {
	for {
		a.mu.Lock()
		ac := a.change
		a.mu.Unlock()
		b.mu.Lock()
		bc := b.change
		b.mu.Unlock()
		var missing []string
		for _, tag := range want {
			if a.count(tag) == 0 && b.count(tag) == 0 {
				missing = append(missing, tag)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ac:
		case <-bc:
		case <-ctx.Done():
			return missing
		}
	}
}

// Histories plays n random histories (Run) as subtests, against brokers
// newBroker starts, alternately at MQTT 3.1.1 and 5. Each draws from its
// own generator, seeded with seed (0: the clock's, logged) and its number,
// so that a failing one replays alone (-run and the same seed); with a
// given seed and verbose, each logs the client's events.
func Histories(t *testing.T, n int, seed uint64, newBroker func(t *testing.T) Broker, verbose bool) {
	replay := seed != 0
	if !replay {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay: -failover.seed=%d)", seed, seed)
	for h := range n {
		version := byte(4 + h%2)
		t.Run(fmt.Sprintf("history%d/v%d", h, version), func(t *testing.T) {
			Run(t, rand.New(rand.NewPCG(seed, uint64(h))), version, newBroker, verbose && replay)
		})
	}
}

// Run plays one random history, drawn from rng, at protocol level version,
// between two brokers that newBroker starts (each closed by t's cleanup),
// and fails t where a promise the package doc names does not hold.
// verbose logs the client's events.
func Run(t *testing.T, rng *rand.Rand, version byte, newBroker func(t *testing.T) Broker, verbose bool) {
	ctx := testCtx(t)
	fast := backoff.Constant(5 * time.Millisecond)
	var sides [2]*side
	for i, name := range []string{"a", "b"} {
		b := newBroker(t)
		s := &side{name: name, b: b, p: mqtttest.NewProxy(t, b.Addr()), seen: newTagSet()}
		s.watcher = dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "watcher-" + name, Version: version, Backoff: fast})
		if err := s.watcher.Subscribe(ctx, mqtt.Subscription{Filter: "out/#", QoS: mqtt.ExactlyOnce}); err != nil {
			t.Fatal(err)
		}
		go s.seen.collect(s.watcher.Messages())
		sides[i] = s
	}
	c := dial(t, mqtt.Config{Servers: []string{sides[0].p.URL(), sides[1].p.URL()}, ClientID: "failover", Version: version, Backoff: fast})
	received := newTagSet()
	var evMu sync.Mutex
	var protocolErrors, events []string
	connected := newTagSet() // the servers of Connected events
	go func() {
		for e := range c.Events() {
			evMu.Lock()
			events = append(events, time.Now().Format("05.000 ")+e.String())
			evMu.Unlock()
			var pe *mqtt.ProtocolError
			if errors.As(e.Err, &pe) {
				evMu.Lock()
				protocolErrors = append(protocolErrors, e.String())
				evMu.Unlock()
			}
			if e.Kind == mqtt.Connected {
				connected.add(e.Server)
			}
		}
	}()
	go received.collect(c.Messages())
	if err := c.Subscribe(ctx, mqtt.Subscription{Filter: "in/#", QoS: mqtt.ExactlyOnce}); err != nil {
		t.Fatal(err)
	}
	// moveTo has the client connect to sides[to] (again, if it is there):
	// the other side refuses while every connection is cut.
	moveTo := func(to int) {
		t.Helper()
		from := sides[1-to]
		n := connected.count(sides[to].p.URL())
		from.p.Refuse(true)
		deadline := time.Now().Add(wait)
		moved := false
		for !moved && time.Now().Before(deadline) {
			// A connection the proxy accepted a moment ago may escape a
			// cut (see Proxy.Cut): cut again until the client is there.
			from.p.Cut()
			sides[to].p.Cut()
			wctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
			moved = connected.waitMore(wctx, sides[to].p.URL(), n)
			cancel()
		}
		if !moved {
			evMu.Lock()
			defer evMu.Unlock()
			t.Fatalf("the client did not connect to %s; %+v; its events:\n%s", sides[to].name, c.Stats().Connections, strings.Join(events, "\n"))
		}
		// Its SUBACK comes after that of what was subscribed again.
		if err := c.Subscribe(testCtx(t), mqtt.Subscription{Filter: "barrier", QoS: mqtt.AtLeastOnce}); err != nil {
			evMu.Lock()
			defer evMu.Unlock()
			t.Fatalf("subscribe at %s: %v; %+v; its events:\n%s", sides[to].name, err, c.Stats().Connections, strings.Join(events, "\n"))
		}
		from.p.Refuse(false)
	}
	// The client's session at b too, subscribed: a stay at b.
	moveTo(1)
	moveTo(0)

	type sent struct {
		tag string
		qos mqtt.QoS
		res <-chan error
	}
	var out []sent
	var in [2][]sent
	faults := 0
	steps := 30 + rng.IntN(30)
	for step := range steps {
		switch k := rng.IntN(10); {
		case k < 4:
			qos := mqtt.QoS(rng.IntN(3))
			tag := fmt.Sprintf("out-%d", step)
			out = append(out, sent{tag, qos, c.PublishAsync(ctx, mqtt.Message{Topic: "out/" + tag, Payload: []byte(tag), QoS: qos})})
		case k < 6:
			i := rng.IntN(2)
			qos := mqtt.QoS(1 + rng.IntN(2))
			tag := fmt.Sprintf("in-%s-%d", sides[i].name, step)
			in[i] = append(in[i], sent{tag, qos, sides[i].watcher.PublishAsync(ctx, mqtt.Message{Topic: "in/" + tag, Payload: []byte(tag), QoS: qos})})
		case k < 7:
			faults++
			sides[rng.IntN(2)].p.Cut()
		case k < 8:
			faults++
			s := sides[rng.IntN(2)]
			on := rng.IntN(2) == 0
			s.p.Refuse(on)
			if on {
				s.p.Cut()
			}
		case k < 9:
			faults++
			if err := sides[rng.IntN(2)].b.Restart(); err != nil {
				t.Fatal(err)
			}
		default:
			select {
			case <-time.After(time.Duration(rng.IntN(3000)) * time.Microsecond): // an instant, not an event
			case <-ctx.Done():
			}
		}
	}
	for _, s := range sides {
		s.p.Refuse(false)
	}

	// Every publish has its result; those acknowledged reach a watcher.
	var acked []string
	qosOf := map[string]mqtt.QoS{}
	for _, o := range out {
		select {
		case err := <-o.res:
			if err == nil && o.qos > mqtt.AtMostOnce {
				acked = append(acked, o.tag)
				qosOf[o.tag] = o.qos
			}
			if err != nil && !errors.Is(err, mqtt.ErrOutcomeUnknown) {
				t.Errorf("publish %s (QoS %d): %v", o.tag, o.qos, err)
			}
		case <-time.After(wait):
			t.Fatalf("publish %s (QoS %d) has no result", o.tag, o.qos)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if missing := waitInEither(wctx, sides[0].seen, sides[1].seen, acked); missing != nil {
		var qos []string
		for _, tag := range missing {
			qos = append(qos, fmt.Sprintf("%s (QoS %d)", tag, qosOf[tag]))
		}
		evMu.Lock()
		t.Errorf("acknowledged and delivered to no watcher: %s; the client's events:\n%s", strings.Join(qos, " "), strings.Join(events, "\n"))
		evMu.Unlock()
	}
	// Every message a broker took for the client reaches it once the
	// client has been back there.
	for i := range 2 {
		var want []string
		for _, o := range in[i] {
			if err := <-o.res; err != nil {
				t.Fatalf("watcher %s: publish %s: %v", sides[i].name, o.tag, err)
			}
			want = append(want, o.tag)
		}
		moveTo(i)
		if missing := received.waitAll(wctx, want); missing != nil {
			t.Errorf("taken by broker %s and never delivered: %s", sides[i].name, strings.Join(missing, " "))
		}
	}
	evMu.Lock()
	defer evMu.Unlock()
	if len(protocolErrors) > 0 {
		t.Errorf("protocol errors, from brokers that keep the protocol:\n%s", strings.Join(protocolErrors, "\n"))
	}
	if n := c.Stats().Connections.Attempts; n > uint64(20+10*faults) {
		t.Errorf("%d connection attempts for %d faults: a reconnect loop", n, faults)
	}
	if verbose {
		t.Logf("events:\n%s", strings.Join(events, "\n"))
	}
	t.Logf("%d steps, %d faults, %d publishes (%d acknowledged at QoS 1/2), %d+%d messages to the client, %d connection attempts",
		steps, faults, len(out), len(acked), len(in[0]), len(in[1]), c.Stats().Connections.Attempts)
}

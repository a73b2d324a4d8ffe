package mqtt_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/mqtttest"
)

var (
	stopsRounds = flag.Int("stops.rounds", 200, "TestStopAtAnyInstant: rounds")
	stopsSeed   = flag.Uint64("stops.seed", 0, "TestStopAtAnyInstant: seed (0: from the clock, printed)")
)

// A client stopped at a random instant, on real sockets: with publishes of
// every QoS in flight, over a link with or without latency, while it
// reconnects after the proxy cut it or the broker dropped it (with a
// backoff of 0 or 1 ms, so the stop often lands in the middle of a
// connect), while it makes its first connection (Start), or with the link
// gone silent, by Close or by Disconnect with a
// ctx of random length. However it lands: the stop returns, every publish
// has exactly one result, Messages and Events are closed, no goroutine is
// left (see TestMain), every QoS 1/2 publish that returned nil reaches a
// subscriber (QoS 2 once, unless its client started a new session on
// every connection), and once a DISCONNECT was written the client dials
// nothing more (a new connection after it took the session and was
// cut without DISCONNECT, and the broker published the Will; see
// TestNoReconnectAfterOwnStop). A client that met no fault and whose
// Disconnect, with a ctx that does not end, returned nil has no Will
// published (a Close right after publishes did publish it, nearly every
// time; see TestStopRightAfterPublishingPublishesNoWill; so did a stop
// while the CONNACK was on its way, see
// TestStopWhileConnackPendingPublishesNoWill). The fake-time
// model cannot see these seams: its clock stands still while a stop runs.
// Replay a failure with -stops.seed.
func TestStopAtAnyInstant(t *testing.T) {
	seed := *stopsSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay: -stops.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	b := mqtttest.NewBroker(t)
	p := mqtttest.NewProxy(t, b.Addr())
	ctx := testCtx(t)
	// The watcher gets the Wills and every message the rounds publish.
	watcher := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "watcher"})
	if err := watcher.Subscribe(ctx, mqtt.Subscription{Filter: "will/#", QoS: mqtt.AtLeastOnce},
		mqtt.Subscription{Filter: "t/#", QoS: mqtt.ExactlyOnce}); err != nil {
		t.Fatal(err)
	}
	// It reads all along: a watcher behind by MaxPending messages would
	// stop reading, and hold the broker back.
	type seen struct {
		wills    []string
		messages map[string]int // by topic: one topic per publish
	}
	watched := make(chan seen, 1)
	go func() {
		got := seen{messages: make(map[string]int)}
		for m := range watcher.Messages() {
			if m.Topic == "will/end" {
				break
			}
			if strings.HasPrefix(m.Topic, "will/") {
				got.wills = append(got.wills, m.Topic)
			} else {
				got.messages[m.Topic]++
			}
		}
		watched <- got
	}()
	noWill := make(map[string]bool) // Will topics of the clients that said goodbye cleanly
	var acked []publishRec          // QoS 1/2 publishes whose result was nil
	for round := range *stopsRounds {
		ok, clean, a := stopRound(t, rng, b, p, round)
		if !ok {
			t.Fatalf("round %d failed (seed %d)", round, seed)
		}
		if clean {
			noWill[fmt.Sprint("will/", round)] = true
		}
		acked = append(acked, a...)
	}
	// The broker publishes a Will as it lets a client go, before this.
	ctx = testCtx(t) // the rounds may have taken longer than the first
	if err := watcher.Publish(ctx, mqtt.Message{Topic: "will/end", QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	var got seen
	select {
	case got = <-watched:
	case <-ctx.Done():
		t.Fatal("the watcher did not get its own message")
	}
	for _, topic := range got.wills {
		if noWill[topic] {
			t.Errorf("the Will on %s was published, of a client that met no fault and said goodbye with Disconnect (seed %d)", topic, seed)
		}
	}
	// Nothing acknowledged is lost, and QoS 2 arrives once.
	delivered := 0
	for _, a := range acked {
		switch n := got.messages[a.topic]; {
		case n == 0:
			t.Errorf("%s (QoS %d) was acknowledged (its publish returned nil) and never delivered (seed %d)", a.topic, a.qos, seed)
		case n > 1 && a.qos == mqtt.ExactlyOnce && !a.newSessions:
			t.Errorf("%s (QoS 2) was delivered %d times (seed %d)", a.topic, n, seed)
		default:
			delivered++
		}
	}
	t.Logf("%d rounds, %d clean goodbyes, %d Wills published (after faults, or stops that were not clean); %d of %d acknowledged QoS 1/2 publishes delivered as promised",
		*stopsRounds, len(noWill), len(got.wills), delivered, len(acked))
}

// publishRec is a publish of a round: its topic (its own) and QoS, and
// whether its client started a new session on every connection
// (CleanStart). Such a client sends a QoS 2 message that a cut left
// without PUBREC again, as a new message on the new session (DESIGN.md:
// what the client owes goes again as new when the broker has no session):
// a broker that took the first copy delivers it twice.
type publishRec struct {
	topic       string
	qos         mqtt.QoS
	newSessions bool
}

// stopRound runs one client to its stop; it reports false after a failure,
// clean when the client met no fault and its Disconnect, with a ctx that
// does not end, returned nil, and the QoS 1/2 publishes that returned nil.
func stopRound(t *testing.T, rng *rand.Rand, b *mqtttest.Broker, p *mqtttest.Proxy, round int) (ok, clean bool, acked []publishRec) {
	t.Helper()
	ctx := testCtx(t)
	version := []byte{4, 5}[rng.IntN(2)]
	spy := &dialSpy{}
	cleanStart := rng.IntN(2) == 0
	cfg := mqtt.Config{
		Servers:    []string{p.URL()},
		ClientID:   fmt.Sprint("stop-", round),
		Version:    version,
		CleanStart: cleanStart,
		Backoff:    backoff.Constant(time.Duration(rng.IntN(2)) * time.Millisecond),
		Will:       &mqtt.Message{Topic: fmt.Sprint("will/", round), Payload: []byte("will"), QoS: mqtt.AtLeastOnce},
		Dial:       spy.dial,
	}
	if rng.IntN(2) == 0 {
		p.Latency(time.Duration(1+rng.IntN(3)) * time.Millisecond) // a slower link, for this round
		defer p.Latency(0)
	}
	// 1 in 4 the client starts in the background (Start), so the stop
	// may land while it connects, its CONNACK on the way; half of those
	// (quick) stop at once, with nothing queued, no fault.
	start := func(ctx context.Context, cfg mqtt.Config) (*mqtt.Client, error) { return mqtt.Start(cfg) }
	quick := false
	if rng.IntN(4) != 0 {
		start = mqtt.Dial
	} else {
		quick = rng.IntN(2) == 0
	}
	c, err := start(ctx, cfg)
	if err != nil {
		t.Errorf("Dial: %v", err)
		return false, false, nil
	}
	if !quick && rng.IntN(2) == 0 {
		if err := c.Subscribe(ctx, mqtt.Subscription{Filter: fmt.Sprint("t/", round, "/#"), QoS: mqtt.QoS(rng.IntN(3))}); err != nil {
			t.Errorf("Subscribe: %v", err)
			return false, false, nil
		}
	}
	var results []<-chan error
	var pubs []publishRec
	publish := func(n int) {
		if quick {
			return
		}
		for range n {
			pctx := context.Background()
			if rng.IntN(4) == 0 {
				var cancel context.CancelFunc
				pctx, cancel = context.WithTimeout(ctx, time.Duration(rng.IntN(3000))*time.Microsecond)
				defer cancel() // the round's results are read before it returns
			}
			pub := publishRec{topic: fmt.Sprint("t/", round, "/", len(pubs)), qos: mqtt.QoS(rng.IntN(3)), newSessions: cleanStart}
			pubs = append(pubs, pub)
			results = append(results, c.PublishAsync(pctx, mqtt.Message{
				Topic: pub.topic, Payload: bytes.Repeat([]byte("x"), rng.IntN(200)), QoS: pub.qos}))
		}
	}
	publish(rng.IntN(30))
	// 1 in 5 a cut, 1 in 5 a kick, 1 in 20 a silent link (each costs
	// the stop its whole wait), else no fault.
	fault := 0
	switch n := rng.IntN(20); {
	case n < 4:
		fault = 1
	case n < 8:
		fault = 2
	case n == 8:
		fault = 3
	}
	if quick {
		fault = 0
	}
	switch fault {
	case 1:
		p.Cut()
	case 2:
		b.Kick()
	case 3:
		// The link goes silent: nothing is answered, the stop included.
		p.Blackhole(true)
		defer p.Blackhole(false)
	}
	publish(rng.IntN(10))

	if quick {
		// The stop's instant: once the broker has taken the CONNECT
		// (the CONNACK on its way, over a link with latency), or a
		// random one in the first few milliseconds.
		if rng.IntN(2) == 0 {
			if err := b.WaitConnected(ctx, cfg.ClientID); err != nil {
				t.Errorf("round %d: %v", round, err)
			}
		} else {
			<-time.After(time.Duration(rng.IntN(4000)) * time.Microsecond)
		}
	}
	graceful := rng.IntN(2) == 0
	if graceful {
		dctx, patient := ctx, rng.IntN(2) == 0 && fault != 3
		if !patient {
			var cancel context.CancelFunc
			dctx, cancel = context.WithTimeout(ctx, time.Duration(rng.IntN(50))*time.Millisecond)
			defer cancel()
		}
		// A ctx that ends may cut the wait for the broker's close short,
		// even when Disconnect returns nil.
		clean = c.Disconnect(dctx) == nil && fault == 0 && patient
	} else {
		c.Close()
	}
	select {
	case <-c.Done():
	default:
		t.Errorf("round %d: Done is open after the stop returned", round)
		return false, false, nil
	}
	ok = true
	for i, res := range results {
		select {
		case err := <-res:
			if err == nil && pubs[i].qos > mqtt.AtMostOnce {
				acked = append(acked, pubs[i])
			}
		default:
			t.Errorf("round %d: publish %d has no result after the stop", round, i)
			ok = false
			continue
		}
		select {
		case err := <-res:
			t.Errorf("round %d: publish %d has a second result: %v", round, i, err)
			ok = false
		default:
		}
	}
	for range c.Messages() {
	}
	for range c.Events() {
	}
	if n := spy.dialsAfterGoodbye.Load(); n > 0 {
		t.Errorf("round %d (graceful %v, fault %d): %d connections dialed after a DISCONNECT was written", round, graceful, fault, n)
		ok = false
	}
	return ok, clean, acked
}

// dialSpy is a Config.Dial that notes whether the client dials after it
// wrote a DISCONNECT on any of its connections.
type dialSpy struct {
	saidGoodbye       atomic.Bool
	dialsAfterGoodbye atomic.Int64
}

func (s *dialSpy) dial(ctx context.Context, server string) (net.Conn, error) {
	if s.saidGoodbye.Load() {
		s.dialsAfterGoodbye.Add(1)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(server, "tcp://"))
	if err != nil {
		return nil, err
	}
	return &spiedConn{TCPConn: nc.(*net.TCPConn), spy: s}, nil
}

// spiedConn sets its spy's saidGoodbye once a write that ends with a
// DISCONNECT (E0 00; the payloads here are all 'x') has returned.
type spiedConn struct {
	*net.TCPConn
	spy  *dialSpy
	once sync.Once
}

func (c *spiedConn) Write(b []byte) (int, error) {
	n, err := c.TCPConn.Write(b)
	if n == len(b) && bytes.HasSuffix(b, []byte{0xE0, 0x00}) {
		c.once.Do(func() { c.spy.saidGoodbye.Store(true) })
	}
	return n, err
}

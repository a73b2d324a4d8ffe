package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// A loop of synchronous publishes reads its own acknowledgements (the
// connection lends its socket to the caller, see conn.Await), with a ctx
// that cannot end and with one that can (a read deadline would interrupt
// the read). Around it everything else still arrives: messages for the
// client's subscription between and during the calls, the SUBACK of a
// Subscribe made from another goroutine, the answers of publishes made
// alongside with PublishAsync, and the loop's own acknowledgements after
// the broker drops the connection while the caller reads.
func TestSynchronousPublisherStillReadsEverythingElse(t *testing.T) {
	for _, tc := range []struct {
		v   byte
		ctx string
	}{{4, "background"}, {5, "background"}, {4, "cancelable"}, {5, "cancelable"}} {
		v := tc.v
		t.Run(fmt.Sprintf("v%d/%s", v, tc.ctx), func(t *testing.T) {
			callCtx := context.Background()
			if tc.ctx == "cancelable" {
				callCtx = t.Context() // can end, has no deadline
			}
			b := mqtttest.NewBroker(t)
			c := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "lender", Version: v})
			other := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "other", Version: v})
			ctx := testCtx(t)
			if err := c.Subscribe(ctx, mqtt.Subscription{Filter: "in/#", QoS: mqtt.AtLeastOnce}); err != nil {
				t.Fatal(err)
			}
			const calls, every = 400, 40
			var async []<-chan error
			subscribed := make(chan error, calls/every)
			for i := range calls {
				qos := mqtt.QoS(1 + i%2)
				if err := c.Publish(callCtx, mqtt.Message{Topic: "out", Payload: []byte("x"), QoS: qos}); err != nil {
					t.Fatalf("publish %d: %v", i, err)
				}
				if i%every != every-1 {
					continue
				}
				// A message for the subscription, a Subscribe from another
				// goroutine, and a publish whose result the loop does not
				// wait for, every 40 calls.
				if err := other.Publish(ctx, mqtt.Message{Topic: fmt.Sprintf("in/%d", i), Payload: []byte("m"), QoS: mqtt.AtLeastOnce}); err != nil {
					t.Fatal(err)
				}
				go func() {
					subscribed <- c.Subscribe(ctx, mqtt.Subscription{Filter: fmt.Sprintf("more/%d", i), QoS: mqtt.AtLeastOnce})
				}()
				async = append(async, c.PublishAsync(ctx, mqtt.Message{Topic: "out", Payload: []byte("a"), QoS: mqtt.AtLeastOnce}))
				if i == calls/2-1 {
					b.Kick() // the next calls meet a dropped connection
				}
			}
			for range calls / every {
				receive(t, c)
			}
			for i := range calls / every {
				if err := <-subscribed; err != nil {
					t.Fatalf("Subscribe %d: %v", i, err)
				}
				if err := <-async[i]; err != nil {
					t.Fatalf("PublishAsync %d: %v", i, err)
				}
			}
			if s := c.Stats(); s.Inflight != 0 || s.Queued != 0 {
				t.Fatalf("Stats: %d in flight, %d queued after every publish ended", s.Inflight, s.Queued)
			}
		})
	}
}

// A synchronous publish whose ctx ends while the broker has not answered
// returns at once with ErrOutcomeUnknown, also when it was reading the
// socket itself: the read is interrupted, not the connection, whose late
// PUBACK the reader then reads, and the next publish goes on the same
// connection.
func TestPublishWhoseCtxEndsWhileItReadsReturns(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			sb := mqtttest.NewScriptedBroker(t)
			c := dial(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "interrupted", Version: v})
			sc := scripted(t, sb)
			msg := mqtt.Message{Topic: "out", Payload: []byte("x"), QoS: mqtt.AtLeastOnce}
			acked := func(ctx context.Context) {
				t.Helper()
				done := make(chan error, 1)
				go func() { done <- c.Publish(ctx, msg) }()
				p := nextOf[*codec.Publish](t, sc, v)
				send(t, sc, v, &codec.Puback{PacketID: p.PacketID})
				if err := <-done; err != nil {
					t.Fatalf("publish: %v", err)
				}
			}
			// The first acknowledgement makes the reader's state, the
			// second call asks for the socket: lent from then on.
			acked(t.Context())
			acked(t.Context())
			for i := range 5 {
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() { done <- c.Publish(ctx, msg) }()
				p := nextOf[*codec.Publish](t, sc, v)
				cancel()
				select {
				case err := <-done:
					if !errors.Is(err, mqtt.ErrOutcomeUnknown) || !errors.Is(err, context.Canceled) {
						t.Fatalf("call %d: %v, want ErrOutcomeUnknown and context.Canceled", i, err)
					}
				case <-time.After(wait):
					t.Fatalf("call %d: Publish did not return after its ctx ended", i)
				}
				send(t, sc, v, &codec.Puback{PacketID: p.PacketID}) // late: the session completes the flow
				acked(t.Context())                                  // the socket is lent again after this one
			}
			if s := c.Stats(); s.Connections.Succeeded != 1 {
				t.Fatalf("%d connections, want 1: an interrupted read failed the connection", s.Connections.Succeeded)
			}
			if s := c.Stats(); s.Inflight != 0 {
				t.Fatalf("%d in flight after every PUBACK came", s.Inflight)
			}
		})
	}
}

// Synchronous publishes in a tight loop, each reading its own
// acknowledgement when the connection lends it the socket, through a
// proxy that cuts the connection, splits its writes into single bytes and
// swallows what passes (a black hole, ended by a cut) at random moments;
// a third of the calls with a ctx that cannot end, a third with one that
// can, a third with one that ends a few microseconds in. Every call
// returns; every call with a ctx that cannot end succeeds; every call that
// returned nil was delivered, a QoS 2 one once; a call whose ctx ended
// reports that (or nil). The seed is logged; a failing one goes into
// syncFaultSeeds.
func TestSynchronousPublishesThroughFaults(t *testing.T) {
	seeds := append(slices.Clone(syncFaultSeeds), uint64(time.Now().UnixNano()))
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { syncPublishesThroughFaults(t, seed) })
	}
}

// syncFaultSeeds are the seeds of TestSynchronousPublishesThroughFaults
// that found something, run on every test run.
var syncFaultSeeds = []uint64{}

func syncPublishesThroughFaults(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	faultRng := rand.New(rand.NewPCG(seed, 2))
	b := mqtttest.NewBroker(t)
	p := mqtttest.NewProxy(t, b.Addr())
	ctx := testCtx(t)
	sub := dial(t, mqtt.Config{Servers: []string{b.URL()}, ClientID: "sync-faults-sub"})
	if err := sub.Subscribe(ctx, mqtt.Subscription{Filter: "faults/#", QoS: mqtt.ExactlyOnce}); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, mqtt.Config{Servers: []string{p.URL()}, ClientID: "sync-faults-pub", KeepAlive: time.Second})

	stop := make(chan struct{})
	faults := make(chan string, 1)
	go func() {
		var log []string
		tick := time.NewTicker(15 * time.Millisecond)
		defer tick.Stop()
		hole := false
		for {
			select {
			case <-stop:
				p.SplitWrites(0)
				p.Blackhole(false)
				faults <- strings.Join(log, " ")
				return
			case <-tick.C:
			}
			if hole { // a black hole lasts one tick, then the link is cut
				p.Blackhole(false)
				p.Cut()
				hole = false
				log = append(log, "hole+cut")
				continue
			}
			switch faultRng.IntN(8) {
			case 0, 1:
				p.Cut()
				log = append(log, "cut")
			case 2:
				p.SplitWrites(1)
				log = append(log, "split")
			case 3:
				p.SplitWrites(0)
				log = append(log, "whole")
			case 4:
				p.Blackhole(true)
				hole = true
			}
		}
	}()

	const calls = 3000
	type call struct {
		qos   mqtt.QoS
		ctx   string
		err   error
		found int
	}
	made := make([]call, calls)
	for i := range calls {
		c := &made[i]
		c.qos = mqtt.QoS(1 + i%2)
		callCtx, cancel := context.Background(), context.CancelFunc(func() {})
		switch rng.IntN(3) {
		case 0:
			c.ctx = "background"
		case 1:
			c.ctx = "cancelable"
			callCtx, cancel = context.WithCancel(context.Background())
		case 2:
			c.ctx = "cancelled"
			callCtx, cancel = context.WithCancel(context.Background())
			time.AfterFunc(time.Duration(rng.IntN(200))*time.Microsecond, cancel)
		}
		c.err = pub.Publish(callCtx, mqtt.Message{Topic: fmt.Sprintf("faults/q%d", c.qos), Payload: []byte(strconv.Itoa(i)), QoS: c.qos})
		cancel()
		switch {
		case c.err == nil:
		case c.ctx == "cancelled" && errors.Is(c.err, context.Canceled) &&
			(errors.Is(c.err, mqtt.ErrOutcomeUnknown) || errors.Is(c.err, mqtt.ErrWithdrawn)):
		default:
			t.Fatalf("call %d (QoS %d, ctx %s): %v", i, c.qos, c.ctx, c.err)
		}
	}
	close(stop)
	log := <-faults

	// Every call that returned nil arrives; then one more, published
	// after the faults, whose arrival at QoS 2 follows every earlier QoS
	// 2 message of the publisher's.
	if err := pub.Publish(ctx, mqtt.Message{Topic: "faults/q2", Payload: []byte("-1"), QoS: mqtt.ExactlyOnce}); err != nil {
		t.Fatalf("the last publish: %v", err)
	}
	missing := 0
	for i := range made {
		if made[i].err == nil {
			missing++
		}
	}
	last := false
	deadline := time.After(wait)
	for missing > 0 || !last {
		select {
		case m := <-sub.Messages():
			n, err := strconv.Atoi(string(m.Payload))
			if err != nil || n < -1 || n >= calls {
				t.Fatalf("received %q on %s, never published", m.Payload, m.Topic)
			}
			if n == -1 {
				last = true
				continue
			}
			c := &made[n]
			c.found++
			if c.found == 1 && c.err == nil {
				missing--
			}
			if c.qos == mqtt.ExactlyOnce && c.found > 1 {
				t.Fatalf("QoS 2 message %d delivered %d times", n, c.found)
			}
		case <-deadline:
			t.Fatalf("%d acknowledged messages never arrived (faults: %s)", missing, log)
		}
	}
	counts := map[string]int{}
	for _, c := range made {
		counts[c.ctx+"/"+map[bool]string{true: "ok", false: "ended"}[c.err == nil]]++
	}
	t.Logf("%d calls %v, %d connections; faults: %s", calls, counts, p.Stats().Accepted, log)
}

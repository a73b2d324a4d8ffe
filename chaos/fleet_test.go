package chaos_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
)

const (
	// tick is how often each stream publishes: 20 messages a second, 220
	// for the eleven streams.
	tick = 50 * time.Millisecond
	// maxOutstanding bounds the publishes of one stream without a result
	// yet; the stream waits when it is reached.
	maxOutstanding = 200
	// keepAlive is short so that a black hole is noticed in 1.5 s.
	keepAlive = time.Second
)

// clientConfig is what every client of the suite shares: a persistent
// session, a short keepalive, a fast jittered backoff, and the defaults
// for the rest, the in-flight window included.
func clientConfig(server, id string, version byte) mqtt.Config {
	return mqtt.Config{
		Servers:        []string{server},
		ClientID:       id,
		Version:        version,
		KeepAlive:      keepAlive,
		ConnectTimeout: 2 * time.Second,
		Backoff:        backoff.Exponential{Initial: 20 * time.Millisecond, Max: 500 * time.Millisecond},
	}
}

// plan is the suite's fleet: which publishers publish which streams, which
// subscribers listen. Odd publishers speak MQTT 5, even ones 3.1.1.
type plan struct {
	publishers []string
	versions   map[string]byte
	streams    []stream
	subs       []string
}

func newPlan() plan {
	p := plan{versions: map[string]byte{}}
	for i := range 3 {
		id := fmt.Sprintf("pub-%d", i)
		p.publishers = append(p.publishers, id)
		p.versions[id] = byte(4 + i%2)
		for q := mqtt.AtMostOnce; q <= mqtt.ExactlyOnce; q++ {
			p.streams = append(p.streams, stream{publisher: id, topic: fmt.Sprintf("chaos/%s/q%d", id, q), qos: q})
		}
	}
	// The button: each press matters for a moment, then is withdrawn.
	p.publishers = append(p.publishers, "button")
	p.versions["button"] = 5
	for q := mqtt.AtLeastOnce; q <= mqtt.ExactlyOnce; q++ {
		p.streams = append(p.streams, stream{publisher: "button", topic: fmt.Sprintf("chaos/button/q%d", q), qos: q, relevance: true})
	}
	for i := range 2 {
		id := fmt.Sprintf("sub-%d", i)
		p.subs = append(p.subs, id)
		p.versions[id] = byte(4 + i%2)
	}
	return p
}

// counters count a client's connections.
type counters struct {
	connects, sessionLost atomic.Int64
}

// watch counts c's events until its Events channel closes.
func watch(c *mqtt.Client, n *counters, wg *sync.WaitGroup) {
	wg.Go(func() {
		for e := range c.Events() {
			switch e.Kind {
			case mqtt.Connected:
				n.connects.Add(1)
			case mqtt.SessionLost:
				n.sessionLost.Add(1)
			}
		}
	})
}

// fleet is the running clients of a plan.
type fleet struct {
	plan     plan
	l        *ledger
	clients  map[string]*mqtt.Client
	counters map[string]*counters
	wg       sync.WaitGroup // the goroutines reading events and messages
	pubWG    sync.WaitGroup // the publishing goroutines
}

// start dials every client (subscribers through subURL, publishers through
// pubURL), subscribes the subscribers, and starts reading.
func start(ctx context.Context, p plan, l *ledger, pubURL, subURL string) (*fleet, error) {
	f := &fleet{plan: p, l: l, clients: map[string]*mqtt.Client{}, counters: map[string]*counters{}}
	dial := func(url, id string) (*mqtt.Client, error) {
		c, err := mqtt.Dial(ctx, clientConfig(url, id, p.versions[id]))
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", id, err)
		}
		f.clients[id] = c
		f.counters[id] = &counters{}
		watch(c, f.counters[id], &f.wg)
		return c, nil
	}
	for i, id := range p.subs {
		c, err := dial(subURL, id)
		if err != nil {
			f.close()
			return nil, err
		}
		if err := c.Subscribe(ctx, mqtt.Subscription{Filter: "chaos/#", QoS: mqtt.ExactlyOnce}); err != nil {
			f.close()
			return nil, fmt.Errorf("subscribe %s: %w", id, err)
		}
		f.wg.Go(func() {
			for m := range c.Messages() {
				l.deliver(i, m)
			}
		})
	}
	for _, id := range p.publishers {
		if _, err := dial(pubURL, id); err != nil {
			f.close()
			return nil, err
		}
	}
	return f, nil
}

// publish runs every stream until stop is closed, then waits for every
// result. rng seeds each stream's own random source (the button's windows).
func (f *fleet) publish(stop <-chan struct{}, seed uint64) {
	for si, s := range f.plan.streams {
		c := f.clients[s.publisher]
		rng := rand.New(rand.NewPCG(seed, uint64(si)))
		type sent struct {
			seq    int
			result <-chan error
			cancel context.CancelFunc
		}
		outstanding := make(chan sent, maxOutstanding)
		f.pubWG.Go(func() {
			defer close(outstanding)
			t := time.NewTicker(tick)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				ctx, cancel := context.WithCancel(context.Background())
				if s.relevance {
					// Between 100 ms and 2 s: some presses outlive a
					// fault, some do not.
					window := 100*time.Millisecond + upTo(rng, 1900*time.Millisecond)
					ctx, cancel = context.WithTimeout(context.Background(), window)
				}
				seq := f.l.publish(si)
				m := mqtt.Message{Topic: s.topic, Payload: []byte(strconv.Itoa(seq)), QoS: s.qos}
				if f.l.traced {
					m.Topic += "/" + string(m.Payload) // for the broker's log
				}
				outstanding <- sent{seq, c.PublishAsync(ctx, m), cancel}
			}
		})
		f.pubWG.Go(func() {
			for p := range outstanding {
				f.l.result(si, p.seq, <-p.result)
				p.cancel()
			}
		})
	}
}

// close closes every client and waits for the goroutines reading them.
func (f *fleet) close() {
	for _, c := range f.clients {
		c.Close()
	}
	f.wg.Wait()
}

// disconnect disconnects every client gracefully (publishers first, so
// that what they still owe reaches the broker), then closes them.
func (f *fleet) disconnect(ctx context.Context) error {
	var first error
	for _, group := range [][]string{f.plan.publishers, f.plan.subs} {
		for _, id := range group {
			if err := f.clients[id].Disconnect(ctx); err != nil && first == nil {
				first = fmt.Errorf("disconnect %s: %w", id, err)
			}
		}
	}
	f.close()
	return first
}

// reconnects is how many times the clients connected again, in all.
func (f *fleet) reconnects() (n, sessionLost int64) {
	for _, c := range f.counters {
		n += max(c.connects.Load()-1, 0)
		sessionLost += c.sessionLost.Load()
	}
	return n, sessionLost
}

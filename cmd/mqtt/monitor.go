package main

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
)

// monitor is the subscriber: a persistent session on home/#, counting what
// arrives from each device.
type monitor struct {
	c          *mqtt.Client
	byTopic    map[string]int // topic -> device index; fixed
	reconnects atomic.Int64
	wg         sync.WaitGroup

	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every message
	seen    []map[int]int // [device]: sequence number -> deliveries
	other   int           // messages from no known device
}

func startMonitor(ctx context.Context, t *target, devs []*device) (*monitor, error) {
	cfg := t.config("monitor") // a persistent session: nothing is lost while it reconnects
	cfg.Backoff = backoff.Exponential{Initial: 50 * time.Millisecond, Max: time.Second}
	c, err := dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// QoS 2: the alarm's exactly once holds all the way to the monitor.
	if err := c.Subscribe(ctx, mqtt.Subscription{Filter: t.prefix + "home/#", QoS: mqtt.ExactlyOnce}); err != nil {
		c.Close()
		return nil, err
	}
	m := &monitor{c: c, byTopic: map[string]int{}, changed: make(chan struct{}), seen: make([]map[int]int, len(devs))}
	for i, d := range devs {
		m.byTopic[d.topic] = i
		m.seen[i] = map[int]int{}
	}
	m.wg.Go(func() {
		for msg := range c.Messages() {
			m.record(msg)
		}
	})
	m.wg.Go(func() {
		for e := range c.Events() {
			if e.Kind == mqtt.Connected {
				m.reconnects.Add(1)
			}
		}
	})
	return m, nil
}

func (m *monitor) record(msg mqtt.Message) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i, ok := m.byTopic[msg.Topic]
	seq, err := strconv.Atoi(string(msg.Payload))
	if !ok || err != nil {
		m.other++
	} else {
		m.seen[i][seq]++
	}
	close(m.changed)
	m.changed = make(chan struct{})
}

// delivered returns how many distinct messages of device i arrived, and how
// many arrived more than once.
func (m *monitor) delivered(i int) (n, dups int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range m.seen[i] {
		n++
		dups += k - 1
	}
	return n, dups
}

// missing returns the sequence numbers in acked that device i's messages
// have not brought yet.
func (m *monitor) missing(i int, acked []int) []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int
	for _, seq := range acked {
		if m.seen[i][seq] == 0 {
			out = append(out, seq)
		}
	}
	return out
}

// waitFor waits until every message in acked[i] arrived, or ctx ends.
func (m *monitor) waitFor(ctx context.Context, acked [][]int) {
	for {
		m.mu.Lock()
		changed := m.changed // before looking: a message after it closes it
		m.mu.Unlock()
		done := true
		for i := range acked {
			if len(m.missing(i, acked[i])) > 0 {
				done = false
			}
		}
		if done {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// close disconnects the monitor and waits for its goroutines.
func (m *monitor) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	m.c.Disconnect(ctx)
	m.wg.Wait()
}

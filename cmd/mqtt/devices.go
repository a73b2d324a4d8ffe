package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
)

// keepAlive is the devices' keepalive: short, so that a black hole is
// noticed within a second and a half and the demo does not stall.
const keepAlive = time.Second

// counts are a device's numbers, updated by its goroutines and read by the
// display.
type counts struct {
	sent, acked, withdrawn, doubt atomic.Int64
	reconnects                    atomic.Int64
}

// device is one of the seed's three: what it publishes, how often, and with
// which client configuration.
type device struct {
	name   string
	topic  string
	qos    mqtt.QoS
	every  time.Duration // mean time between messages
	window time.Duration // relevance window of each publish; 0: none
	redial bool          // dial again at the next message once the client stopped
	cfg    mqtt.Config

	counts counts

	mu    sync.Mutex
	acked []int // sequence numbers the broker acknowledged
}

// devices returns the seed's three devices, connecting to t.
func devices(t *target, buttonWindow time.Duration) []*device {
	temp := t.config("temperature")
	temp.CleanStart = true
	temp.Backoff = backoff.Never() // don't retry: save the battery
	button := t.config("button")
	button.Backoff = backoff.Exponential{Initial: 100 * time.Millisecond, Max: 2 * time.Second}
	alarm := t.config("alarm")
	alarm.Backoff = backoff.Exponential{
		Initial: 100 * time.Millisecond, // a second in real life
		Max:     5 * time.Second,        // 30 minutes in real life: wake rarely in a long outage
		Jitter:  backoff.FullJitter,     // sensors that lost power together must not retry together
	}
	return []*device{
		{name: "temperature", topic: t.prefix + "home/temperature", qos: mqtt.AtMostOnce, every: 500 * time.Millisecond,
			window: time.Second, redial: true, cfg: temp},
		{name: "button", topic: t.prefix + "home/doorbell", qos: mqtt.AtLeastOnce, every: time.Second,
			window: buttonWindow, cfg: button},
		// QoS 2, as the README's table has it: exactly once, the alarm
		// neither lost nor raised twice.
		{name: "alarm", topic: t.prefix + "home/alarm/window", qos: mqtt.ExactlyOnce, every: time.Second, cfg: alarm},
	}
}

// run publishes until ctx ends, then waits for the results of what it
// published, for at most drain, and disconnects.
func (d *device) run(ctx context.Context, drain time.Duration) {
	var (
		c       *mqtt.Client
		results sync.WaitGroup
		events  sync.WaitGroup
	)
	defer func() {
		wait(&results, drain)
		if c != nil {
			dctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c.Disconnect(dctx) // what is still unfinished ends with ErrClosed
			cancel()
		}
		results.Wait()
		events.Wait()
	}()
	connect := func() bool {
		dctx, cancel := context.WithTimeout(ctx, d.cfg.ConnectTimeout)
		defer cancel()
		nc, err := mqtt.Dial(dctx, d.cfg)
		if err != nil {
			return false
		}
		if c != nil {
			d.counts.reconnects.Add(1) // the sensor woke up and dialed again
			c.Close()
		}
		c = nc
		events.Go(func() { d.watch(nc) })
		return true
	}
	connect()
	for seq := 0; ; seq++ {
		// Random gaps around every: devices are not clocks.
		t := time.NewTimer(d.every/2 + time.Duration(rand.Int64N(int64(d.every))))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		d.counts.sent.Add(1)
		if c == nil || (d.redial && stopped(c)) {
			if !connect() {
				d.counts.withdrawn.Add(1) // no connection at reading time: gone
				continue
			}
		}
		pctx, cancel := context.Background(), context.CancelFunc(func() {})
		if d.window > 0 {
			pctx, cancel = context.WithTimeout(pctx, d.window)
		}
		m := mqtt.Message{Topic: d.topic, Payload: []byte(strconv.Itoa(seq)), QoS: d.qos}
		result := c.PublishAsync(pctx, m)
		results.Go(func() {
			defer cancel()
			d.record(seq, <-result)
		})
	}
}

// watch counts reconnects from c's events, until c stops.
func (d *device) watch(c *mqtt.Client) {
	first := true
	for e := range c.Events() {
		if e.Kind == mqtt.Connected {
			if !first {
				d.counts.reconnects.Add(1)
			}
			first = false
		}
	}
}

// record counts a publish's result.
func (d *device) record(seq int, err error) {
	switch {
	case err == nil:
		d.counts.acked.Add(1)
		d.mu.Lock()
		d.acked = append(d.acked, seq)
		d.mu.Unlock()
	case errors.Is(err, mqtt.ErrOutcomeUnknown):
		d.counts.doubt.Add(1)
	default: // withdrawn, or the client stopped before it was sent
		d.counts.withdrawn.Add(1)
	}
}

// ackedSeqs returns the sequence numbers the broker acknowledged.
func (d *device) ackedSeqs() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]int(nil), d.acked...)
}

// stopped reports whether c has stopped for good.
func stopped(c *mqtt.Client) bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}

// wait waits for wg, for at most d.
func wait(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

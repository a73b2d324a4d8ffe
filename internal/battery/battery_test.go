package battery_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/internal/battery"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// measured is what a real client did during one outage.
type measured struct {
	attempts   int  // refused connections: counted by the proxy, or by the client's events
	retries    int  // Reconnecting events
	reconnects bool // false: the client gave up
	// In the bubble's clock, where the network takes no time:
	reconnectAfter time.Duration // broker back → Connected event
	deliverAfter   time.Duration // broker back → PUBACK of a QoS 1 publish made during the outage
	gaveUpAfter    time.Duration // loss → GaveUp event
	// In real time: what the bubble's clock does not see.
	wallOutage    time.Duration // loss → broker back, or → GaveUp: the refused attempts' real cost
	wallReconnect time.Duration // broker back → Connected: one connect over loopback
	wallDeliver   time.Duration // broker back → PUBACK
}

// fault takes the broker away and brings it back, with a broker or a proxy
// made outside the synctest bubble; begin and end run outside it too.
type fault struct {
	url   string       // where the client connects
	begin func() error // refuse new connections, then drop the current one
	end   func() error // accept connections again
	// accepted counts the connections accepted at url so far, refused
	// ones included; nil when refused ones are not accepted at all.
	accepted func() int64
}

// faults are the two outages the test measures: a proxy that accepts each
// attempt and resets it at once (the attempts are counted at the socket,
// independently of the client), and the broker itself stopped, so that its
// port refuses the SYN as in the byte model (the attempts are counted by
// the client's Reconnecting events).
var faults = []struct {
	name string
	make func(t *testing.T, b *mqtttest.Broker) fault
}{
	{"proxy refuses", func(t *testing.T, b *mqtttest.Broker) fault {
		p := mqtttest.NewProxy(t, b.Addr())
		return fault{
			url: p.URL(),
			begin: func() error {
				p.Refuse(true)
				p.Cut()
				return nil
			},
			end:      func() error { p.Refuse(false); return nil },
			accepted: func() int64 { return p.Stats().Accepted },
		}
	}},
	{"broker stopped", func(t *testing.T, b *mqtttest.Broker) fault {
		return fault{url: b.URL(), begin: b.Stop, end: b.Start}
	}},
}

// TestMeasured runs the real client through each case's outage and checks
// that it does what Simulate says, to the attempt and to the nanosecond.
//
// The outage is shortened to 3 s and every strategy sped up by the same
// factor with Scale, both in the simulation and in the client; each case
// runs under both faults (see faults), with a QoS 1 publish made at the
// start of the outage, whose acknowledgement is the delivery. The client
// runs in a synctest bubble, so its timers run on the bubble's fake clock,
// while the broker and the proxy run outside it on real sockets. The fake
// clock only moves when every goroutine of the bubble is durably blocked,
// and a goroutine waiting for the network is not: so a connection attempt,
// refused or not, takes no time on the fake clock, exactly as in Simulate.
// That is why the comparison needs no tolerance: the attempts must be
// equal, and the delay from the broker's return to the Connected event must
// be equal to the nanosecond. A difference is a real divergence between the
// supervisor and the model (a retry counted twice, Elapsed measured from
// the wrong moment, a timer armed late), not noise. What the fake clock
// hides, the real time the attempts and the reconnection took, is measured
// from outside the bubble and logged (go test -v).
func TestMeasured(t *testing.T) {
	const (
		seed   = 1
		outage = 3 * time.Second
	)
	b := mqtttest.NewBroker(t)
	out := startOutside(t)
	for _, ft := range faults {
		t.Run(ft.name, func(t *testing.T) {
			for _, c := range battery.Cases() {
				t.Run(c.Device, func(t *testing.T) {
					scaled := func() backoff.Strategy {
						return battery.Scale(c.New(battery.Rand(seed)), time.Hour, outage)
					}
					want, err := battery.Simulate(scaled(), outage)
					if err != nil {
						t.Fatal(err)
					}
					if want.Reconnected && want.ReconnectAfter == 0 {
						// The client's retry and the broker's return would be
						// due at the same instant of the fake clock, in no
						// defined order.
						t.Fatalf("the simulated retry coincides with the broker's return; choose another outage")
					}
					f := ft.make(t, b)
					var got measured
					synctest.Test(t, func(t *testing.T) {
						got = measure(t, f, out, scaled(), outage)
					})
					compare(t, got, want)
				})
			}
		})
	}
}

// compare logs the simulated and measured figures and checks they agree.
func compare(t *testing.T, got measured, want battery.Figures) {
	t.Helper()
	t.Logf("simulated: %d attempts, %d bytes, reconnected %t after %v (gave up after %v)",
		want.Attempts, want.Bytes, want.Reconnected, want.ReconnectAfter, want.GaveUpAfter)
	t.Logf("measured: %d attempts (%d Reconnecting events), reconnected %t after %v, delivered after %v (gave up after %v)",
		got.attempts, got.retries, got.reconnects, got.reconnectAfter, got.deliverAfter, got.gaveUpAfter)
	if got.reconnects {
		t.Logf("real time: the %d refused attempts took %v (%v each), connecting %v, delivering %v",
			got.attempts, got.wallOutage, perAttempt(got), got.wallReconnect, got.wallDeliver)
	} else {
		t.Logf("real time: the %d refused attempts took %v (%v each) before the client gave up",
			got.attempts, got.wallOutage, perAttempt(got))
	}

	if got.attempts != want.Attempts {
		t.Errorf("the client made %d attempts during the outage, the simulation %d", got.attempts, want.Attempts)
	}
	if got.reconnects != want.Reconnected {
		t.Fatalf("the client reconnected: %t; the simulation: %t", got.reconnects, want.Reconnected)
	}
	if !want.Reconnected {
		// Every refused attempt was announced by a Reconnecting event.
		if got.retries != want.Attempts || got.gaveUpAfter != want.GaveUpAfter {
			t.Errorf("the client gave up after %d retries, %v after the loss; the simulation after %d, %v",
				got.retries, got.gaveUpAfter, want.Attempts, want.GaveUpAfter)
		}
		return
	}
	// One more Reconnecting event: the retry that connected.
	if got.retries != want.Attempts+1 {
		t.Errorf("%d Reconnecting events, want %d", got.retries, want.Attempts+1)
	}
	if got.reconnectAfter != want.ReconnectAfter {
		t.Errorf("the client connected %v after the broker's return, the simulation %v", got.reconnectAfter, want.ReconnectAfter)
	}
	if got.deliverAfter != got.reconnectAfter {
		t.Errorf("the publish was acknowledged %v after the broker's return, the connection came %v after it", got.deliverAfter, got.reconnectAfter)
	}
}

// measure runs one outage, inside a synctest bubble.
func measure(t *testing.T, f fault, out *outside, s backoff.Strategy, outage time.Duration) measured {
	ctx := t.Context()
	c, err := mqtt.Dial(ctx, mqtt.Config{
		Servers:    []string{f.url},
		ClientID:   "battery",
		CleanStart: true,
		Backoff:    s,
	})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	events := c.Events()
	if e := <-events; e.Kind != mqtt.Connected {
		t.Fatalf("first event %v, want Connected", e)
	}

	var before int64
	if f.accepted != nil {
		before = f.accepted()
	}
	var m measured
	// tries counts the attempts since the loss: at the socket if the fault
	// can, else by the client's Reconnecting events, one before each.
	tries := func() int {
		if f.accepted != nil {
			return int(f.accepted() - before) // an atomic counter: no need to go outside
		}
		return m.retries
	}
	if err := out.call(f.begin); err != nil {
		t.Fatal(err)
	}
	lostAt, wallLost := time.Now(), out.now()
	result := c.PublishAsync(ctx, mqtt.Message{Topic: "alarm/window", Payload: []byte("broken"), QoS: mqtt.AtLeastOnce})
	back := time.NewTimer(outage)
	// A guard on the fake clock: a client that neither reconnects nor
	// gives up in ten outages' time has failed. Costs no real time.
	guard := time.NewTimer(10 * outage)
	defer guard.Stop()

	var backAt, wallBack time.Time
	done := c.Done()
	connected, delivered, gaveUp, stopped, ended := false, false, false, false, false
	// Until the publish is acknowledged, or the client has stopped and its
	// GaveUp event (emitted before it stops) has been read.
	for !(connected && delivered) && !(gaveUp && stopped) {
		select {
		case e, ok := <-events:
			if !ok {
				if !gaveUp {
					t.Fatal("the client stopped without a GaveUp event")
				}
				events = nil
				break
			}
			switch e.Kind {
			case mqtt.Reconnecting:
				m.retries++
			case mqtt.Connected:
				connected = true
				m.attempts = tries() - 1 // the last one connected
				m.reconnectAfter = time.Since(backAt)
				m.wallReconnect = out.now().Sub(wallBack)
			case mqtt.GaveUp:
				gaveUp = true
				m.attempts = tries()
				m.gaveUpAfter = time.Since(lostAt)
				m.wallOutage = out.now().Sub(wallLost)
			}
		case <-back.C:
			if err := out.call(f.end); err != nil {
				t.Fatal(err)
			}
			ended = true
			backAt, wallBack = time.Now(), out.now()
			m.wallOutage = wallBack.Sub(wallLost)
		case err := <-result:
			result = nil
			if err != nil {
				if !errors.Is(err, mqtt.ErrClosed) && !errors.Is(err, mqtt.ErrGaveUp) {
					t.Errorf("publish failed with %v; want nil, or a stopped client's error", err)
				}
				break
			}
			delivered = true
			m.deliverAfter = time.Since(backAt)
			m.wallDeliver = out.now().Sub(wallBack)
		case <-done:
			stopped, done = true, nil
		case <-guard.C:
			t.Fatalf("neither reconnected nor gave up within %v on the fake clock", 10*outage)
		}
	}
	m.reconnects = connected
	if gaveUp && !errors.Is(c.Err(), mqtt.ErrGaveUp) {
		t.Errorf("the client stopped with %v, want an error wrapping ErrGaveUp", c.Err())
	}
	if !ended {
		// The client gave up before the outage ended: bring the broker
		// back for the next test.
		back.Stop()
		if err := out.call(f.end); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// perAttempt is the real time one refused attempt took, on average.
func perAttempt(m measured) time.Duration {
	if m.attempts == 0 {
		return 0
	}
	return m.wallOutage / time.Duration(m.attempts)
}

// outside runs functions on a goroutine outside the synctest bubble, for
// what must not happen inside it: reading the real clock (time.Now in the
// bubble is the fake one), and changing the broker or the proxy, since
// Broker.Start starts an acceptor goroutine that would otherwise join the
// bubble, and whose wait for the network would stop the fake clock for
// good. Its channels are made outside too: a bubble's channels must not be
// used from outside it. For one caller at a time.
type outside struct {
	run  chan func()
	done chan struct{}
}

func startOutside(t *testing.T) *outside {
	o := &outside{run: make(chan func()), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case f := <-o.run:
				f()
				o.done <- struct{}{}
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-exited })
	return o
}

// do runs f outside the bubble and returns once it has returned.
func (o *outside) do(f func()) {
	o.run <- f
	<-o.done
}

// now reads the real clock.
func (o *outside) now() time.Time {
	var now time.Time
	o.do(func() { now = time.Now() })
	return now
}

// call runs f outside the bubble and returns its error.
func (o *outside) call(f func() error) error {
	var err error
	o.do(func() { err = f() })
	return err
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// BenchmarkResume measures how soon a client publishes again after its
// broker comes back. The broker runs in this process (an mqtttest.Broker,
// which can be stopped and started on the same port with its sessions).
// One op is one outage: Stop the broker, wait until the client has noticed
// the lost connection, Start the broker, publish one QoS 1 message and wait
// for its PUBACK. resume is the time from Start returning (the listener
// accepts again) to that PUBACK, median over the run; every client retries
// with no delay (robustmqtt backoff.Constant(0), paho.mqtt.golang
// MaxReconnectInterval 0, autopaho NewConstantBackoff(0)) and keeps a
// persistent session.
func BenchmarkResume(b *testing.B) {
	for _, kind := range []string{robust, pahoV3, pahoAuto} {
		b.Run("client="+kind, func(b *testing.B) {
			benchResume(b, kind)
		})
	}
}

// resumer is a client that reconnects by itself.
type resumer interface {
	// lost receives once per lost connection.
	lost() <-chan struct{}
	// publish publishes one QoS 1 message and waits for its PUBACK,
	// waiting for a connection if there is none.
	publish(ctx context.Context) error
	close()
}

func benchResume(b *testing.B, kind string) {
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	br, err := mqtttest.StartBroker()
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	r, err := newResumer(ctx, kind, br.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer r.close()

	var times []time.Duration
	for b.Loop() {
		d, err := outage(ctx, br, r)
		if err != nil {
			b.Fatal(err)
		}
		times = append(times, d)
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Nanoseconds()), "ns/resume")
	b.ReportMetric(float64(times[len(times)*9/10].Nanoseconds()), "ns/resume-p90")
}

// outage stops the broker, waits until r noticed, starts the broker and
// returns how long r then took to have a publish acknowledged.
func outage(ctx context.Context, br *mqtttest.Broker, r resumer) (time.Duration, error) {
	if err := br.Stop(); err != nil {
		return 0, err
	}
	select {
	case <-r.lost():
	case <-ctx.Done():
		return 0, errors.New("the client did not notice that the broker stopped")
	}
	if err := br.Start(); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := r.publish(ctx); err != nil {
		return 0, fmt.Errorf("the first publish after the restart: %w", err)
	}
	return time.Since(start), nil
}

func newResumer(ctx context.Context, kind, addr string) (resumer, error) {
	lost := make(chan struct{}, 1)
	signal := func() {
		select {
		case lost <- struct{}{}:
		default:
		}
	}
	switch kind {
	case robust:
		c, err := dialOurs(ctx, kind, addr, func(cfg *mqtt.Config) {
			cfg.CleanStart = false
			cfg.Backoff = backoff.Constant(0)
		})
		if err != nil {
			return nil, err
		}
		r := &oursResumer{c: c, lostCh: lost, done: make(chan struct{})}
		go func() {
			defer close(r.done)
			for e := range c.Events() {
				if e.Kind == mqtt.ConnectionLost {
					signal()
				}
			}
		}()
		return r, nil
	case pahoV3:
		c, err := dialPahoV3(addr, clientID(kind), func(o *pahomqtt.ClientOptions) {
			o.SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(0).
				SetConnectionLostHandler(func(pahomqtt.Client, error) { signal() })
		})
		if err != nil {
			return nil, err
		}
		return &pahoV3Resumer{c: c, lostCh: lost}, nil
	case pahoAuto:
		c, err := dialAutopaho(ctx, addr, func(cfg *autopaho.ClientConfig) {
			cfg.SessionExpiryInterval = 600
			cfg.ReconnectBackoff = autopaho.NewConstantBackoff(0)
			cfg.OnConnectionDown = func() bool { signal(); return true }
		})
		if err != nil {
			return nil, err
		}
		return &autoResumer{c: c, lostCh: lost}, nil
	}
	return nil, fmt.Errorf("bench: no reconnecting client %q", kind)
}

type oursResumer struct {
	c      *mqtt.Client
	lostCh chan struct{}
	done   chan struct{} // the event reader has exited
}

func (r *oursResumer) lost() <-chan struct{} { return r.lostCh }

func (r *oursResumer) publish(ctx context.Context) error {
	return r.c.Publish(ctx, mqtt.Message{Topic: topic, Payload: payload, QoS: mqtt.AtLeastOnce})
}

func (r *oursResumer) close() {
	r.c.Close()
	<-r.done
}

type pahoV3Resumer struct {
	c      pahomqtt.Client
	lostCh chan struct{}
}

func (r *pahoV3Resumer) lost() <-chan struct{} { return r.lostCh }

func (r *pahoV3Resumer) publish(context.Context) error {
	return waitToken(r.c.Publish(topic, 1, false, payload))
}

func (r *pahoV3Resumer) close() { r.c.Disconnect(100) }

type autoResumer struct {
	c      *autopaho.ConnectionManager
	lostCh chan struct{}
}

func (r *autoResumer) lost() <-chan struct{} { return r.lostCh }

// publish waits for the connection first: autopaho's Publish fails at
// once while there is none.
func (r *autoResumer) publish(ctx context.Context) error {
	if err := r.c.AwaitConnection(ctx); err != nil {
		return err
	}
	ack, err := r.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	if err == nil && ack.ReasonCode >= 0x80 {
		err = errors.New("autopaho: publish refused")
	}
	return err
}

func (r *autoResumer) close() { r.c.Disconnect(context.Background()) }

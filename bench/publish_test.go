package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// benchTimeout bounds one benchmark run, setup included: a lost message or
// a stuck client fails the run instead of hanging it.
const benchTimeout = 2 * time.Minute

// throughputClients are compared in BenchmarkPublish and BenchmarkRoundTrip.
var throughputClients = []string{robust, robust5, pahoV3, pahoV5, raw}

// BenchmarkPublish publishes 64-byte messages from one client to the broker
// in the child process (nobody subscribes), in four modes:
//
//	qos0         PublishAsync for every message, results ignored; one QoS 1
//	             publish at the end waits for the broker to have read them all
//	qos1-sync    QoS 1, one at a time: each waits for its PUBACK
//	qos1-win100  QoS 1, 100 in flight: before a publish, wait for the result
//	             of the one 100 earlier
//	qos2-win100  the same with QoS 2 (PUBREC, PUBREL, PUBCOMP)
//
// One op is one message; msgs/s is b.N over the elapsed time including the
// final wait; allocs/op and B/op are the client's alone (the broker is in
// another process).
func BenchmarkPublish(b *testing.B) {
	addr := brokerAddr(b)
	modes := []struct {
		name string
		qos  byte
		win  int
	}{
		{"qos0", 0, 0},
		{"qos1-sync", 1, 1},
		{"qos1-win100", 1, window},
		{"qos2-win100", 2, window},
	}
	for _, m := range modes {
		for _, kind := range throughputClients {
			b.Run(fmt.Sprintf("mode=%s/client=%s", m.name, kind), func(b *testing.B) {
				benchPublish(b, addr, kind, m.qos, m.win)
			})
		}
	}
}

func benchPublish(b *testing.B, addr, kind string, qos byte, win int) {
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	p, err := newPublisher(ctx, kind, addr, topic, qos, win)
	if err != nil {
		b.Fatal(err)
	}
	defer p.close()
	cpu := startCPU()
	b.ReportAllocs()
	for b.Loop() {
		if err := p.publish(); err != nil {
			b.Fatal(err)
		}
	}
	b.StartTimer() // the wait for the last results is part of the run
	if err := p.finish(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	report(b, cpu)
}

// report reports messages per second over the measured time, and the CPU
// time this process (the clients, not the broker) spent per message.
func report(b *testing.B, cpu cpuClock) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.since().Nanoseconds())/float64(b.N), "cpu-ns/msg")
}

// BenchmarkRoundTrip is QoS 1 end to end: one client publishes, the broker
// in the child process routes, a second client of the same kind receives
// (and acknowledges) every message. At most 100 messages are between the
// publisher's call and the subscriber's receipt. One op is one message
// received; allocs/op and B/op are both clients' together.
func BenchmarkRoundTrip(b *testing.B) {
	addr := brokerAddr(b)
	for _, kind := range throughputClients {
		b.Run("mode=qos1-win100/client="+kind, func(b *testing.B) {
			benchRoundTrip(b, addr, kind)
		})
	}
}

// newPair connects a subscriber and a publisher of kind, the publisher
// pipelined with QoS 1, on a topic of their own.
func newPair(ctx context.Context, kind, addr string, got func(n int)) (publisher, subscriber, error) {
	t := fmt.Sprintf("bench/roundtrip/%d", ids.Add(1))
	sub, err := newSubscriber(ctx, kind, addr, t, got)
	if err != nil {
		return nil, nil, err
	}
	pub, err := newPublisher(ctx, kind, addr, t, 1, window)
	if err != nil {
		sub.close()
		return nil, nil, err
	}
	return pub, sub, nil
}

func benchRoundTrip(b *testing.B, addr, kind string) {
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	var received atomic.Int64
	signal := make(chan struct{}, 1)
	pub, sub, err := newPair(ctx, kind, addr, func(n int) {
		received.Add(int64(n))
		select {
		case signal <- struct{}{}:
		default:
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.close()
	defer pub.close()

	waitFor := func(n int64) {
		if err := pub.push(); err != nil {
			b.Fatal(err)
		}
		for received.Load() < n {
			select {
			case <-signal:
			case <-ctx.Done():
				b.Fatalf("%d of %d messages received when the time was up", received.Load(), n)
			}
		}
	}
	var sent int64
	cpu := startCPU()
	b.ReportAllocs()
	for b.Loop() {
		if sent-received.Load() >= window {
			waitFor(sent - window + 1)
		}
		if err := pub.publish(); err != nil {
			b.Fatal(err)
		}
		sent++
	}
	b.StartTimer()
	if err := pub.finish(); err != nil {
		b.Fatal(err)
	}
	waitFor(sent)
	b.StopTimer()
	report(b, cpu)
}

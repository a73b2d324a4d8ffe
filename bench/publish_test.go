package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// benchTimeout bounds one benchmark run, setup included: a lost message or
// a stuck client fails the run instead of hanging it.
const benchTimeout = 2 * time.Minute

// throughputClients are compared in BenchmarkPublish and BenchmarkRoundTrip,
// in the order of benchOrder.
var throughputClients = []string{robust, robust5, pahoV3, pahoV5, raw, raw5}

// roundEnv, set to k by compare.sh for its k-th round, rotates the order in
// which the clients of a row run by k places, so that over the rounds each
// client runs at each place. The order matters by itself: the client that
// runs right after the slow peers finds the broker's process settled (in
// session 7's measurements raw gained about 10% in the fifth place), and a
// fixed order would give that to the same client in every round.
const roundEnv = "ROBUSTMQTT_BENCH_ROUND"

// benchOrder is throughputClients rotated as roundEnv says (not at all when
// it is unset).
func benchOrder() []string {
	k, _ := strconv.Atoi(os.Getenv(roundEnv))
	n := len(throughputClients)
	k = (k%n + n) % n
	return append(slices.Clone(throughputClients[k:]), throughputClients[:k]...)
}

// brokers are the brokers BenchmarkPublish runs against, each in a child
// process of its own: mochi routes (as a real broker does, and it is slower
// than some clients), the sink only acknowledges.
var brokers = []string{mochiBroker, sinkBroker}

// publishMode is one way of publishing: a QoS and a window (1: the
// synchronous call, see publisher).
type publishMode struct {
	name string
	qos  byte
	win  int
}

// publishModes are BenchmarkPublish's modes, synchronous first.
var publishModes = []publishMode{
	{"qos0-sync", 0, 1},
	{"qos1-sync", 1, 1},
	{"qos2-sync", 2, 1},
	{"qos0-async", 0, window},
	{"qos1-win100", 1, window},
	{"qos2-win100", 2, window},
}

// BenchmarkPublish publishes 64-byte messages from one client to a broker
// in a child process (nobody subscribes), against each broker (mochi,
// sink), in six modes:
//
//	qos0-sync    the synchronous call in a loop, QoS 0: it returns once the
//	             message is written (robustmqtt Publish, paho.mqtt.golang
//	             Publish(...).Wait(), paho.golang Publish; raw: one Write)
//	qos1-sync    the same at QoS 1: each returns on its PUBACK (raw writes
//	             and reads the PUBACK in one goroutine)
//	qos2-sync    the same at QoS 2: each returns on its PUBCOMP
//	qos0-async   QoS 0 without waiting: robustmqtt PublishAsync and
//	             paho.mqtt.golang Publish, results ignored; paho.golang
//	             Publish (it has no asynchronous call); raw writes 100
//	             frames at a time
//	qos1-win100  QoS 1, 100 in flight: before a publish, wait for the
//	             result of the one 100 earlier (PublishAsync, tokens,
//	             100 goroutines calling paho.golang's Publish, raw batches)
//	qos2-win100  the same with QoS 2 (PUBREC, PUBREL, PUBCOMP)
//
// A QoS 0 run ends with one QoS 1 publish, whose PUBACK the broker sends
// after reading every earlier frame. One op is one message; msgs/s is b.N
// over the elapsed time including the final wait; allocs/op and B/op are
// the client's alone (the broker is in another process). The synchronous
// modes also time every call: p50-ns and p99-ns are its median and 99th
// percentile.
func BenchmarkPublish(b *testing.B) {
	for _, broker := range brokers {
		addr := brokerAddrOf(b, broker)
		for _, m := range publishModes {
			for _, kind := range benchOrder() {
				b.Run(fmt.Sprintf("broker=%s/mode=%s/client=%s", broker, m.name, kind), func(b *testing.B) {
					benchPublish(b, addr, kind, m.qos, m.win)
				})
			}
		}
	}
}

func benchPublish(b *testing.B, addr, kind string, qos byte, win int) {
	benchPublishCtx(b, addr, kind, qos, win, nil)
}

// BenchmarkPublishCancelable is the synchronous QoS 1 row against mochi
// with a ctx that can end (context.WithCancel, never cancelled) for the
// call of the clients that take one, robustmqtt (3.1.1) and paho.golang,
// beside the same call with context.Background and the raw client: a
// user's loop often has such a ctx (signal.NotifyContext, an errgroup's).
// robustmqtt then reads its own PUBACK only because a read deadline can
// interrupt the read (TCP, TLS; see Client.Publish), and its ctx watcher
// costs allocations.
func BenchmarkPublishCancelable(b *testing.B) {
	addr := brokerAddrOf(b, mochiBroker)
	for _, ctxKind := range []string{"background", "cancelable"} {
		for _, kind := range []string{robust, pahoV5, raw} {
			if kind == raw && ctxKind == "cancelable" {
				continue // it takes no ctx
			}
			b.Run(fmt.Sprintf("broker=%s/mode=qos1-sync/ctx=%s/client=%s", mochiBroker, ctxKind, kind), func(b *testing.B) {
				var callCtx context.Context
				if ctxKind == "cancelable" {
					c, cancel := context.WithCancel(context.Background())
					defer cancel()
					callCtx = c
				}
				benchPublishCtx(b, addr, kind, 1, 1, callCtx)
			})
		}
	}
}

// benchPublishCtx is benchPublish whose synchronous calls take callCtx,
// when it is not nil (see withCallCtx).
func benchPublishCtx(b *testing.B, addr, kind string, qos byte, win int, callCtx context.Context) {
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	p, err := newPublisher(ctx, kind, addr, topic, qos, win)
	if err != nil {
		b.Fatal(err)
	}
	defer p.close()
	if callCtx != nil && !withCallCtx(p, callCtx) {
		b.Fatalf("a %s publisher's call takes no ctx", kind)
	}
	var lat *latencies
	if win <= 1 {
		lat = new(latencies) // before the loop: its allocation is not counted
	}
	cpu := startCPU()
	b.ReportAllocs()
	for b.Loop() {
		if lat == nil {
			if err := p.publish(); err != nil {
				b.Fatal(err)
			}
			continue
		}
		start := time.Now()
		err := p.publish()
		lat.record(time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StartTimer() // the wait for the last results is part of the run
	if err := p.finish(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	report(b, cpu)
	if lat != nil {
		b.ReportMetric(lat.quantile(0.50), "p50-ns")
		b.ReportMetric(lat.quantile(0.99), "p99-ns")
	}
}

// report reports messages per second over the measured time, and the CPU
// time this process (the clients, not the broker) spent per message.
func report(b *testing.B, cpu cpuClock) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.since().Nanoseconds())/float64(b.N), "cpu-ns/msg")
}

// BenchmarkRoundTrip is QoS 1 end to end: one client publishes, the mochi
// broker in its child process routes (the sink does not), a second client
// of the same kind receives
// (and acknowledges) every message. At most 100 messages are between the
// publisher's call and the subscriber's receipt. One op is one message
// received; allocs/op and B/op are both clients' together.
func BenchmarkRoundTrip(b *testing.B) {
	addr := brokerAddr(b)
	for _, kind := range benchOrder() {
		b.Run("broker="+mochiBroker+"/mode=qos1-win100/client="+kind, func(b *testing.B) {
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

package bench

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"testing"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// idleClients is how many connected clients BenchmarkIdleClient holds.
const idleClients = 200

// idleKinds are the clients BenchmarkIdleClient compares.
var idleKinds = []string{robust, robust5, pahoV3, pahoV5, pahoAuto}

// BenchmarkIdleClient connects 200 clients of one kind to the broker in
// the child process, leaves them idle, and reports what each costs this
// process: goroutines, live heap and goroutine stack, each the difference
// from before the clients were dialed, divided by 200. One op is one
// sample (a full garbage collection, then runtime.ReadMemStats and
// runtime.NumGoroutine); the figures are the mean over the samples.
func BenchmarkIdleClient(b *testing.B) {
	addr := brokerAddr(b)
	for _, kind := range idleKinds {
		b.Run("client="+kind, func(b *testing.B) {
			benchIdle(b, addr, kind)
		})
	}
}

type usage struct {
	goroutines  int
	heap, stack uint64
}

// measure collects garbage and reads what is in use.
func measure() usage {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{goroutines: runtime.NumGoroutine(), heap: ms.HeapAlloc, stack: ms.StackInuse}
}

func benchIdle(b *testing.B, addr, kind string) {
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	before := measure()
	closers := make([]func(), 0, idleClients)
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for range idleClients {
		c, err := dialIdle(ctx, kind, addr)
		if err != nil {
			b.Fatal(err)
		}
		closers = append(closers, c)
	}
	var goroutines, heap, stack float64
	n := 0
	for b.Loop() {
		u := measure()
		goroutines += float64(u.goroutines - before.goroutines)
		heap += float64(u.heap) - float64(before.heap)
		stack += float64(u.stack) - float64(before.stack)
		n++
	}
	per := float64(n * idleClients)
	b.ReportMetric(goroutines/per, "goroutines/client")
	b.ReportMetric(heap/per, "heap-B/client")
	b.ReportMetric(stack/per, "stack-B/client")
}

// dialIdle connects one client of kind with its defaults and returns how
// to close it.
func dialIdle(ctx context.Context, kind, addr string) (func(), error) {
	switch kind {
	case robust, robust5:
		c, err := dialOurs(ctx, kind, addr, nil)
		if err != nil {
			return nil, err
		}
		return func() { c.Close() }, nil
	case pahoV3:
		c, err := dialPahoV3(addr, clientID(kind), nil)
		if err != nil {
			return nil, err
		}
		return func() { c.Disconnect(100) }, nil
	case pahoV5:
		c, err := dialPahoV5(ctx, addr, nil)
		if err != nil {
			return nil, err
		}
		return func() { closePahoV5(c) }, nil
	case pahoAuto:
		c, err := dialAutopaho(ctx, addr, nil)
		if err != nil {
			return nil, err
		}
		return func() { c.Disconnect(context.Background()) }, nil
	}
	return nil, fmt.Errorf("bench: no client %q", kind)
}

// dialAutopaho starts an autopaho connection manager (MQTT 5, clean start
// on the first connection, keepalive 30 s) and waits for its first
// connection.
func dialAutopaho(ctx context.Context, addr string, edit func(*autopaho.ClientConfig)) (*autopaho.ConnectionManager, error) {
	u, err := url.Parse("mqtt://" + addr)
	if err != nil {
		return nil, err
	}
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ClientConfig:                  paho.ClientConfig{ClientID: clientID(pahoAuto)},
	}
	if edit != nil {
		edit(&cfg)
	}
	// The manager lives until Disconnect, not until ctx ends.
	cm, err := autopaho.NewConnection(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	if err := cm.AwaitConnection(ctx); err != nil {
		cm.Disconnect(context.Background())
		return nil, fmt.Errorf("autopaho: connect: %w", err)
	}
	return cm, nil
}

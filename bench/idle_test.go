package bench

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// idleClients is how many connected clients BenchmarkIdleClient holds.
const idleClients = 200

// idleKinds are the clients BenchmarkIdleClient compares.
var idleKinds = []string{robust, robust5, pahoV3, pahoV5, pahoAuto}

// BenchmarkIdleClient connects 200 clients of one kind to the broker in
// the child process, leaves them idle, and reports what each costs:
// goroutines, live heap and goroutine stack, each the difference from
// before the clients were dialed, divided by 200. One op is one fresh
// process (this test binary again, see idleChildEnv) that dials the 200
// clients, measures once (full garbage collections, then
// runtime.ReadMemStats and runtime.NumGoroutine) and closes them; the
// figures are the mean over the ops. A fresh process per measurement:
// the runtime keeps the descriptors of goroutines that exited for the
// next ones, so in a process that already ran and closed clients a
// client's goroutines seem to cost no heap (a 10-goroutine client
// measured after another kind looked 4 KiB lighter than it is).
func BenchmarkIdleClient(b *testing.B) {
	addr := brokerAddr(b)
	for _, kind := range idleKinds {
		b.Run("client="+kind, func(b *testing.B) {
			benchIdle(b, addr, kind)
		})
	}
}

// idleChildEnv, set to "kind addr", makes TestMain measure idle clients
// of that kind connected to addr instead of running tests, print the
// usage per client as "idle: goroutines heap stack" and exit.
const idleChildEnv = "ROBUSTMQTT_BENCH_CHILD_IDLE"

// idleHeapProfileEnv, set to a file name, makes the idle child record
// every allocation and write a heap profile of the idle clients there
// (go tool pprof -sample_index=inuse_space), to find what an idle client
// keeps: ROBUSTMQTT_BENCH_IDLE_HEAPPROFILE=/tmp/idle.pprof go test
// -run '^$' -bench 'IdleClient/client=robustmqtt-v5$' -benchtime 1x.
const idleHeapProfileEnv = "ROBUSTMQTT_BENCH_IDLE_HEAPPROFILE"

// writeHeapProfile writes the heap profile of what is live now to name.
func writeHeapProfile(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("writing the heap profile to %s: %w", name, err)
	}
	return f.Close()
}

type usage struct {
	goroutines  int
	heap, stack uint64
}

// measure collects garbage and reads what is in use.
func measure() usage {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{goroutines: runtime.NumGoroutine(), heap: ms.HeapAlloc, stack: ms.StackInuse}
}

// idleChild is a measuring child's whole life (see idleChildEnv).
func idleChild(spec string) int {
	kind, addr, ok := strings.Cut(spec, " ")
	if !ok {
		fmt.Fprintf(os.Stderr, "bench idle child: %s=%q, want \"kind addr\"\n", idleChildEnv, spec)
		return 1
	}
	profile := os.Getenv(idleHeapProfileEnv)
	if profile != "" {
		runtime.MemProfileRate = 1
	}
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
			fmt.Fprintln(os.Stderr, "bench idle child:", err)
			return 1
		}
		closers = append(closers, c)
	}
	u := measure()
	if profile != "" {
		if err := writeHeapProfile(profile); err != nil {
			fmt.Fprintln(os.Stderr, "bench idle child:", err)
			return 1
		}
	}
	fmt.Printf("idle: %g %g %g\n",
		float64(u.goroutines-before.goroutines)/idleClients,
		(float64(u.heap)-float64(before.heap))/idleClients,
		(float64(u.stack)-float64(before.stack))/idleClients)
	return 0
}

func benchIdle(b *testing.B, addr, kind string) {
	var goroutines, heap, stack float64
	n := 0
	for b.Loop() {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), idleChildEnv+"="+kind+" "+addr)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("idle child for %s: %v", kind, err)
		}
		var g, h, s float64
		if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "idle: %g %g %g", &g, &h, &s); err != nil {
			b.Fatalf("idle child for %s printed %q: %v", kind, out, err)
		}
		goroutines, heap, stack = goroutines+g, heap+h, stack+s
		n++
	}
	b.ReportMetric(goroutines/float64(n), "goroutines/client")
	b.ReportMetric(heap/float64(n), "heap-B/client")
	b.ReportMetric(stack/float64(n), "stack-B/client")
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

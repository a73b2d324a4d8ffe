package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt/mqtttest"
)

// The tests check the harness itself, quickly: every client kind
// publishes in every mode, delivers end to end, survives a restart. A
// benchmark that measured a client doing less than the others would be
// worse than none.

const smokeMessages = 300

func TestPublishers(t *testing.T) {
	for _, broker := range brokers {
		addr := brokerAddrOf(t, broker)
		for _, m := range publishModes {
			for _, kind := range throughputClients {
				t.Run(fmt.Sprintf("broker=%s/mode=%s/client=%s", broker, m.name, kind), func(t *testing.T) {
					ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
					defer cancel()
					p, err := newPublisher(ctx, kind, addr, topic, m.qos, m.win)
					if err != nil {
						t.Fatal(err)
					}
					defer p.close()
					if err := publishAll(p); err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
}

// publishAll publishes smokeMessages messages with p and waits for them.
func publishAll(p publisher) error {
	for range smokeMessages {
		if err := p.publish(); err != nil {
			return err
		}
	}
	return p.finish()
}

// TestRoundTrip checks that each subscriber gets exactly what its publisher
// sent, with the publisher pipelined as in BenchmarkRoundTrip.
func TestRoundTrip(t *testing.T) {
	addr := brokerAddr(t)
	for _, kind := range throughputClients {
		t.Run("client="+kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			var got atomic.Int64
			all := make(chan struct{})
			pub, sub, err := newPair(ctx, kind, addr, func(n int) {
				if got.Add(int64(n)) == smokeMessages {
					close(all)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.close()
			defer pub.close()
			if err := publishAll(pub); err != nil {
				t.Fatal(err)
			}
			select {
			case <-all:
			case <-ctx.Done():
				t.Fatalf("received %d of %d", got.Load(), smokeMessages)
			}
		})
	}
}

// TestResumers runs two outages per reconnecting client.
func TestResumers(t *testing.T) {
	for _, kind := range []string{robust, pahoV3, pahoAuto} {
		t.Run("client="+kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			br := mqtttest.NewBroker(t)
			r, err := newResumer(ctx, kind, br.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer r.close()
			for range 2 {
				if _, err := outage(ctx, br, r); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestIdle dials a few idle clients of each kind and closes them.
func TestIdle(t *testing.T) {
	addr := brokerAddr(t)
	for _, kind := range idleKinds {
		t.Run("client="+kind, func(t *testing.T) {
			for range 3 {
				c, err := dialIdle(t.Context(), kind, addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c()
			}
		})
	}
}

// The idle measurement's child process reports, for our client at both
// versions, what issue 17 keeps: three goroutines and at most 8 KiB of
// heap per client; and at most 20 KiB of goroutine stack (16.2 KiB: a
// 1.8 KiB frame on the session goroutine once made it 24.1).
func TestIdleChild(t *testing.T) {
	for _, kind := range []string{robust, robust5} {
		t.Run("client="+kind, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), idleChildEnv+"="+kind+" "+brokerAddr(t))
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatal(err)
			}
			var g, h, s float64
			if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "idle: %g %g %g", &g, &h, &s); err != nil {
				t.Fatalf("the child printed %q: %v", out, err)
			}
			if raceEnabled {
				h, s = min(h, 8<<10), min(s, 20<<10) // the race detector's, not the client's
			}
			if g != 3 || h < 1<<10 || h > 8<<10 || s > 20<<10 {
				t.Errorf("idle %s per client: %g goroutines, %.0f B of heap, %.0f B of stack; want 3, 1-8 KiB, at most 20 KiB",
					kind, g, h, s)
			}
		})
	}
}

// TestBenchOrder checks that every round runs every client once, and that
// over as many rounds as there are clients each runs at every place.
func TestBenchOrder(t *testing.T) {
	n := len(throughputClients)
	places := make(map[string]map[int]bool)
	for k := range n {
		t.Setenv(roundEnv, strconv.Itoa(k))
		order := benchOrder()
		if got, want := slices.Sorted(slices.Values(order)), slices.Sorted(slices.Values(throughputClients)); !slices.Equal(got, want) {
			t.Fatalf("round %d runs %v, want each of %v once", k, order, throughputClients)
		}
		for i, kind := range order {
			if places[kind] == nil {
				places[kind] = make(map[int]bool)
			}
			places[kind][i] = true
		}
	}
	for kind, at := range places {
		if len(at) != n {
			t.Errorf("%s ran at %d of the %d places over %d rounds", kind, len(at), n, n)
		}
	}
	t.Setenv(roundEnv, "")
	if got := benchOrder(); !slices.Equal(got, throughputClients) {
		t.Errorf("without %s the order is %v, want %v", roundEnv, got, throughputClients)
	}
}

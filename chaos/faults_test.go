package chaos_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/robustmqtt/mqtt/mqtttest"
)

// target is the broker under test, as the fault schedule sees it.
type target struct {
	name  string
	addr  string
	stop  func() error
	start func() error
	// awayRestarts keeps the subscribers away while the broker restarts:
	// their proxy cuts them and refuses them until after the restart.
	// Mosquitto needs it (see package doc); the embedded broker does not.
	awayRestarts bool
	// log returns the broker's log, for evidence; nil if it has none. With
	// a log, every message carries its number in its topic, for the log to
	// name it.
	log func() string
}

// The faults, and how often each is drawn.
const (
	faultRestart = iota
	faultCut
	faultBlackhole
	faultLatency
	faultSplit
	numFaults
)

var faultNames = [numFaults]string{"restart", "cut", "blackhole", "latency", "split-writes"}

var faultWeights = [numFaults]int{faultRestart: 3, faultCut: 4, faultBlackhole: 2, faultLatency: 2, faultSplit: 2}

// injector runs the seeded fault schedule against a broker and the two
// proxies in front of it (publishers' and subscribers'). One fault at a
// time: applied, held, healed, then a pause.
type injector struct {
	rng     *rand.Rand
	b       target
	proxies [2]*mqtttest.Proxy // publishers', subscribers'
	counts  [numFaults]int
	history []string // what was done when, for a failure's report
	began   time.Time
}

func newInjector(seed uint64, b target, pubProxy, subProxy *mqtttest.Proxy) *injector {
	return &injector{rng: rand.New(rand.NewPCG(seed, 0)), b: b, proxies: [2]*mqtttest.Proxy{pubProxy, subProxy}}
}

// run injects faults until ctx ends, then heals everything. It returns the
// first error of a broker restart.
func (in *injector) run(ctx context.Context) error {
	in.began = time.Now()
	defer in.heal()
	for {
		if !in.pause(ctx, 200*time.Millisecond+upTo(in.rng, 1300*time.Millisecond)) {
			return nil
		}
		if err := in.inject(ctx, in.draw()); err != nil {
			return err
		}
	}
}

// pause waits d, or until ctx ends (false).
func (in *injector) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (in *injector) draw() int {
	total := 0
	for _, w := range faultWeights {
		total += w
	}
	n := in.rng.IntN(total)
	for f, w := range faultWeights {
		if n < w {
			return f
		}
		n -= w
	}
	return faultCut
}

// proxiesHit draws which proxies a network fault hits: the publishers',
// the subscribers' or both.
func (in *injector) proxiesHit() ([]*mqtttest.Proxy, string) {
	switch in.rng.IntN(3) {
	case 0:
		return in.proxies[:1], "publishers"
	case 1:
		return in.proxies[1:], "subscribers"
	}
	return in.proxies[:], "everyone"
}

func (in *injector) note(format string, args ...any) {
	in.history = append(in.history, fmt.Sprintf("%7.3fs ", time.Since(in.began).Seconds())+fmt.Sprintf(format, args...))
}

// inject applies fault f, holds it and heals it. A hold is cut short when
// ctx ends, but the fault is always healed.
func (in *injector) inject(ctx context.Context, f int) error {
	in.counts[f]++
	switch f {
	case faultRestart:
		return in.restart(ctx)
	case faultCut:
		ps, who := in.proxiesHit()
		in.note("cut %s", who)
		for _, p := range ps {
			p.Cut()
		}
	case faultBlackhole:
		// Held past 2 keepalives, so that both ends have given the
		// connection up before traffic flows again: a connection that
		// lived through it would have a hole in its byte stream.
		ps, who := in.proxiesHit()
		d := 2*keepAlive + 500*time.Millisecond + upTo(in.rng, time.Second)
		in.note("black hole for %s, %s", who, d)
		for _, p := range ps {
			p.Blackhole(true)
		}
		// Never cut short, not even when the faults end: a hole shorter
		// than that would leave a live connection with bytes missing,
		// which no real network does (TCP retransmits), and no MQTT
		// endpoint resends on a live connection.
		in.pause(context.WithoutCancel(ctx), d)
		for _, p := range ps {
			p.Blackhole(false)
		}
	case faultLatency:
		ps, who := in.proxiesHit()
		lat := 10*time.Millisecond + upTo(in.rng, 190*time.Millisecond)
		d := time.Second + upTo(in.rng, 3*time.Second)
		in.note("latency %s for %s, %s", lat, who, d)
		for _, p := range ps {
			p.Latency(lat)
		}
		in.pause(ctx, d)
		for _, p := range ps {
			p.Latency(0)
		}
	case faultSplit:
		ps, who := in.proxiesHit()
		d := time.Second + upTo(in.rng, 3*time.Second)
		in.note("1-byte writes for %s, %s", who, d)
		for _, p := range ps {
			p.SplitWrites(1)
		}
		in.pause(ctx, d)
		for _, p := range ps {
			p.SplitWrites(0)
		}
	}
	return nil
}

// restart stops the broker, keeps it down for up to a second, and starts
// it again; with awayRestarts, the subscribers are cut before the stop
// and let back only a little after the start.
func (in *injector) restart(ctx context.Context) error {
	down := upTo(in.rng, time.Second)
	away := upTo(in.rng, 500*time.Millisecond)
	subs := in.proxies[1]
	if in.b.awayRestarts {
		in.note("restart, down %s, subscribers away until %s after", down, away)
		subs.Refuse(true)
		subs.Cut()
		defer subs.Refuse(false)
	} else {
		in.note("restart, down %s", down)
	}
	if err := in.b.stop(); err != nil {
		return fmt.Errorf("stop %s: %w", in.b.name, err)
	}
	in.pause(ctx, down)
	if err := in.b.start(); err != nil {
		return fmt.Errorf("start %s: %w", in.b.name, err)
	}
	if in.b.awayRestarts {
		in.pause(ctx, away)
	}
	return nil
}

// heal turns every network fault off.
func (in *injector) heal() {
	for _, p := range in.proxies {
		p.Blackhole(false)
		p.Latency(0)
		p.SplitWrites(0)
		p.Refuse(false)
	}
}

// summary says how many faults of each kind were injected.
func (in *injector) summary() string {
	var parts []string
	total := 0
	for f, n := range in.counts {
		parts = append(parts, fmt.Sprintf("%s %d", faultNames[f], n))
		total += n
	}
	return fmt.Sprintf("%d faults: %s", total, strings.Join(parts, ", "))
}

// upTo draws a duration in [0, d) from rng.
func upTo(rng *rand.Rand, d time.Duration) time.Duration {
	return time.Duration(rng.Int64N(int64(d)))
}

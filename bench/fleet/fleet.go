package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
)

// Strategy is a reconnect strategy under a name, for the storm.
type Strategy struct {
	Name    string
	Backoff backoff.Strategy // nil: the library's default
}

// The storm's strategies, by the names -storm takes.
var namedStrategies = map[string]Strategy{
	// The library's default: exponential from 1 s, doubling, capped at
	// 2 min, full jitter (each delay uniform in [0, base)).
	"default": {Name: "full jitter (default)"},
	// umqtt.robust's: a fixed 2 s between attempts.
	"fixed2s": {Name: "fixed 2 s", Backoff: backoff.Constant(2 * time.Second)},
	// The default's schedule without the jitter: 1 s, 2 s, 4 s, ... 2 min.
	"nojitter": {Name: "exponential, no jitter", Backoff: backoff.Exponential{
		Initial: backoff.DefaultInitial, Max: backoff.DefaultMax,
		Multiplier: backoff.DefaultMultiplier, Jitter: backoff.NoJitter,
	}},
}

// StrategyNames are the names ParseStrategies knows, in the order the
// README shows them.
var StrategyNames = []string{"default", "fixed2s", "nojitter"}

// ParseStrategies turns "default,fixed2s,nojitter" into strategies.
func ParseStrategies(list string) ([]Strategy, error) {
	var out []Strategy
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		s, ok := namedStrategies[n]
		if !ok {
			return nil, fmt.Errorf("fleet: no strategy %q (have %s)", n, strings.Join(StrategyNames, ", "))
		}
		out = append(out, s)
	}
	return out, nil
}

// Options say what to run. The zero value of every field but Clients,
// Broker and Client has a default.
type Options struct {
	Clients int    // how many clients
	Broker  string // Mochi or Mosquitto
	Client  string // one of Kinds

	Parallel  int           // connects in flight at once; 0: 64
	KeepAlive time.Duration // every client's; 0: 5 s
	// Idle is how long the idle fleet is watched to measure its CPU; 0: no
	// idle measurement.
	Idle time.Duration

	// Storms restart the broker under a fresh fleet once per strategy
	// (robustmqtt kinds only; the idle figures come from the first fleet).
	Storms []Strategy
	Down   time.Duration // how long the broker stays down in a storm
	Rate   int           // QoS 1 publishes per second during a storm; 0: 1000
	Lead   time.Duration // publishing before the broker is stopped; 0: 1 s
	Tail   time.Duration // publishing after the fleet is back; 0: 1 s
	// Wait bounds each wait of a storm: for the fleet to come back, for the
	// publishes' results, for the deliveries. 0: 5 min.
	Wait time.Duration

	Mosquitto string    // path of the mosquitto binary; "": /usr/sbin/mosquitto
	Log       io.Writer // progress and the children's logs; nil: discarded

	// Profiles, written when set: CPU over the idle window, heap after it
	// (or once connected, without one), goroutines of the connected fleet.
	CPUProfile, HeapProfile, GoroutineProfile string
	// DumpDir, when set, receives goroutine dumps of this process and of
	// the mochi broker every 3 s of a storm while clients are still
	// missing once the broker listens again: what everyone waits for.
	DumpDir string
}

func (o *Options) defaults() {
	if o.Parallel <= 0 {
		o.Parallel = 64
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 5 * time.Second
	}
	if o.Rate <= 0 {
		o.Rate = 1000
	}
	if o.Lead <= 0 {
		o.Lead = time.Second
	}
	if o.Tail <= 0 {
		o.Tail = time.Second
	}
	if o.Wait <= 0 {
		o.Wait = 5 * time.Minute
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Result is everything a run measured.
type Result struct {
	Clients   int
	Broker    string
	Client    string
	KeepAlive Duration
	Env       Env
	// Fleet is the first fleet: connect and idle figures.
	Fleet FleetResult
	// Storms, one per strategy, each with a fresh broker and fleet.
	Storms []StormResult `json:",omitempty"`
}

// FleetResult is what connecting and holding the fleet cost this process.
type FleetResult struct {
	Strategy  string `json:",omitempty"`
	Connected int    // clients connected and subscribed
	// Stopped says what stopped the fleet short of Clients, if it was.
	Stopped string `json:",omitempty"`

	ConnectTime      Duration // dial, CONNACK and SUBACK of every client, Parallel at a time
	ConnectP50       Duration // one client's dial to SUBACK
	ConnectP99       Duration
	ConnectsPerSec   float64
	ConnectCPU       Duration // this process, while connecting
	ConnectBrokerCPU Duration

	// Per client: the difference from before the fleet, divided by
	// Connected, after a full collection.
	GoroutinesPerClient float64
	HeapPerClient       float64 // bytes
	StackPerClient      float64 // bytes
	RSSPerClient        float64 // bytes of this process's resident set
	BrokerRSSPerClient  float64 // bytes of the broker's

	// Idle: keepalive only, over IdleWindow.
	IdleWindow         Duration `json:",omitempty"`
	IdleCPUPerClient   float64  `json:",omitempty"` // µs of CPU per client per second
	IdleCPUPercent     float64  `json:",omitempty"` // the whole fleet, % of one core
	IdleBrokerPercent  float64  `json:",omitempty"` // the broker, % of one core
	IdleCounterPercent float64  `json:",omitempty"`
	IdleLost           uint64   // connections lost while idle (none expected)
	// IdlePingsPerMinute is the PINGREQs per client per minute (robustmqtt:
	// from Stats.BytesWritten).
	IdlePingsPerMinute float64 `json:",omitempty"`
	// After the idle window (each client has had a keepalive round trip,
	// after which an idle robustmqtt connection gives its read buffer back).
	IdleGoroutinesPerClient float64 `json:",omitempty"`
	IdleHeapPerClient       float64 `json:",omitempty"`
	IdleStackPerClient      float64 `json:",omitempty"`

	CloseTime         Duration
	LeftGoroutines    int // goroutines above the baseline once every client was closed
	LeftHeapPerClient float64
}

// Env describes the machine of a run.
type Env struct {
	Go, OS    string
	CPUs      int
	MemGiB    float64
	NoFile    uint64 // RLIMIT_NOFILE in force
	Ports     string // /proc/sys/net/ipv4/ip_local_port_range
	Somaxconn string
	Started   time.Time
	// LoadAvg is /proc/loadavg at the start: other work on the machine
	// takes CPU from the fleet and the broker.
	LoadAvg string
}

// Run connects the fleet, measures it, and runs the storms.
func Run(ctx context.Context, opt Options) (*Result, error) {
	opt.defaults()
	if opt.Clients <= 0 {
		return nil, errors.New("fleet: Clients must be positive")
	}
	if !slices.Contains(Kinds, opt.Client) {
		return nil, fmt.Errorf("fleet: no client %q (have %s)", opt.Client, strings.Join(Kinds, ", "))
	}
	robust := opt.Client == Robust || opt.Client == Robust5
	if len(opt.Storms) > 0 && !robust {
		return nil, fmt.Errorf("fleet: storms take a robustmqtt fleet (the strategies are this library's), not %s", opt.Client)
	}
	// This process and the broker hold a descriptor per client; room for
	// the attempts in flight of a storm too. Without CAP_SYS_RESOURCE the
	// hard limit is as high as it goes.
	nofile, err := raiseFileLimit(uint64(2*opt.Clients + 4096))
	if err != nil {
		return nil, fmt.Errorf("fleet: raising the file limit: %w", err)
	}
	res := &Result{Clients: opt.Clients, Broker: opt.Broker, Client: opt.Client, KeepAlive: Duration(opt.KeepAlive), Env: env(nofile)}
	if len(opt.Storms) == 0 {
		fr, _, err := runFleet(ctx, opt, Strategy{}, true)
		res.Fleet = fr
		return res, err
	}
	for i, s := range opt.Storms {
		fmt.Fprintf(opt.Log, "fleet: storm %d of %d: %s\n", i+1, len(opt.Storms), s.Name)
		fr, sr, err := runFleet(ctx, opt, s, i == 0)
		if i == 0 {
			res.Fleet = fr
		}
		if sr != nil {
			res.Storms = append(res.Storms, *sr)
		}
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

func env(nofile uint64) Env {
	e := Env{Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, CPUs: runtime.NumCPU(), NoFile: nofile, Started: time.Now().UTC()}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		e.Ports = strings.Join(strings.Fields(string(b)), "-")
	}
	e.LoadAvg = loadAvg()
	if b, err := os.ReadFile("/proc/sys/net/core/somaxconn"); err == nil {
		e.Somaxconn = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(b), "\n", 2)[0], "MemTotal:"), "%f", &kb)
		e.MemGiB = kb / (1 << 20)
	}
	return e
}

// runFleet starts a broker and the counter, connects the fleet, measures it
// (idle too, if idle), runs the storm if s names one... and closes it all.
func runFleet(ctx context.Context, opt Options, s Strategy, idle bool) (fr FleetResult, sr *StormResult, err error) {
	fr.Strategy = s.Name
	b, err := startBroker(opt.Broker, opt.Mosquitto, opt.Log, opt.DumpDir)
	if err != nil {
		return fr, nil, err
	}
	defer func() {
		if cerr := b.close(); cerr != nil && err == nil {
			err = fmt.Errorf("fleet: closing the broker: %w", cerr)
		}
	}()
	g, err := startCounter(b.addr(), opt.Log)
	if err != nil {
		// The storm still runs; its timeline stays empty.
		fmt.Fprintf(opt.Log, "fleet: no counter, so no timeline of attempts: %v\n", err)
		g = nil
	}
	defer func() {
		if cerr := g.close(); cerr != nil && err == nil {
			err = fmt.Errorf("fleet: closing the counter: %w", cerr)
		}
	}()

	before := measure()
	brokerBefore := pidRSS(b.pid())
	members := connectAll(ctx, opt, s, b.addr(), b.pid(), &fr)
	defer func() {
		closeAll(members, before, &fr)
		fmt.Fprintf(opt.Log, "fleet: closed in %v; %d goroutines above the baseline\n", fr.CloseTime, fr.LeftGoroutines)
	}()
	n := len(members)
	if n == 0 {
		return fr, nil, fmt.Errorf("fleet: no client connected: %s", fr.Stopped)
	}
	after := measure()
	fr.GoroutinesPerClient = float64(after.Goroutines-before.Goroutines) / float64(n)
	fr.HeapPerClient = (float64(after.Heap) - float64(before.Heap)) / float64(n)
	fr.StackPerClient = (float64(after.Stack) - float64(before.Stack)) / float64(n)
	fr.RSSPerClient = (float64(after.RSS) - float64(before.RSS)) / float64(n)
	fr.BrokerRSSPerClient = (float64(pidRSS(b.pid())) - float64(brokerBefore)) / float64(n)
	fmt.Fprintf(opt.Log, "fleet: %d %s clients connected in %v: %.2f goroutines, %.1f KiB heap, %.1f KiB stack each\n",
		n, opt.Client, fr.ConnectTime, fr.GoroutinesPerClient, fr.HeapPerClient/1024, fr.StackPerClient/1024)
	if err := writeProfile(opt.HeapProfile, "heap", idle && opt.Idle <= 0); err != nil {
		return fr, nil, err
	}
	if err := writeProfile(opt.GoroutineProfile, "goroutine", idle); err != nil {
		return fr, nil, err
	}

	if idle && opt.Idle > 0 {
		if err := measureIdle(opt, members, b.pid(), g.pid(), &fr); err != nil {
			return fr, nil, err
		}
		u := measure()
		fr.IdleGoroutinesPerClient = float64(u.Goroutines-before.Goroutines) / float64(n)
		fr.IdleHeapPerClient = (float64(u.Heap) - float64(before.Heap)) / float64(n)
		fr.IdleStackPerClient = (float64(u.Stack) - float64(before.Stack)) / float64(n)
		fmt.Fprintf(opt.Log, "fleet: after the idle window: %.2f goroutines, %.1f KiB heap, %.1f KiB stack each\n",
			fr.IdleGoroutinesPerClient, fr.IdleHeapPerClient/1024, fr.IdleStackPerClient/1024)
		if err := writeProfile(opt.HeapProfile, "heap", true); err != nil {
			return fr, nil, err
		}
	}
	if fr.Stopped != "" {
		return fr, nil, fmt.Errorf("fleet: %d of %d clients connected: %s", n, opt.Clients, fr.Stopped)
	}
	if s.Name == "" {
		return fr, nil, nil
	}
	robust := make([]*robustMember, n)
	for i, m := range members {
		robust[i] = m.(*robustMember)
	}
	sr, err = storm(ctx, opt, s, b, g, robust)
	clear(robust)
	return fr, sr, err
}

func writeProfile(path, name string, now bool) error {
	if path == "" || !now {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup(name).WriteTo(f, 0)
}

// connectAll connects opt.Clients members, opt.Parallel at a time. It
// stops at the first failure; fr says how far it got and why it stopped.
func connectAll(ctx context.Context, opt Options, s Strategy, addr string, brokerPid int, fr *FleetResult) []member {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	members := make([]member, opt.Clients)
	took := make([]time.Duration, opt.Clients)
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	run := fmt.Sprintf("%d", time.Now().UnixNano()%1e6)
	cpu0, bcpu0 := processCPU(), pidCPU(brokerPid)
	start := time.Now()
	for range min(opt.Parallel, opt.Clients) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= opt.Clients || ctx.Err() != nil {
					return
				}
				mc := memberConfig{
					kind: opt.Client, addr: addr, keepAlive: opt.KeepAlive, strategy: s.Backoff,
					id: fmt.Sprintf("fleet-%s-%d", run, i), topic: topicOf(i),
				}
				t0 := time.Now()
				dctx, dcancel := context.WithTimeout(ctx, time.Minute)
				m, err := dialMember(dctx, mc)
				dcancel()
				if err != nil {
					errOnce.Do(func() {
						firstErr = fmt.Errorf("client %d: %w", i, err)
						cancel()
					})
					return
				}
				took[i] = time.Since(t0)
				members[i] = m
			}
		}()
	}
	wg.Wait()
	fr.ConnectTime = Duration(time.Since(start))
	fr.ConnectCPU = Duration(processCPU() - cpu0)
	fr.ConnectBrokerCPU = Duration(pidCPU(brokerPid) - bcpu0)
	var out []member
	var lat []time.Duration
	for i, m := range members {
		if m != nil {
			out = append(out, m)
			lat = append(lat, took[i])
		}
	}
	fr.Connected = len(out)
	if firstErr != nil {
		fr.Stopped = firstErr.Error()
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		fr.ConnectP50 = Duration(lat[len(lat)/2])
		fr.ConnectP99 = Duration(lat[percentileIndex(len(lat), 0.99)])
		fr.ConnectsPerSec = float64(len(out)) / time.Duration(fr.ConnectTime).Seconds()
	}
	return out
}

func topicOf(i int) string { return fmt.Sprintf("fleet/%d", i) }

// percentileIndex is the index of the p-th quantile in a sorted slice of n
// (the smallest value at or above which a fraction p of them lie).
func percentileIndex(n int, p float64) int {
	i := int(float64(n)*p+0.999999) - 1
	return min(max(i, 0), n-1)
}

// measureIdle watches the connected fleet for opt.Idle: nobody publishes,
// only keepalives flow.
func measureIdle(opt Options, members []member, brokerPid, counterPid int, fr *FleetResult) error {
	var lost0, wrote0 uint64
	for _, m := range members {
		lost0 += m.lost()
		if r, ok := m.(*robustMember); ok {
			wrote0 += r.c.Stats().BytesWritten
		}
	}
	if opt.CPUProfile != "" {
		f, err := os.Create(opt.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Fprintf(opt.Log, "fleet: idle for %v (keepalive %v)\n", opt.Idle, opt.KeepAlive)
	cpu0, b0, g0 := processCPU(), pidCPU(brokerPid), pidCPU(counterPid)
	t0 := time.Now()
	waitFor(opt.Idle)
	wall := time.Since(t0)
	cpu, bcpu, gcpu := processCPU()-cpu0, pidCPU(brokerPid)-b0, pidCPU(counterPid)-g0
	var lost, wrote uint64
	for _, m := range members {
		lost += m.lost()
		if r, ok := m.(*robustMember); ok {
			wrote += r.c.Stats().BytesWritten
		}
	}
	n := float64(len(members))
	fr.IdleWindow = Duration(wall)
	fr.IdleCPUPerClient = float64(cpu.Microseconds()) / n / wall.Seconds()
	fr.IdleCPUPercent = 100 * cpu.Seconds() / wall.Seconds()
	fr.IdleBrokerPercent = 100 * bcpu.Seconds() / wall.Seconds()
	fr.IdleCounterPercent = 100 * gcpu.Seconds() / wall.Seconds()
	fr.IdleLost = lost - lost0
	// Idle, a robustmqtt client writes nothing but PINGREQs, 2 bytes each.
	fr.IdlePingsPerMinute = float64(wrote-wrote0) / 2 / n / wall.Minutes()
	fmt.Fprintf(opt.Log, "fleet: idle: %.2f µs CPU per client per second (%.1f%% of a core), broker %.1f%%, %d connections lost\n",
		fr.IdleCPUPerClient, fr.IdleCPUPercent, fr.IdleBrokerPercent, fr.IdleLost)
	return nil
}

// closeAll closes every member, 64 at a time, and sees what is left of
// them.
func closeAll(members []member, before usage, fr *FleetResult) {
	start := time.Now()
	work := make(chan member)
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				m.close()
			}
		}()
	}
	for i, m := range members {
		work <- m
		members[i] = nil // so that what is left on the heap is what the closed clients left
	}
	close(work)
	wg.Wait()
	fr.CloseTime = Duration(time.Since(start))
	// Close returns once the client's goroutines have exited (robustmqtt);
	// the peers' may take a moment more: wait for the count to settle.
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for runtime.NumGoroutine() > before.Goroutines && time.Now().Before(deadline) {
		<-tick.C
	}
	u := measure()
	fr.LeftGoroutines = u.Goroutines - before.Goroutines
	if fr.Connected > 0 {
		fr.LeftHeapPerClient = (float64(u.Heap) - float64(before.Heap)) / float64(fr.Connected)
	}
}

// Duration is a time.Duration that JSON shows as text ("1.5s").
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// demoConfig is what the demo's flags set.
type demoConfig struct {
	duration     time.Duration // how long the devices publish under faults
	faultEvery   time.Duration // time between faults; 0: none
	buttonWindow time.Duration // relevance window of a button press
	url          string        // the user's broker; "": the embedded one
	terminal     bool          // redraw in place
}

// drain bounds how long, after the faults end, the devices may take to
// finish what they owe, and the monitor to receive it.
const drain = 20 * time.Second

func demoCommand(ctx context.Context, args []string, std stdio) int {
	stdout, stderr := std.out, std.errOut
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mqtt demo [flags]")
		fmt.Fprintln(stderr)
		fmt.Fprintln(stderr, "An embedded broker, a monitor and three devices (temperature: QoS 0, never retries;")
		fmt.Fprintln(stderr, "button: QoS 1 with a relevance window; window alarm: QoS 2, persistent, jittered")
		fmt.Fprintln(stderr, "backoff), under a broker restart, a cut or a black hole every few seconds.")
		fmt.Fprintln(stderr, "With -url the devices use your broker instead, through the fault proxy: cuts and")
		fmt.Fprintln(stderr, "black holes, no restarts. Exit status 0 only if no acknowledged button press or")
		fmt.Fprintln(stderr, "alarm was lost.")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	cfg := demoConfig{terminal: isTerminal(stdout)}
	fs.DurationVar(&cfg.duration, "duration", 20*time.Second, "how long the devices publish while faults are injected")
	fs.DurationVar(&cfg.faultEvery, "faults", 3*time.Second, "time between faults; 0: no faults")
	fs.DurationVar(&cfg.buttonWindow, "window", 15*time.Second, "relevance window of a button press")
	fs.StringVar(&cfg.url, "url", "", "your broker, instead of the embedded one: tcp://, mqtt://, tls://, mqtts:// or ssl://\n"+
		"[user[:password]@]host[:port][/topic prefix] (ws:// and wss:// with -faults 0 only); the\n"+
		"topics are under the prefix, by default mqtt-demo/<process id>/")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || cfg.duration <= 0 || cfg.faultEvery < 0 || cfg.buttonWindow <= 0 {
		fmt.Fprintln(stderr, "mqtt demo: takes no arguments; -duration and -window must be positive, -faults 0 or more")
		fs.Usage()
		return 2
	}
	lost, err := runDemo(ctx, cfg, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "mqtt demo:", err)
		var usage usageError
		if errors.As(err, &usage) {
			return 2
		}
		return 1
	}
	if lost > 0 {
		return 1
	}
	return 0
}

// runDemo runs the demo and returns how many acknowledged QoS 1 and 2
// messages (button presses and alarms) never reached the monitor.
func runDemo(ctx context.Context, cfg demoConfig, out io.Writer) (lost int, err error) {
	var tgt *target
	if cfg.url == "" {
		tgt, err = embeddedTarget()
	} else {
		tgt, err = userTarget(cfg.url, cfg.faultEvery > 0)
	}
	if err != nil {
		return 0, err
	}
	defer tgt.close()

	devs := devices(tgt, cfg.buttonWindow)
	if cfg.url != "" {
		// The persistent sessions the demo made are not left on the
		// user's broker: once the monitor and the devices are gone (the
		// deferred calls below run first).
		cfgs := []mqtt.Config{tgt.config("monitor")}
		for _, d := range devs {
			cfgs = append(cfgs, d.cfg)
		}
		defer tgt.forgetSessions(cfgs)
	}
	mon, err := startMonitor(ctx, tgt, devs)
	if err != nil {
		if cfg.url != "" && tgt.proxy != nil {
			// The error names the proxy, which stands for the broker.
			return 0, fmt.Errorf("start the monitor, through the fault proxy on %s to %s: %w", tgt.proxy.Addr(), tgt.userServer, err)
		}
		return 0, fmt.Errorf("start the monitor: %w", err)
	}
	defer mon.close()

	now := time.Now()
	d := &display{w: out, terminal: cfg.terminal, start: now, lastLine: now}
	f := &faults{broker: tgt.broker, proxy: tgt.proxy, events: make(chan string, 8)}
	if cfg.faultEvery == 0 {
		f.proxy, f.broker = nil, nil
	}
	fmt.Fprintf(out, "mqtt demo: %s; %s for %s\n\n", tgt.describe, f.describe(cfg.faultEvery), cfg.duration)

	publishing, stopPublishing := context.WithCancel(ctx)
	defer stopPublishing()
	var devWG sync.WaitGroup
	for _, dev := range devs {
		devWG.Go(func() { dev.run(publishing, drain) })
	}

	faulting, stopFaults := context.WithTimeout(publishing, cfg.duration)
	defer stopFaults()
	var faultWG sync.WaitGroup
	faultWG.Go(func() { f.run(faulting, cfg.faultEvery) })

	refresh := time.NewTicker(200 * time.Millisecond)
	defer refresh.Stop()
	status := func(extra string) string {
		return fmt.Sprintf("%6.1fs of %s  %s  %s", time.Since(d.start).Seconds(), cfg.duration, f.summary(), extra)
	}
	for running := true; running; {
		select {
		case e := <-f.events:
			d.event("fault: %s", e)
		case <-refresh.C:
			d.progress(snapshot(devs, mon), status(f.current()))
		case <-faulting.Done():
			running = false
		}
	}
	faultWG.Wait()
	for len(f.events) > 0 {
		d.event("fault: %s", <-f.events)
	}
	d.event("faults over; the devices finish what they owe (at most %s)", drain)
	stopPublishing()
	devWG.Wait()

	// Every acknowledged press and alarm must reach the monitor.
	acked := make([][]int, len(devs))
	for i, dev := range devs {
		if dev.qos > mqtt.AtMostOnce {
			acked[i] = dev.ackedSeqs()
		}
	}
	waitCtx, cancel := context.WithTimeout(context.Background(), drain)
	mon.waitFor(waitCtx, acked)
	cancel()

	rows := snapshot(devs, mon)
	var missing []string
	for i, dev := range devs {
		if dev.qos > mqtt.AtMostOnce {
			m := mon.missing(i, acked[i])
			rows[i].lost = int64(len(m))
			lost += len(m)
			if len(m) > 0 {
				missing = append(missing, fmt.Sprintf("%s %v", dev.name, m))
			}
		} else {
			rows[i].lost = max(rows[i].acked-rows[i].delivered, 0)
		}
	}
	d.erase()
	fmt.Fprintln(out)
	fmt.Fprint(out, summaryTable(rows, f.summary(), mon.reconnects.Load()-1))
	if lost > 0 {
		fmt.Fprintf(out, "\nLOST: %d acknowledged messages never reached the monitor: %s\n", lost, strings.Join(missing, "; "))
	} else {
		fmt.Fprintln(out, "\nNo acknowledged button press or alarm was lost.")
	}
	return lost, nil
}

// summaryTable is the end of the demo: the final numbers, what they mean.
func summaryTable(rows []row, faults string, monitorReconnects int64) string {
	var b strings.Builder
	fmt.Fprintln(&b, header+"  lost")
	for _, r := range rows {
		lost := fmt.Sprint(r.lost)
		if r.qos == 0 {
			lost += " (QoS 0 may lose)"
		}
		fmt.Fprintf(&b, "%s  %4s\n", r, lost)
	}
	fmt.Fprintf(&b, "\n%s; the monitor reconnected %s.\n", faults, plural(int(max(monitorReconnects, 0)), "time"))
	fmt.Fprintln(&b, "sent: published by the device; acked: the broker confirmed it (QoS 0: written);")
	fmt.Fprintln(&b, "withdrawn: given up before it was sent (relevance window closed, or no connection);")
	fmt.Fprintln(&b, "in doubt: the window closed after it was sent; lost: acked but never delivered.")
	return b.String()
}

// faults injects a fault every so often, in turn: a broker restart (the
// embedded broker only), a cut of every connection, a black hole. With
// neither a broker nor a proxy it injects nothing.
type faults struct {
	broker *mqtttest.Broker // nil: a broker the demo cannot restart
	proxy  *mqtttest.Proxy  // nil: no faults
	events chan string      // what was injected, for the display

	mu       sync.Mutex
	now      string // the fault in force, "" if none
	restarts int
	cuts     int
	holes    int
}

// kinds are the faults f takes turns at.
func (f *faults) kinds() []string {
	switch {
	case f.proxy == nil:
		return nil
	case f.broker == nil:
		return []string{"cut", "hole"}
	}
	return []string{"restart", "cut", "hole"}
}

// describe says which faults come how often.
func (f *faults) describe(every time.Duration) string {
	switch {
	case f.proxy == nil:
		return "no faults"
	case f.broker == nil:
		return fmt.Sprintf("a cut or a black hole every %s (restarts need the embedded broker)", every)
	}
	return fmt.Sprintf("faults every %s", every)
}

// run injects faults until ctx ends, and leaves everything healed.
func (f *faults) run(ctx context.Context, every time.Duration) {
	kinds := f.kinds()
	if len(kinds) == 0 {
		return
	}
	defer f.proxy.Blackhole(false)
	if f.broker != nil {
		defer f.broker.Start()
	}
	for n := 0; ; n++ {
		if !sleep(ctx, every) {
			return
		}
		switch kinds[n%len(kinds)] {
		case "restart":
			f.set("broker down", func() { f.restarts++ })
			f.broker.Stop()
			f.report("broker restart: down for 1s, sessions kept")
			sleep(ctx, time.Second)
			f.broker.Start()
		case "cut":
			f.set("", func() { f.cuts++ })
			f.proxy.Cut()
			f.report("cut every connection")
		case "hole":
			// Longer than 1.5 keepalives: every client notices.
			f.set("black hole", func() { f.holes++ })
			f.proxy.Blackhole(true)
			f.report("black hole: the network silently carries nothing for 2.5s")
			// Never cut short, not even when the faults end: the proxy
			// discards what it reads meanwhile, so a shorter hole would
			// leave live connections with bytes missing from their
			// streams, which TCP never does and no MQTT endpoint resends
			// (a press or alarm then waits for its PUBACK until the drain
			// gives up). Past two keepalives, both ends give up the link.
			sleep(context.WithoutCancel(ctx), 2500*time.Millisecond)
			f.proxy.Blackhole(false)
		}
		f.set("", func() {})
	}
}

func (f *faults) set(now string, count func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
	count()
}

func (f *faults) report(e string) {
	select {
	case f.events <- e:
	default: // the display is behind; the summary counts it anyway
	}
}

func (f *faults) current() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.now == "" {
		return ""
	}
	return "now: " + f.now
}

func (f *faults) summary() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.proxy == nil:
		return "no faults"
	case f.broker == nil:
		return fmt.Sprintf("faults: %s, %s", plural(f.cuts, "cut"), plural(f.holes, "black hole"))
	}
	return fmt.Sprintf("faults: %s, %s, %s", plural(f.restarts, "broker restart"), plural(f.cuts, "cut"), plural(f.holes, "black hole"))
}

// plural says "1 cut", "2 cuts".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// sleep waits d, or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

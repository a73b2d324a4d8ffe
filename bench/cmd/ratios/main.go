// Command ratios reads the output of this module's benchmarks (go test
// -bench, any -count) and prints the comparison tables of the README as
// Markdown: first which call of each client every row measures (each row
// is one kind of call for every client: synchronous, or pipelined with 100
// in flight), then the rates against each broker (mochi, sink), each figure
// the median over the runs, also shown as a fraction of the raw client's
// and as ratios to paho.golang, paho.mqtt.golang and MQTT 3.1.1; the
// latency of the synchronous calls; CPU and allocations per message; and
// every target of issue 17 checked (and issue 6's on the codec).
//
//	go test -run '^$' -bench . -count 5 | tee results.txt
//	go run ./cmd/ratios results.txt
package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The client names used in the benchmark names.
const (
	ours   = "robustmqtt"
	ours5  = "robustmqtt-v5"
	pahoV3 = "paho.mqtt.golang"
	pahoV5 = "paho.golang"
	auto   = "paho.golang-auto"
	raw    = "raw"
	raw5   = "raw-v5" // the raw client in MQTT 5: what MQTT 5 costs the broker
)

func main() {
	var in io.Reader = os.Stdin
	if len(os.Args) > 1 {
		var readers []io.Reader
		for _, name := range os.Args[1:] {
			f, err := os.Open(name)
			if err != nil {
				fmt.Fprintln(os.Stderr, "ratios:", err)
				os.Exit(1)
			}
			defer f.Close()
			readers = append(readers, f)
		}
		in = io.MultiReader(readers...)
	}
	r, err := parse(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ratios:", err)
		os.Exit(1)
	}
	if len(r) == 0 {
		fmt.Fprintln(os.Stderr, "ratios: no benchmark results in the input")
		os.Exit(1)
	}
	t := &tables{r: r, w: bufio.NewWriter(os.Stdout)}
	t.calls()
	t.throughput()
	t.latency()
	t.cancelable()
	t.cpu()
	t.allocs()
	t.idle()
	t.resume()
	t.store()
	t.codec()
	t.targets()
	t.w.Flush()
}

// results maps a benchmark name (without the -GOMAXPROCS suffix) and a
// unit to the values measured, one per run.
type results map[string]map[string][]float64

// inProcess reports whether the input says the broker ran in the
// benchmarks' process (the "broker: in-process" line the benchmarks
// print), so that allocation figures include the broker's.
func (r results) inProcess() bool { return r["broker"] != nil && r["broker"]["in-process"] != nil }

var procs = regexp.MustCompile(`-\d+$`)

func parse(in io.Reader) (results, error) {
	r := results{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "broker:" {
			r["broker"] = map[string][]float64{f[1]: {1}}
			continue
		}
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := procs.ReplaceAllString(f[0], "")
		if r[name] == nil {
			r[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			r[name][f[i+1]] = append(r[name][f[i+1]], v)
		}
	}
	return r, sc.Err()
}

// get is the median of name's values in unit, NaN when there are none.
func (r results) get(name, unit string) float64 {
	vs := r[name][unit]
	if len(vs) == 0 {
		return math.NaN()
	}
	return median(vs)
}

// ratio is a÷b in unit: the median of the per-run ratios when both were
// measured the same number of times (compare.sh runs every benchmark once
// per round, so run i of each was measured at about the same moment), else
// the ratio of the medians.
func (r results) ratio(a, b, unit string) float64 {
	va, vb := r[a][unit], r[b][unit]
	if len(va) == 0 || len(va) != len(vb) {
		return r.get(a, unit) / r.get(b, unit)
	}
	q := make([]float64, len(va))
	for i := range va {
		q[i] = va[i] / vb[i]
	}
	return median(q)
}

func median(vs []float64) float64 {
	vs = slices.Clone(vs)
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}

type tables struct {
	r results
	w *bufio.Writer
	// checks are the targets, filled in while the tables are printed.
	checks []check
}

type check struct {
	what   string
	got    string
	target string
	met    bool
}

func (t *tables) printf(format string, args ...any) { fmt.Fprintf(t.w, format, args...) }

// check records a target; v is the measured figure, and a target with
// nothing measured (a partial run) is left out.
func (t *tables) check(what string, v float64, got, target string, met bool) {
	if math.IsNaN(v) {
		return
	}
	t.checks = append(t.checks, check{what, got, target, met})
}

// The brokers, by the name used in the benchmark names.
const (
	mochi = "mochi"
	sink  = "sink"
)

// mode is one row of the throughput tables: one kind of call, the same for
// every client.
type mode struct {
	key       string // the benchmark name's mode=
	label     string
	bench     string   // BenchmarkPublish or BenchmarkRoundTrip
	brokers   []string // the brokers it runs against
	maxAllocs float64  // issue 17's "keep" target for our allocs per message; 0: none
	// calls names the call measured, per client: ours (both versions),
	// paho.mqtt.golang, paho.golang, raw.
	calls [4]string
}

var both = []string{mochi, sink}

var modes = []mode{
	{"qos0-sync", "sync QoS 0", "BenchmarkPublish", both, 1, [4]string{
		"`Publish(ctx, m)`: returns once written", "`Publish(...).Wait()`: returns once written",
		"`Publish(ctx, p)`: returns once written", "one `Write` of a pre-encoded frame"}},
	{"qos1-sync", "sync QoS 1", "BenchmarkPublish", both, 1, [4]string{
		"`Publish(ctx, m)`: returns on the PUBACK", "`Publish(...).Wait()`",
		"`Publish(ctx, p)`", "`Write`, then read the PUBACK, in one goroutine"}},
	{"qos2-sync", "sync QoS 2", "BenchmarkPublish", both, 0, [4]string{
		"`Publish(ctx, m)`: returns on the PUBCOMP", "`Publish(...).Wait()`",
		"`Publish(ctx, p)`", "`Write`, read PUBREC, `Write` PUBREL, read PUBCOMP, in one goroutine"}},
	{"qos0-async", "async QoS 0", "BenchmarkPublish", both, 0, [4]string{
		"`PublishAsync`, result ignored", "`Publish`, token ignored",
		"`Publish(ctx, p)` (it has no asynchronous call)", "100 pre-encoded frames per `Write`"}},
	{"qos1-win100", "QoS 1, 100 in flight", "BenchmarkPublish", both, 3, [4]string{
		"`PublishAsync`; wait for the result of the publish 100 back", "`Publish`; wait for the token 100 back",
		"100 goroutines, each calling `Publish(ctx, p)`", "pre-encoded frames in batches, at most 100 unacknowledged; a reader goroutine"}},
	{"qos2-win100", "QoS 2, 100 in flight", "BenchmarkPublish", both, 3, [4]string{
		"the same", "the same", "the same", "the same; the reader answers PUBRECs with pre-encoded PUBRELs"}},
	{"qos1-win100", "round trip QoS 1, 100 in flight (pub + sub)", "BenchmarkRoundTrip", []string{mochi}, 0, [4]string{
		"QoS 1, 100 in flight; a second client reads `Messages()`", "the same; the subscriber's `Subscribe` callback",
		"the same; the subscriber's `OnPublishReceived`", "the same; the subscriber answers each read's PUBLISHes with one write of PUBACKs"}},
}

// name is the benchmark of mode m against broker for client.
func (m mode) name(broker, client string) string {
	return m.bench + "/broker=" + broker + "/mode=" + m.key + "/client=" + client
}

// roundTrip reports whether m is the round trip row.
func (m mode) roundTrip() bool { return m.bench == "BenchmarkRoundTrip" }

func (t *tables) rate(m mode, broker, client string) float64 {
	return t.r.get(m.name(broker, client), "msgs/s")
}

// rateRatio is client a's rate over client b's, paired by run.
func (t *tables) rateRatio(m mode, broker, a, b string) float64 {
	return t.r.ratio(m.name(broker, a), m.name(broker, b), "msgs/s")
}

// measured reports whether any client of m was measured against broker.
func (t *tables) measured(m mode, broker string) bool {
	for _, c := range []string{raw, ours, ours5, pahoV3, pahoV5} {
		if t.r[m.name(broker, c)] != nil {
			return true
		}
	}
	return false
}

func (t *tables) calls() {
	t.printf("### The call measured in each row\n\n")
	t.printf("| row | %s, %s | %s | %s | %s |\n|---|---|---|---|---|\n", ours, ours5, pahoV3, pahoV5, raw)
	for _, m := range modes {
		t.printf("| %s | %s |\n", m.label, strings.Join(m.calls[:], " | "))
	}
	t.printf("\n")
}

// ratioCell formats a ratio, a dash when it was not measured.
func ratioCell(q float64) string {
	if math.IsNaN(q) {
		return "–"
	}
	return fmt.Sprintf("%.2fx", q)
}

func (t *tables) throughput() {
	for _, broker := range both {
		title := "the mochi broker (routes; a child process)"
		if broker == sink {
			title = "the sink (acknowledges at once, routes nothing; a child process)"
		}
		t.printf("### Throughput against %s: msgs/s, median (%% of raw and ratios: median of the per-round ratios)\n\n", title)
		t.printf("| row | raw | %s | %s | %s | %s | %s ÷ %s | %s ÷ %s | %s ÷ %s | v5 ÷ 3.1.1 | raw-v5 ÷ raw |\n",
			ours, ours5, pahoV3, pahoV5, ours, pahoV5, ours5, pahoV5, ours, pahoV3)
		t.printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, m := range modes {
			if !slices.Contains(m.brokers, broker) || !t.measured(m, broker) {
				continue
			}
			cell := func(c string) string {
				v := t.rate(m, broker, c)
				if math.IsNaN(v) {
					return "–"
				}
				return fmt.Sprintf("%s (%.0f%%)", kilo(v), 100*t.rateRatio(m, broker, c, raw))
			}
			t.printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", m.label, kilo(t.rate(m, broker, raw)),
				cell(ours), cell(ours5), cell(pahoV3), cell(pahoV5),
				ratioCell(t.rateRatio(m, broker, ours, pahoV5)), ratioCell(t.rateRatio(m, broker, ours5, pahoV5)),
				ratioCell(t.rateRatio(m, broker, ours, pahoV3)), ratioCell(t.rateRatio(m, broker, ours5, ours)),
				ratioCell(t.rateRatio(m, broker, raw5, raw)))
		}
		t.printf("\n")
	}
	t.throughputTargets()
}

// throughputTargets records issue 17's targets on rates.
func (t *tables) throughputTargets() {
	pct := func(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) }
	for _, m := range modes {
		// Synchronous QoS 0 at least as fast as paho.golang's Publish.
		if m.key == "qos0-sync" {
			for _, c := range []string{ours, ours5} {
				q := t.rateRatio(m, mochi, c, pahoV5)
				t.check(m.label+" (mochi): "+c+" ÷ paho.golang", q, ratioCell(q), ">= 1.0x (aim 1.3x)", q >= 1)
			}
		}
		// Against mochi, fractions of raw.
		want := map[string]float64{"qos1-sync": 0.8, "qos1-win100": 0.9, "qos2-win100": 0.9}[m.key]
		if m.roundTrip() {
			want = 0.9
		}
		if want > 0 {
			q := t.rateRatio(m, mochi, ours, raw)
			t.check(m.label+" (mochi): robustmqtt vs raw", q, pct(q), fmt.Sprintf(">= %.0f%%", 100*want), q >= want)
		}
		// Pipelined against the sink, where mochi no longer sets the
		// ceiling.
		if m.key == "qos1-win100" && !m.roundTrip() || m.key == "qos2-win100" {
			q := t.rateRatio(m, sink, ours, raw)
			t.check(m.label+" (sink): robustmqtt vs raw", q, pct(q), ">= 50%", q >= 0.5)
		}
	}
	// MQTT 5 within 10% of MQTT 3.1.1 in every row.
	for _, broker := range both {
		worst, row, missed, rows := math.NaN(), "", 0, 0
		for _, m := range modes {
			if !slices.Contains(m.brokers, broker) {
				continue
			}
			q := t.rateRatio(m, broker, ours5, ours)
			if math.IsNaN(q) {
				continue
			}
			rows++
			if q < 0.9 {
				missed++
			}
			if math.IsNaN(worst) || q < worst {
				worst, row = q, m.label
			}
		}
		t.check(fmt.Sprintf("every row (%s): robustmqtt-v5 ÷ robustmqtt; the worst, %s (%d of %d rows under 0.90x)", broker, row, missed, rows),
			worst, fmt.Sprintf("%.3fx", worst), ">= 0.90x", worst >= 0.9)
		// The same row for the raw client: what MQTT 5 costs the broker
		// itself, which no client removes.
		if m, ok := modeOf(row); ok {
			if q := t.rateRatio(m, broker, raw5, raw); !math.IsNaN(q) {
				t.check(fmt.Sprintf("for reference (%s, %s): raw-v5 ÷ raw, the broker's own MQTT 5 cost; robustmqtt-v5 ÷ raw-v5 is %s", broker, row, pctOf(t.rateRatio(m, broker, ours5, raw5))),
					q, fmt.Sprintf("%.3fx", q), noTarget, true)
			}
		}
	}
}

// noTarget is the target of a line given for reference.
const noTarget = "(no target)"

// modeOf is the mode labelled label.
func modeOf(label string) (mode, bool) {
	for _, m := range modes {
		if m.label == label {
			return m, true
		}
	}
	return mode{}, false
}

// pctOf formats a fraction as a percentage, a dash when not measured.
func pctOf(q float64) string {
	if math.IsNaN(q) {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100*q)
}

// callOf is the call of m that client makes.
func callOf(m mode, client string) string {
	switch client {
	case pahoV3:
		return m.calls[1]
	case pahoV5:
		return m.calls[2]
	case raw:
		return m.calls[3]
	}
	return m.calls[0]
}

func (t *tables) latency() {
	us := func(name, unit string) string {
		v := t.r.get(name, unit)
		if math.IsNaN(v) {
			return "–"
		}
		return fmt.Sprintf("%.1f", v/1000)
	}
	clients := []string{raw, ours, ours5, pahoV3, pahoV5}
	m := modes[1] // qos1-sync
	t.printf("### Latency of one synchronous QoS 1 publish (µs; p50 and p99 over every call of a run, median over the runs)\n\n")
	t.printf("| client | call | mochi p50 | mochi p99 | sink p50 | sink p99 |\n|---|---|---:|---:|---:|---:|\n")
	for _, c := range clients {
		t.printf("| %s | %s | %s | %s | %s | %s |\n", c, callOf(m, c),
			us(m.name(mochi, c), "p50-ns"), us(m.name(mochi, c), "p99-ns"),
			us(m.name(sink, c), "p50-ns"), us(m.name(sink, c), "p99-ns"))
	}
	t.printf("\nThe other synchronous calls, p50 / p99 (µs):\n\n")
	t.printf("| client | sync QoS 0, mochi | sync QoS 0, sink | sync QoS 2, mochi | sync QoS 2, sink |\n|---|---:|---:|---:|---:|\n")
	for _, c := range clients {
		row := []string{}
		for _, m := range []mode{modes[0], modes[2]} {
			for _, b := range both {
				row = append(row, us(m.name(b, c), "p50-ns")+" / "+us(m.name(b, c), "p99-ns"))
			}
		}
		t.printf("| %s | %s |\n", c, strings.Join(row, " | "))
	}
	t.printf("\n")
}

func (t *tables) cpu() {
	title := "Client CPU per message (µs of this process's CPU, median; the broker's is not counted)"
	if t.r.inProcess() {
		title = "CPU per message (µs; the broker ran in the same process, so it includes the broker's)"
	}
	t.printf("### %s\n\n", title)
	t.printf("| row | broker | raw | %s | %s | %s | %s | %s ÷ %s | %s ÷ %s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
		ours, ours5, pahoV3, pahoV5, pahoV3, ours, pahoV5, ours5)
	for _, m := range modes {
		for _, broker := range m.brokers {
			if !t.measured(m, broker) {
				continue
			}
			row := []string{}
			for _, c := range []string{raw, ours, ours5, pahoV3, pahoV5} {
				v := t.r.get(m.name(broker, c), "cpu-ns/msg")
				if math.IsNaN(v) {
					row = append(row, "–")
				} else {
					row = append(row, fmt.Sprintf("%.2f", v/1000))
				}
			}
			row = append(row,
				ratioCell(t.r.ratio(m.name(broker, pahoV3), m.name(broker, ours), "cpu-ns/msg")),
				ratioCell(t.r.ratio(m.name(broker, pahoV5), m.name(broker, ours5), "cpu-ns/msg")))
			t.printf("| %s | %s | %s |\n", m.label, broker, strings.Join(row, " | "))
		}
	}
	t.printf("\n")
}

func (t *tables) allocs() {
	title := "Client allocations per message (allocs, bytes, median; mochi broker in a child process)"
	if t.r.inProcess() {
		title = "Allocations per message (allocs, bytes; the broker ran in the same process, so they include its own)"
	}
	clients := []string{ours, ours5, pahoV3, pahoV5, raw}
	t.printf("### %s\n\n", title)
	t.printf("| row | %s |\n|---|%s\n", strings.Join(clients, " | "), strings.Repeat("---:|", len(clients)))
	for _, m := range modes {
		if !t.measured(m, mochi) {
			continue
		}
		row := make([]string, len(clients))
		for i, c := range clients {
			name := m.name(mochi, c)
			row[i] = "–"
			if t.r[name] != nil {
				row[i] = fmt.Sprintf("%.0f, %.0f B", t.r.get(name, "allocs/op"), t.r.get(name, "B/op"))
			}
		}
		t.printf("| %s | %s |\n", m.label, strings.Join(row, " | "))
	}
	t.printf("\n")
	if t.r.inProcess() {
		return
	}
	for _, m := range modes {
		if m.maxAllocs == 0 {
			continue
		}
		for _, c := range []string{ours, ours5} {
			a := t.r.get(m.name(mochi, c), "allocs/op")
			t.check("keep: "+m.label+": "+c+" allocs/msg", a, fmt.Sprintf("%.0f", a), fmt.Sprintf("<= %.0f", m.maxAllocs), a <= m.maxAllocs)
		}
	}
}

// cancelable is BenchmarkPublishCancelable: the synchronous QoS 1 call
// with a ctx that can end beside the same call with context.Background.
func (t *tables) cancelable() {
	name := func(ctx, client string) string {
		return "BenchmarkPublishCancelable/broker=mochi/mode=qos1-sync/ctx=" + ctx + "/client=" + client
	}
	if t.r[name("cancelable", ours)] == nil {
		return
	}
	t.printf("### Sync QoS 1 with a ctx that can end (mochi; `context.WithCancel` against `context.Background`, median)\n\n")
	t.printf("| client | ctx | msgs/s | %% of raw | p50 / p99 µs | allocs/op |\n|---|---|---:|---:|---:|---:|\n")
	for _, c := range []string{ours, pahoV5} {
		for _, ctx := range []string{"background", "cancelable"} {
			n := name(ctx, c)
			if t.r[n] == nil {
				continue
			}
			t.printf("| %s | %s | %s | %s | %.0f / %.0f | %.0f |\n", c, ctx, kilo(t.r.get(n, "msgs/s")),
				pctOf(t.r.ratio(n, name("background", raw), "msgs/s")),
				t.r.get(n, "p50-ns")/1e3, t.r.get(n, "p99-ns")/1e3, t.r.get(n, "allocs/op"))
		}
	}
	t.printf("\n")
}

func (t *tables) idle() {
	t.printf("### Idle connected client (per client, over 200; this process only)\n\n")
	t.printf("| client | goroutines | heap | goroutine stacks |\n|---|---:|---:|---:|\n")
	for _, c := range []string{ours, ours5, pahoV3, pahoV5, auto} {
		name := "BenchmarkIdleClient/client=" + c
		g, h, s := t.r.get(name, "goroutines/client"), t.r.get(name, "heap-B/client"), t.r.get(name, "stack-B/client")
		if math.IsNaN(g) {
			continue
		}
		t.printf("| %s | %.1f | %.1f KiB | %.1f KiB |\n", c, g, h/1024, s/1024)
		if (c == ours || c == ours5) && !t.r.inProcess() {
			t.check("keep: idle "+c+": goroutines", g, fmt.Sprintf("%.1f", g), "<= 3", g <= 3)
			t.check("keep: idle "+c+": heap", h, fmt.Sprintf("%.1f KiB", h/1024), "<= 8 KiB", h <= 8*1024)
		}
	}
	t.printf("\n")
}

func (t *tables) resume() {
	t.printf("### Time to resume after a broker restart (listener up → first PUBACK; broker in process)\n\n")
	t.printf("| client | median | p90 |\n|---|---:|---:|\n")
	for _, c := range []string{ours, pahoV3, auto} {
		name := "BenchmarkResume/client=" + c
		m, p := t.r.get(name, "ns/resume"), t.r.get(name, "ns/resume-p90")
		if math.IsNaN(m) {
			continue
		}
		t.printf("| %s | %.2f ms | %.2f ms |\n", c, m/1e6, p/1e6)
	}
	t.printf("\n")
}

func (t *tables) store() {
	kinds := []struct{ key, label string }{
		{"none", "none"}, {"memory", "`store.NewMemory()`"},
		{"file", "`store.Open`, fsync"}, {"file-nosync", "`store.Open`, `NoSync` (not durable)"},
	}
	name := func(kind string, n int) string {
		return fmt.Sprintf("BenchmarkStorePublish/store=%s/publishers=%d", kind, n)
	}
	if t.r[name("none", 1)] == nil {
		return
	}
	t.printf("### The durable session store (QoS 1, 100 in flight shared by the publishers, mochi; median)\n\n")
	t.printf("| store | 1 publisher | 16 publishers | 64 publishers | Syncs per message (1 / 16 / 64) | client allocs/msg (1 publisher) |\n|---|---:|---:|---:|---|---:|\n")
	for _, k := range kinds {
		var rates, syncs []string
		for _, n := range []int{1, 16, 64} {
			rates = append(rates, kilo(t.r.get(name(k.key, n), "msgs/s")))
			syncs = append(syncs, fmt.Sprintf("%.2g", t.r.get(name(k.key, n), "syncs/msg")))
		}
		t.printf("| %s | %s | %s | %.0f |\n", k.label, strings.Join(rates, " | "), strings.Join(syncs, " / "),
			t.r.get(name(k.key, 1), "allocs/op"))
	}
	t.printf("\n")
}

func (t *tables) codec() {
	const into = ours + "-DecodeInto"
	t.printf("### Codec: one QoS 1 PUBLISH, 25-byte topic (ns/op, allocs/op)\n\n")
	t.printf("| operation | %s | %s | %s | mochi | %s | %s | mochi ÷ %s | mochi ÷ %s |\n",
		ours, into, ours5, pahoV3, pahoV5, ours, into)
	t.printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, op := range []string{"Encode", "Decode"} {
		for _, size := range []string{"64B", "64KiB"} {
			name := func(c string) string { return "Benchmark" + op + "/" + c + "/" + size }
			cell := func(c string) string {
				ns := t.r.get(name(c), "ns/op")
				if math.IsNaN(ns) {
					return "–"
				}
				return fmt.Sprintf("%s ns, %.0f", short(ns), t.r.get(name(c), "allocs/op"))
			}
			ratio := func(c string) (float64, string) {
				q := t.r.ratio(name("mochi"), name(c), "ns/op")
				if math.IsNaN(q) {
					return q, "–"
				}
				return q, fmt.Sprintf("%.2fx", q)
			}
			mo, moCell := ratio(ours)
			_, miCell := ratio(into)
			t.printf("| %s %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", op, size,
				cell(ours), cell(into), cell(ours5), cell("mochi"), cell(pahoV3), cell(pahoV5), moCell, miCell)
			if size != "64B" {
				continue
			}
			if op == "Encode" {
				a := t.r.get(name(ours), "allocs/op")
				t.check("keep: codec Encode 64B: allocs", a, fmt.Sprintf("%.0f", a), "<= 0", a <= 0)
				t.check("issue 6: codec Encode 64B: vs mochi", mo, moCell, ">= 2x", mo >= 2)
				continue
			}
			for _, c := range []struct{ name, what string }{
				{into, "codec Decode 64B, DecodeInto (the caller's Publish, as mochi's stack Packet)"},
				{ours, "codec Decode 64B, Decode (a new *Publish too)"},
			} {
				a := t.r.get(name(c.name), "allocs/op")
				q, qCell := ratio(c.name)
				t.check("issue 6: "+c.what+": allocs", a, fmt.Sprintf("%.0f", a), "<= 1", a <= 1)
				t.check("issue 6: "+c.what+": vs mochi", q, qCell, ">= 2x", q >= 2)
			}
		}
	}
	t.printf("\nDecode mochi is its owning path (body copied, then PublishDecode into a packet on the stack); %s is ours in the same shape (body copied, the caller's Publish filled in), %s also allocates the *Publish (in one block with the body). mochi-aliasing, which keeps pointers into the caller's bytes, and the ReadPacket rows are in the raw output.\n\n", into, ours)
}

func (t *tables) targets() {
	t.printf("### Targets of issue 17 (\"keep:\" what it asks to keep; \"issue 6:\" the codec's earlier targets)\n\n")
	t.printf("| target | measured | wanted | |\n|---|---:|---:|---|\n")
	for _, c := range t.checks {
		mark := "met"
		switch {
		case c.target == noTarget:
			mark = "–"
		case !c.met:
			mark = "**missed**"
		}
		t.printf("| %s | %s | %s | %s |\n", c.what, c.got, c.target, mark)
	}
}

// kilo formats a rate: 61.5k.
func kilo(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.1fk", v/1000)
}

// short formats nanoseconds with three significant digits.
func short(ns float64) string {
	if ns >= 1000 {
		return strconv.FormatFloat(ns, 'f', 0, 64)
	}
	return strconv.FormatFloat(ns, 'g', 3, 64)
}

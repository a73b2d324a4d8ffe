// Command ratios reads the output of this module's benchmarks (go test
// -bench, any -count) and prints the comparison tables of the README as
// Markdown: each figure is the median over the runs, rates are also shown as
// a fraction of the raw ceiling and as a ratio to the peers, and every
// target of issue 6 is checked.
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
	t.throughput()
	t.cpu()
	t.allocs()
	t.idle()
	t.resume()
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

// scenario is one throughput benchmark, without its client.
type scenario struct {
	label, prefix string
	maxAllocs     float64 // the target for our allocs per message; 0: none
	vsPaho        float64 // the target ratio to paho.mqtt.golang; 0: none
	vsRaw         float64 // the target fraction of raw; 0: none
}

var scenarios = []scenario{
	{"publish QoS 0", "BenchmarkPublish/mode=qos0", 1, 0, 0.70},
	{"publish QoS 1, one at a time", "BenchmarkPublish/mode=qos1-sync", 3, 0, 0},
	{"publish QoS 1, 100 in flight", "BenchmarkPublish/mode=qos1-win100", 3, 2, 0.80},
	{"publish QoS 2, 100 in flight", "BenchmarkPublish/mode=qos2-win100", 4, 2, 0.80},
	{"round trip QoS 1, 100 in flight (pub + sub)", "BenchmarkRoundTrip/mode=qos1-win100", 0, 1.5, 0},
}

func (t *tables) rate(s scenario, client string) float64 {
	return t.r.get(s.prefix+"/client="+client, "msgs/s")
}

// rateRatio is client a's rate over client b's, paired by run.
func (t *tables) rateRatio(s scenario, a, b string) float64 {
	return t.r.ratio(s.prefix+"/client="+a, s.prefix+"/client="+b, "msgs/s")
}

func (t *tables) throughput() {
	t.printf("### Throughput (msgs/s, median; %% of the raw ceiling and ratios: median of the per-round ratios)\n\n")
	t.printf("| scenario | raw | %s | %s | %s | %s | %s ÷ %s | %s ÷ %s | raw ÷ %s |\n",
		ours, ours5, pahoV3, pahoV5, ours, pahoV3, ours5, pahoV5, pahoV3)
	t.printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range scenarios {
		rw := t.rate(s, raw)
		cell := func(c string) string {
			v := t.rate(s, c)
			if math.IsNaN(v) {
				return "–"
			}
			return fmt.Sprintf("%s (%.0f%%)", kilo(v), 100*t.rateRatio(s, c, raw))
		}
		vsP3, vsP5, vsRaw := t.rateRatio(s, ours, pahoV3), t.rateRatio(s, ours5, pahoV5), t.rateRatio(s, ours, raw)
		t.printf("| %s | %s | %s | %s | %s | %s | %.2fx | %.2fx | %.2fx |\n", s.label, kilo(rw),
			cell(ours), cell(ours5), cell(pahoV3), cell(pahoV5), vsP3, vsP5, t.rateRatio(s, raw, pahoV3))
		if s.vsRaw > 0 {
			t.check(s.label+": robustmqtt vs raw", vsRaw, fmt.Sprintf("%.0f%%", 100*vsRaw), fmt.Sprintf(">= %.0f%%", 100*s.vsRaw), vsRaw >= s.vsRaw)
		}
		if s.vsPaho > 0 {
			t.check(s.label+": robustmqtt vs paho.mqtt.golang", vsP3, fmt.Sprintf("%.2fx", vsP3), fmt.Sprintf(">= %.1fx", s.vsPaho), vsP3 >= s.vsPaho)
		}
	}
	t.printf("\nraw ÷ %s is the most any client can show against it here: the broker sets the ceiling.\n\n", pahoV3)
}

// clientsTable prints a title (the first for a run with the broker in a
// child process, the second for one with the broker in process), then one
// row per scenario and one column per client, each cell formatted by cell
// from the scenario's benchmark of that client (a dash when it was not
// measured).
func (t *tables) clientsTable(child, inProcess string, clients []string, cell func(name string) string) {
	title := child
	if t.r.inProcess() {
		title = inProcess
	}
	t.printf("### %s\n\n", title)
	t.printf("| scenario | %s |\n|---|%s\n", strings.Join(clients, " | "), strings.Repeat("---:|", len(clients)))
	for _, s := range scenarios {
		row := make([]string, len(clients))
		for i, c := range clients {
			name := s.prefix + "/client=" + c
			row[i] = "–"
			if t.r[name] != nil {
				row[i] = cell(name)
			}
		}
		t.printf("| %s | %s |\n", s.label, strings.Join(row, " | "))
	}
	t.printf("\n")
}

func (t *tables) cpu() {
	t.clientsTable("Client CPU per message (µs of this process's CPU; the broker's is not counted)",
		"CPU per message (µs; the broker ran in the same process, so it includes the broker's)",
		[]string{raw, ours, ours5, pahoV3, pahoV5}, func(name string) string {
			return fmt.Sprintf("%.2f", t.r.get(name, "cpu-ns/msg")/1000)
		})
	for _, s := range scenarios {
		p3 := s.prefix + "/client=" + pahoV3
		t.printf("- %s: %s spends %.2fx the CPU of %s per message\n", s.label, pahoV3,
			t.r.ratio(p3, s.prefix+"/client="+ours, "cpu-ns/msg"), ours)
	}
	t.printf("\n")
}

func (t *tables) allocs() {
	t.clientsTable("Client allocations per message (allocs, bytes; broker in a child process)",
		"Allocations per message (allocs, bytes; the broker ran in the same process, so they include its own)",
		[]string{ours, ours5, pahoV3, pahoV5, raw}, func(name string) string {
			return fmt.Sprintf("%.0f, %.0f B", t.r.get(name, "allocs/op"), t.r.get(name, "B/op"))
		})
	if t.r.inProcess() {
		return
	}
	for _, s := range scenarios {
		if s.maxAllocs == 0 {
			continue
		}
		for _, c := range []string{ours, ours5} {
			a := t.r.get(s.prefix+"/client="+c, "allocs/op")
			t.check(s.label+": "+c+" allocs/msg", a, fmt.Sprintf("%.0f", a), fmt.Sprintf("<= %.0f", s.maxAllocs), a <= s.maxAllocs)
		}
	}
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
			t.check("idle "+c+": goroutines", g, fmt.Sprintf("%.1f", g), "<= 3", g <= 3)
			t.check("idle "+c+": heap", h, fmt.Sprintf("%.1f KiB", h/1024), "<= 8 KiB", h <= 8*1024)
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
				t.check("codec Encode 64B: allocs", a, fmt.Sprintf("%.0f", a), "<= 0", a <= 0)
				t.check("codec Encode 64B: vs mochi", mo, moCell, ">= 2x", mo >= 2)
				continue
			}
			for _, c := range []struct{ name, what string }{
				{into, "codec Decode 64B, DecodeInto (the caller's Publish, as mochi's stack Packet)"},
				{ours, "codec Decode 64B, Decode (a new *Publish too)"},
			} {
				a := t.r.get(name(c.name), "allocs/op")
				q, qCell := ratio(c.name)
				t.check(c.what+": allocs", a, fmt.Sprintf("%.0f", a), "<= 1", a <= 1)
				t.check(c.what+": vs mochi", q, qCell, ">= 2x", q >= 2)
			}
		}
	}
	t.printf("\nDecode mochi is its owning path (body copied, then PublishDecode into a packet on the stack); %s is ours in the same shape (body copied, the caller's Publish filled in), %s also allocates the *Publish (in one block with the body). mochi-aliasing, which keeps pointers into the caller's bytes, and the ReadPacket rows are in the raw output.\n\n", into, ours)
}

func (t *tables) targets() {
	t.printf("### Targets\n\n| target | measured | wanted | |\n|---|---:|---:|---|\n")
	for _, c := range t.checks {
		mark := "met"
		if !c.met {
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

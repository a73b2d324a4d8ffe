package fleet

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// WriteText prints r as the README's tables (markdown).
func WriteText(w io.Writer, r *Result) {
	f := r.Fleet
	fmt.Fprintf(w, "%d %s clients, broker %s, keepalive %v; %s, %d CPUs, %.0f GiB, RLIMIT_NOFILE %d, ports %s, somaxconn %s, load average %s\n\n",
		r.Clients, r.Client, r.Broker, r.KeepAlive, r.Env.Go, r.Env.CPUs, r.Env.MemGiB, r.Env.NoFile, r.Env.Ports, r.Env.Somaxconn, r.Env.LoadAvg)
	fmt.Fprintln(w, "| client | connected | goroutines | heap (connected / idle) | stacks | RSS | idle CPU | fleet idle | connect all | connects/s | p50 / p99 one | broker RSS | broker idle | lost idle | left after close |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	fmt.Fprintf(w, "| %s | %d | %.2f | %.1f / %.1f KiB | %.1f KiB | %.1f KiB | %.2f µs/s | %.1f%% | %v | %.0f | %v / %v | %.1f KiB | %.1f%% | %d | %d goroutines, %.2f KiB |\n",
		r.Client, f.Connected, f.GoroutinesPerClient, f.HeapPerClient/1024, f.IdleHeapPerClient/1024, f.StackPerClient/1024, f.RSSPerClient/1024,
		f.IdleCPUPerClient, f.IdleCPUPercent, round(f.ConnectTime), f.ConnectsPerSec, round(f.ConnectP50), round(f.ConnectP99),
		f.BrokerRSSPerClient/1024, f.IdleBrokerPercent, f.IdleLost, f.LeftGoroutines, f.LeftHeapPerClient/1024)
	if f.IdlePingsPerMinute > 0 {
		fmt.Fprintf(w, "\nidle: %.1f PINGREQs per client per minute\n", f.IdlePingsPerMinute)
	}
	if f.Stopped != "" {
		fmt.Fprintf(w, "\nstopped at %d: %s\n", f.Connected, f.Stopped)
	}
	if len(r.Storms) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| strategy | outage | attempts | peak /s (1 s) | peak /s (100 ms) | peak taken /s (1 s) | refused | SYN retransmits | client attempts | back | session present | t50 | t99 | t100 | relapses | published | acked | owed | lost | dup | not owed (arrived) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, s := range r.Storms {
		fmt.Fprintf(w, "| %s | %v | %d | %d | %d | %d | %d | %d | %d | %d | %d | %v | %v | %v | %d | %d | %d | %d | **%d** | %d | %d (%d) |\n",
			s.Strategy, round(s.Outage), s.AttemptsTotal, s.PeakPerSecond, s.Peak100ms*10, s.PeakTakenPerSecond, s.RefusedTotal, s.RetransmitTotal,
			s.ClientAttempts, s.Back, s.SessionPresent, round(s.T50), round(s.T99), round(s.T100), s.Relapses,
			s.Published, s.Acked, s.Owed, s.Lost, s.Duplicates, s.NotOwed, s.NotOwedArrived)
	}
	for _, s := range r.Storms {
		fmt.Fprintf(w, "\n%s: load average %s at the stop, %s after; connections lost by reason %v; failed attempts by cause %v; %d of the %d clients that missed an owed message had come back with SessionPresent\n",
			s.Strategy, s.LoadAvg[0], s.LoadAvg[1], s.LostReasons, s.AttemptFailures, s.LostClientsPresent, s.LostClients)
		for k, v := range s.FailureExamples {
			fmt.Fprintf(w, "  %s, e.g.: %s\n", k, v)
		}
	}
}

func round(d Duration) time.Duration {
	t := time.Duration(d)
	switch {
	case t >= 10*time.Second:
		return t.Round(100 * time.Millisecond)
	case t >= time.Second:
		return t.Round(10 * time.Millisecond)
	case t >= time.Millisecond:
		return t.Round(10 * time.Microsecond)
	}
	return t
}

// WriteJSON saves r to path.
func WriteJSON(path string, r *Result) error {
	b, err := json.MarshalIndent(r, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadJSON loads a Result that WriteJSON saved.
func ReadJSON(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

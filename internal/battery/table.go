package battery

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// MeanRuns is how many outages [Table] simulates for its means: enough for
// a standard error of 0.4 s on the default strategy's mean reconnect delay
// of 40 s, few enough to print the table in a tenth of a second (half a
// second with the race detector).
const MeanRuns = 5000

// Table writes, as a markdown table for the README, what an outage of the
// given length costs under each case: the attempts, bytes and reconnect
// delay of one outage with Rand(seed) (exact and repeatable), then the
// mean attempts and reconnect delay of MeanRuns outages (from Mean with the
// same seed), with their standard errors. A list after the table says what
// the columns assume. The output depends only on the arguments.
func Table(w io.Writer, outage time.Duration, seed uint64, cases ...Case) error {
	var b strings.Builder
	fmt.Fprintf(&b, "| device | strategy | attempts | bytes | back after | mean attempts | mean back after |\n")
	fmt.Fprintf(&b, "|---|---|--:|--:|---|--:|---|\n")
	for _, c := range cases {
		f, err := Simulate(c.New(Rand(seed)), outage)
		if err != nil {
			return fmt.Errorf("battery: table row %q: %w", c.Device, err)
		}
		e, err := Mean(c.New, outage, MeanRuns, seed)
		if err != nil {
			return fmt.Errorf("battery: table row %q: %w", c.Device, err)
		}
		fmt.Fprintf(&b, "| %s | `%s` | %d | %d | %s | %s | %s |\n",
			c.Device, c.Strategy, f.Attempts, f.Bytes, backAfter(f), meanAttempts(e), meanBackAfter(e))
	}
	fmt.Fprintf(&b, "\n- outage: %v, noticed by the device at once.\n", outage)
	fmt.Fprintf(&b, "- attempts, bytes, back after: one outage, random numbers from seed %d.\n", seed)
	fmt.Fprintf(&b, "- mean: over %d outages, ± one standard error.\n", MeanRuns)
	fmt.Fprintf(&b, "- bytes: %d per refused attempt, a SYN and the closed port's RST+ACK, IPv4 and TCP headers without options.\n", RefusedAttemptBytes)
	fmt.Fprintf(&b, "- back after: from the broker's return to the attempt that connects; delivery takes the round trips\n"+
		"  of the TCP handshake, CONNECT/CONNACK and PUBLISH/PUBACK more.\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("battery: write table: %w", err)
	}
	return nil
}

// backAfter says how soon after the broker's return the device reconnected.
func backAfter(f Figures) string {
	if !f.Reconnected {
		return gaveUp(f.GaveUpAfter)
	}
	return f.ReconnectAfter.Round(time.Millisecond).String()
}

// meanAttempts is the mean number of attempts, with its standard error when
// the strategy is random.
func meanAttempts(e Expected) string {
	if e.Runs == 1 {
		return fmt.Sprintf("%.0f", e.Attempts)
	}
	return fmt.Sprintf("%.1f ± %.2f", e.Attempts, e.AttemptsErr)
}

// meanBackAfter is the mean reconnect delay, with its standard error when
// the strategy is random, and how often the strategy gave up instead.
func meanBackAfter(e Expected) string {
	if e.Reconnected == 0 {
		return gaveUp(e.GaveUpAfter)
	}
	s := e.ReconnectAfter.Round(time.Millisecond).String()
	if e.Runs > 1 {
		s = fmt.Sprintf("%s ± %.1fs", tenths(e.ReconnectAfter), e.ReconnectAfterErr.Seconds())
	}
	if e.Reconnected < 1 {
		s += fmt.Sprintf(" (gives up in %.1f%% of outages)", 100*(1-e.Reconnected))
	}
	return s
}

// tenths formats d to a tenth of a second, always with the tenth: "40.0s",
// "10m4.0s", "1h2m3.4s".
func tenths(d time.Duration) string {
	d = d.Round(100 * time.Millisecond)
	if d < 0 {
		return "-" + tenths(-d)
	}
	h, m := d/time.Hour, d%time.Hour/time.Minute
	sec := fmt.Sprintf("%.1fs", (d % time.Minute).Seconds())
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%dm%s", h, m, sec)
	case m > 0:
		return fmt.Sprintf("%dm%s", m, sec)
	}
	return sec
}

// gaveUp says that the device never came back by itself.
func gaveUp(after time.Duration) string {
	if after == 0 {
		return "never: gives up at once"
	}
	return fmt.Sprintf("never: gives up %s after the loss", tenths(after))
}

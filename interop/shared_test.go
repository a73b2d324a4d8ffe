package interop_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// sharedFullEnv, set to 1, runs TestSharedSubscriptions over every mode
// (see sharedModes) and both protocol versions; without it, the drain mode
// under MQTT 5 only: the recipe that loses nothing and strands nothing.
const sharedFullEnv = "MQTT_SHARED_FULL"

// TestSharedSubscriptions spreads jobs over four consumer processes in one
// shared subscription, $share/workers/jobs at QoS 1, against Mosquitto and
// against mochi (mqtttest's embedded broker, in this process), and kills one
// consumer (SIGKILL) and stops another (Disconnect) while the jobs flow.
//
// A publisher in this process publishes MQTT_SHARED_JOBS (default 10,000)
// QoS 1 jobs, with a ledger. Once the consumers have processed a quarter of
// them, consumer c1 is told to hold: it takes jobs and neither processes nor
// acknowledges them, as a worker busy with them would; once it holds some
// (or a second passed), it is killed with SIGKILL. At half, c2 holds the
// same way and is then stopped gracefully (DISCONNECT). c3 and c4 carry on.
// When every job is published, the test waits for every acknowledged job to
// be processed; what is still missing then waits for c1 and c2 to come back
// (same client identifiers, same session mode): jobs the broker kept in
// their sessions arrive then.
//
// Each job that was processed more than once must be explained: it was in
// flight at a consumer that disappeared (held by c1 or c2, processed
// elsewhere or by the same consumer after its return), or processed by
// the killed consumer whose PUBACK the kill cut off. A job never processed
// is a failure in the modes that acknowledge after processing; in the naive
// mode (acknowledged on receipt) the jobs c1 and c2 held are expected to
// be lost, and nothing else.
//
// docs/shared-subscriptions.md has the figures and what they mean.
func TestSharedSubscriptions(t *testing.T) {
	jobs := 10000
	if s := os.Getenv("MQTT_SHARED_JOBS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 100 {
			t.Fatalf("MQTT_SHARED_JOBS=%q: want a number, at least 100", s)
		}
		jobs = n
	}
	modes := []string{"drain"}
	vers := []version{{"v5", 5}}
	if os.Getenv(sharedFullEnv) == "1" {
		modes = []string{"naive", "manual", "durable", "drain"}
		vers = versions
	}
	type broker struct {
		name string
		url  func(t *testing.T) string
	}
	brokers := []broker{
		{"mosquitto", func(t *testing.T) string {
			// max_queued_messages 0 (the helper's): no limit on what a
			// session queues, so that nothing is dropped for that reason.
			return mosquitto.New(t, "").URL()
		}},
		{"mochi", func(t *testing.T) string { return mqtttest.NewBroker(t).URL() }},
	}
	for _, b := range brokers {
		t.Run(b.name, func(t *testing.T) {
			for _, mode := range modes {
				for _, v := range vers {
					t.Run(mode+"/"+v.name, func(t *testing.T) {
						sharedRun(t, b.name, b.url(t), sharedModes[mode], v, jobs)
					})
				}
			}
		})
	}
}

func sharedRun(t *testing.T, brokerName, url string, mode sharedMode, v version, jobs int) {
	const group, topic = "workers", "jobs"
	filter := "$share/" + group + "/" + topic
	changed := make(chan struct{}, 1)
	env := []string{
		"MQTT_SHARED_URL=" + url,
		"MQTT_SHARED_MODE=" + mode.name,
		"MQTT_SHARED_VERSION=" + strconv.Itoa(int(v.version)),
		"MQTT_SHARED_FILTER=" + filter,
	}
	prefix := fmt.Sprintf("%s-%s-%s-", brokerName, mode.name, v.name)
	names := []string{prefix + "c1", prefix + "c2", prefix + "c3", prefix + "c4"}
	var cs []*consumer
	for _, name := range names {
		cs = append(cs, startConsumer(t, name, env, changed))
	}
	c1, c2 := cs[0], cs[1]

	pub := dial(t, mqtt.Config{Servers: []string{url}, ClientID: prefix + "publisher", Version: v.version,
		Backoff: backoff.Constant(50 * time.Millisecond)})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	l := newLedger()
	stop := make(chan struct{})
	stopped := false
	begin := time.Now()
	pubDone := publishLoop(ctx, pub, topic, 20, jobs, 0, l, stop)
	defer func() {
		if !stopped {
			close(stop)
			<-pubDone
		}
	}()
	processed := func() int {
		n := 0
		for _, c := range cs {
			n += c.processed()
		}
		return n
	}
	// holdThenGo tells c to hold, waits until it holds a few jobs (or a
	// second passes: the broker may send it nothing more), then runs end.
	holdThenGo := func(c *consumer, end func()) []int {
		c.send("hold")
		waitFor(time.Second, changed, func() bool { return len(c.inFlight()) >= 10 })
		held := c.inFlight()
		end()
		return held
	}
	waitUntil(t, time.Minute, changed, "a quarter of the jobs processed", func() bool { return processed() >= jobs/4 })
	var gone [2]struct{ hold, end time.Time }
	gone[0].hold = time.Now()
	held1 := holdThenGo(c1, func() {
		c1.kill()
		<-c1.exited
	})
	gone[0].end = time.Now()
	waitUntil(t, time.Minute, changed, "half of the jobs processed", func() bool { return processed() >= jobs/2 })
	gone[1].hold = time.Now()
	held2 := holdThenGo(c2, func() { c2.stop(t) })
	gone[1].end = time.Now()

	select {
	case <-pubDone:
	case <-time.After(2 * time.Minute):
		t.Fatal("the publisher did not finish")
	}
	published := time.Since(begin)
	acked, errs, issued := l.snapshot()
	if len(errs) > 0 || len(acked) != jobs || issued != jobs {
		t.Errorf("publisher: %d issued, %d acknowledged, %d errors (want %d acknowledged)", issued, len(acked), len(errs), jobs)
	}
	// Every acknowledged job processed at least once.
	processedSet := func() map[int][]string {
		by := map[int][]string{}
		for _, c := range cs {
			c.mu.Lock()
			for seq, n := range c.done {
				for range n {
					by[seq] = append(by[seq], c.name)
				}
			}
			c.mu.Unlock()
		}
		return by
	}
	missingJobs := func() []int {
		by := processedSet()
		var miss []int
		for _, seq := range acked {
			if len(by[seq]) == 0 {
				miss = append(miss, seq)
			}
		}
		return miss
	}
	// Until the survivors have nothing more to do (no job for half a
	// second): what is still missing then is with c1's or c2's session, or
	// lost.
	waitQuiet(time.Minute, 500*time.Millisecond, changed, func() bool { return len(missingJobs()) == 0 })
	missingBefore := missingJobs()
	drained := time.Since(begin)

	// c1 and c2 come back under the same identifiers.
	var back []*consumer
	if len(missingBefore) > 0 || mode.persistent {
		for _, name := range names[:2] {
			c := startConsumer(t, name, env, changed)
			c.label = "'"
			back = append(back, c)
			cs = append(cs, c)
		}
		waitQuiet(time.Minute, 500*time.Millisecond, changed, func() bool { return len(missingJobs()) == 0 })
	}
	missingAfter := missingJobs()

	// Explain each duplicate.
	heldBy := map[int]string{}
	for _, seq := range held1 {
		heldBy[seq] = "c1 (killed)"
	}
	for _, seq := range held2 {
		heldBy[seq] = "c2 (stopped)"
	}
	c1done := map[int]bool{}
	c1.mu.Lock()
	c1order := append([]int(nil), c1.order...)
	for _, seq := range c1.order {
		c1done[seq] = true
	}
	c1.mu.Unlock()
	// The last jobs c1 processed before the kill may have lost their
	// PUBACK with it.
	c1last := map[int]bool{}
	for i := max(0, len(c1order)-25); i < len(c1order); i++ {
		c1last[c1order[i]] = true
	}
	by := processedSet()
	var dupSeqs, unexplained []int
	reasons := map[string]int{}
	for seq, who := range by {
		if len(who) < 2 {
			continue
		}
		dupSeqs = append(dupSeqs, seq)
		switch {
		case heldBy[seq] != "":
			reasons["held by "+heldBy[seq]+", processed again by "+strings.Join(who, "+")]++
		case redelivered(back, seq):
			reasons["processed by "+who[0]+", whose PUBACK the broker never got, and sent again to the same session (DUP) when it came back"]++
		default:
			unexplained = append(unexplained, seq)
		}
	}
	sort.Ints(dupSeqs)
	sort.Ints(unexplained)

	// Report.
	var share []string
	for _, c := range cs {
		c.mu.Lock()
		share = append(share, fmt.Sprintf("%s%s %d", strings.TrimPrefix(c.name, prefix), c.label, len(c.order)))
		c.mu.Unlock()
	}
	t.Logf("%s %s %s: %d jobs published and acknowledged in %v, drained in %v; processed by %s",
		brokerName, mode.name, v.name, len(acked), published.Round(time.Millisecond), drained.Round(time.Millisecond), strings.Join(share, ", "))
	t.Logf("  c1 held %d when killed: %s; c2 held %d when stopped (%s): %s",
		len(held1), ranges(held1), len(held2), c2.stopped, ranges(held2))
	t.Logf("  missing after the survivors drained: %d (%s); after c1 and c2 came back: %d (%s)",
		len(missingBefore), ranges(missingBefore), len(missingAfter), ranges(missingAfter))
	var rs []string
	for r, n := range reasons {
		rs = append(rs, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(rs)
	t.Logf("  duplicates: %d (%s)", len(dupSeqs), strings.Join(rs, "; "))
	if len(unexplained) > 0 {
		t.Errorf("%d duplicates neither held by c1 or c2 nor sent again to their session: %s", len(unexplained), ranges(unexplained))
	}
	if mode.persistent {
		if len(missingAfter) > 0 {
			t.Errorf("%s: %d acknowledged jobs never processed: %s", mode.name, len(missingAfter), ranges(missingAfter))
		}
	} else {
		// A clean session ends with its consumer, and with it what the
		// broker had sent or assigned to it: jobs acknowledged to the
		// publisher while c1 or c2 held, up to its departure. Nothing
		// else may be lost.
		var unexplainedLoss []int
		for _, seq := range missingAfter {
			at, _ := l.ackedAt(seq)
			explained := false
			for _, g := range gone {
				// The ledger notes a result when its collector reads it,
				// and mochi routes a message after it acknowledged it:
				// a second of slack on either side.
				if !at.Before(g.hold.Add(-time.Second)) && !at.After(g.end.Add(time.Second)) {
					explained = true
				}
			}
			if !explained {
				unexplainedLoss = append(unexplainedLoss, seq)
			}
		}
		if len(unexplainedLoss) > 0 {
			t.Errorf("%s: %d jobs lost that were acknowledged neither while c1 nor while c2 went away: %s", mode.name, len(unexplainedLoss), ranges(unexplainedLoss))
		}
	}
	t.Logf("  summary | %s | %s | %s | %s | c1 %d, c2 %d | %d | %d | %d |",
		brokerName, mode.name, v.name, strings.Join(share, ", "), len(held1), len(held2),
		len(missingBefore), len(missingAfter), len(dupSeqs))
	for _, c := range append(cs[2:4], back...) {
		c.stop(t)
	}
}

// redelivered reports whether one of the consumers that came back got seq
// flagged DUP.
func redelivered(back []*consumer, seq int) bool {
	for _, c := range back {
		c.mu.Lock()
		dup := c.dupGot[seq]
		c.mu.Unlock()
		if dup {
			return true
		}
	}
	return false
}

// sortedInts returns seqs sorted.
func sortedInts(seqs []int) []int {
	sort.Ints(seqs)
	return seqs
}

package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/robustmqtt/mqtt"
)

// A stream is the messages one publisher publishes on one topic with one
// QoS, numbered from 0: the unit in which MQTT promises order.
type stream struct {
	publisher string
	topic     string
	qos       mqtt.QoS
	// relevance is how long each publish may wait before it is withdrawn
	// (the button's window). Zero: no deadline.
	relevance bool
}

// outcome is what a publish returned.
type outcome uint8

const (
	pending   outcome = iota // no result yet
	acked                    // nil: QoS 0 written, QoS 1 PUBACK, QoS 2 PUBCOMP
	withdrawn                // ErrWithdrawn: never sent, must never arrive
	unknown                  // ErrOutcomeUnknown: may or may not arrive
	refused                  // *mqtt.PublishError: the broker said no
	failed                   // anything else
)

func outcomeOf(err error) outcome {
	switch {
	case err == nil:
		return acked
	case errors.Is(err, mqtt.ErrWithdrawn):
		return withdrawn
	case errors.Is(err, mqtt.ErrOutcomeUnknown):
		return unknown
	case errors.As(err, new(*mqtt.PublishError)):
		return refused
	}
	return failed
}

// The ledger records every publish's result and every delivery, and checks
// them against each other at the end. It is safe for concurrent use.
type ledger struct {
	streams []stream
	byTopic map[string]int // topic -> stream index; fixed at creation
	subs    []string
	// traced: each message is published to its stream's topic plus
	// "/<number>", so that a broker's log names it.
	traced bool

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced at every record
	results  [][]outcome   // [stream][seq]
	errs     []error       // the first few failed publishes' errors
	refusals []error       // the first few refused publishes' errors
	arrivals [][][]int     // [sub][stream]: seqs in arrival order
	foreign  []string      // deliveries that match no stream: [sub] topic payload
	dupFlags int           // deliveries with DUP set
}

func newLedger(streams []stream, subs []string, traced bool) *ledger {
	l := &ledger{streams: streams, subs: subs, traced: traced, byTopic: map[string]int{}, changed: make(chan struct{})}
	for i, s := range streams {
		l.byTopic[s.topic] = i
	}
	l.results = make([][]outcome, len(streams))
	l.arrivals = make([][][]int, len(subs))
	for i := range subs {
		l.arrivals[i] = make([][]int, len(streams))
	}
	return l
}

// notifyLocked wakes the waiters; l.mu is held.
func (l *ledger) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// publish records that message seq of stream si is being published; it must
// be called before the publish, so that no delivery precedes its record.
func (l *ledger) publish(si int) (seq int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.results[si] = append(l.results[si], pending)
	return len(l.results[si]) - 1
}

// result records a publish's result.
func (l *ledger) result(si, seq int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	o := outcomeOf(err)
	l.results[si][seq] = o
	switch {
	case o == failed && len(l.errs) < 10:
		l.errs = append(l.errs, fmt.Errorf("%s #%d: %w", l.streams[si].topic, seq, err))
	case o == refused && len(l.refusals) < 10:
		l.refusals = append(l.refusals, fmt.Errorf("%s #%d: %w", l.streams[si].topic, seq, err))
	}
	l.notifyLocked()
}

// deliver records a message that subscriber sub received.
func (l *ledger) deliver(sub int, m mqtt.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.notifyLocked()
	if m.Duplicate {
		l.dupFlags++
	}
	si, ok := l.byTopic[m.Topic]
	if !ok && l.traced {
		if i := strings.LastIndexByte(m.Topic, '/'); i >= 0 && m.Topic[i+1:] == string(m.Payload) {
			si, ok = l.byTopic[m.Topic[:i]]
		}
	}
	seq, err := strconv.Atoi(string(m.Payload))
	if !ok || err != nil || seq < 0 {
		l.foreign = append(l.foreign, fmt.Sprintf("[%s] %q %q", l.subs[sub], m.Topic, m.Payload))
		return
	}
	l.arrivals[sub][si] = append(l.arrivals[sub][si], seq)
}

// wait blocks until cond, called with the ledger locked, holds or ctx ends.
func (l *ledger) wait(ctx context.Context, cond func() bool) error {
	for {
		l.mu.Lock()
		ok, changed := cond(), l.changed
		l.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// settled reports whether every publish has its result. l.mu is held.
func (l *ledger) settledLocked() bool {
	for _, rs := range l.results {
		for _, o := range rs {
			if o == pending {
				return false
			}
		}
	}
	return true
}

// missingLocked counts the acknowledged QoS 1 and 2 messages some
// subscriber has not received yet. l.mu is held.
func (l *ledger) missingLocked() int {
	n := 0
	for sub := range l.subs {
		for si, s := range l.streams {
			if s.qos == mqtt.AtMostOnce {
				continue
			}
			got := make(map[int]bool, len(l.arrivals[sub][si]))
			for _, seq := range l.arrivals[sub][si] {
				got[seq] = true
			}
			for seq, o := range l.results[si] {
				if o == acked && !got[seq] {
					n++
				}
			}
		}
	}
	return n
}

// tally is what the ledger found for one subscriber and one stream, or
// summed over several.
type tally struct {
	// The outcomes of the publishes (per stream, not per subscriber).
	published, acked, withdrawn, unknown, refused, failed, pending int

	delivered        int // distinct messages received
	deliveries       int // including duplicates
	lost             int // acked QoS 1/2 never received
	dups             int // extra deliveries
	excused          int // QoS 2 duplicates the broker's log explains
	neverPublished   int // received, but no publish of that number was made
	withdrawnArrived int // received, but the publish was withdrawn
	outOfOrder       int // first arrivals that came after a later message
	reordered        int // of those, the ones the broker's log shows it sent so
}

func (t *tally) add(o tally) {
	t.published += o.published
	t.acked += o.acked
	t.withdrawn += o.withdrawn
	t.unknown += o.unknown
	t.refused += o.refused
	t.failed += o.failed
	t.pending += o.pending
	t.delivered += o.delivered
	t.deliveries += o.deliveries
	t.lost += o.lost
	t.dups += o.dups
	t.excused += o.excused
	t.neverPublished += o.neverPublished
	t.withdrawnArrived += o.withdrawnArrived
	t.outOfOrder += o.outOfOrder
	t.reordered += o.reordered
}

// violations is how many of the tally's findings break a guarantee:
// losses, duplicates where at most or exactly once holds, messages never
// published or withdrawn, order; less what the broker's log shows the
// broker did.
func (t tally) violations(qos mqtt.QoS) int {
	v := t.lost + t.neverPublished + t.withdrawnArrived + t.outOfOrder - t.reordered
	if qos != mqtt.AtLeastOnce {
		v += t.dups - t.excused
	}
	return v
}

// check compares the results with the deliveries, per subscriber and
// stream. It returns the tallies, a description of every violation, and
// notes on the duplicates the broker's log explains, which are reported
// separately and are not violations.
func (l *ledger) check(ev evidence) (byQoS [3]tally, problems, notes []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.foreign {
		problems = append(problems, "delivered, but matches no stream: "+f)
	}
	for _, err := range l.errs {
		problems = append(problems, "publish failed: "+err.Error())
	}
	for _, err := range l.refusals {
		// Nothing in the suite is refused by design: a refusal is the
		// broker's (mochi-mqtt answers a re-sent QoS 2 PUBLISH it already
		// has with PUBREC 0x91, "packet identifier in use").
		notes = append(notes, "the broker refused a publish: "+err.Error())
	}
	for sub, subName := range l.subs {
		for si, s := range l.streams {
			t, p, n := l.checkStream(sub, si, ev)
			notes = append(notes, n...)
			if s.qos == mqtt.ExactlyOnce && t.dups > 0 && ev != nil {
				n, lines := ev.redeliveries(subName, s.topic)
				t.excused = min(t.dups, n)
				if t.excused > 0 {
					notes = append(notes, fmt.Sprintf("[%s] %s: %d of %d QoS 2 duplicates follow the broker's re-delivery after a restart; its log:\n\t%s",
						subName, s.topic, t.excused, t.dups, joinLines(lines, 12)))
				}
			}
			if t.violations(s.qos) > 0 {
				problems = append(problems, p...)
			}
			if sub > 0 {
				// Publish outcomes are per stream, not per subscriber.
				t.published, t.acked, t.withdrawn, t.unknown, t.refused, t.failed, t.pending = 0, 0, 0, 0, 0, 0, 0
			}
			byQoS[s.qos].add(t)
		}
	}
	return byQoS, problems, notes
}

// checkStream checks one stream at one subscriber. l.mu is held.
func (l *ledger) checkStream(sub, si int, ev evidence) (t tally, problems, notes []string) {
	s, results, arrivals := l.streams[si], l.results[si], l.arrivals[sub][si]
	where := fmt.Sprintf("[%s] %s (QoS %d)", l.subs[sub], s.topic, s.qos)
	t.published = len(results)
	for _, o := range results {
		switch o {
		case acked:
			t.acked++
		case withdrawn:
			t.withdrawn++
		case unknown:
			t.unknown++
		case refused:
			t.refused++
		case failed:
			t.failed++
		case pending:
			t.pending++
		}
	}
	seen := map[int]int{}
	last := -1
	t.deliveries = len(arrivals)
	for _, seq := range arrivals {
		seen[seq]++
		switch {
		case seq >= len(results):
			t.neverPublished++
			problems = append(problems, fmt.Sprintf("%s: received #%d, which was never published", where, seq))
			continue
		case results[seq] == withdrawn:
			t.withdrawnArrived++
			problems = append(problems, fmt.Sprintf("%s: received #%d, whose publish was withdrawn (never to be sent)", where, seq))
		}
		if seen[seq] > 1 {
			t.dups++
			continue
		}
		if seq < last {
			t.outOfOrder++
			if lines, ok := evidenceOfReorder(ev, l.subs[sub], s.topic, seq, last); ok {
				if t.reordered++; t.reordered == 1 {
					notes = append(notes, fmt.Sprintf("%s: #%d arrived after #%d, in the order the broker sent them; its log:\n\t%s",
						where, seq, last, strings.Join(lines, "\n\t")))
				}
			} else {
				problems = append(problems, fmt.Sprintf("%s: #%d arrived after #%d", where, seq, last))
			}
		}
		last = max(last, seq)
	}
	t.delivered = len(seen)
	var lost []int
	for seq, o := range results {
		if o == acked && s.qos != mqtt.AtMostOnce && seen[seq] == 0 {
			lost = append(lost, seq)
		}
	}
	t.lost = len(lost)
	if t.lost > 0 {
		problems = append(problems, fmt.Sprintf("%s: %d acknowledged messages never arrived: %s", where, t.lost, ranges(lost)))
	}
	if t.dups > 0 && s.qos != mqtt.AtLeastOnce {
		var dup []int
		for seq, n := range seen {
			for range n - 1 {
				dup = append(dup, seq)
			}
		}
		problems = append(problems, fmt.Sprintf("%s: %d duplicates: %s", where, t.dups, ranges(dup)))
	}
	if t.reordered > 1 {
		notes = append(notes, fmt.Sprintf("%s: %d arrivals in all out of publish order, as the broker sent them", where, t.reordered))
	}
	return t, problems, notes
}

func evidenceOfReorder(ev evidence, sub, topic string, earlier, later int) ([]string, bool) {
	if ev == nil {
		return nil, false
	}
	return ev.reordered(sub, topic, earlier, later)
}

// dump writes the whole ledger as text: per stream, each publish's outcome;
// per subscriber and stream, the numbers in arrival order.
func (l *ledger) dump() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	names := [...]string{pending: "pending", acked: "acked", withdrawn: "withdrawn", unknown: "unknown", refused: "refused", failed: "failed"}
	for si, s := range l.streams {
		fmt.Fprintf(&b, "results %s (QoS %d):", s.topic, s.qos)
		for seq, o := range l.results[si] {
			if o != acked {
				fmt.Fprintf(&b, " %d=%s", seq, names[o])
			}
		}
		fmt.Fprintln(&b)
	}
	for sub, name := range l.subs {
		for si, s := range l.streams {
			fmt.Fprintf(&b, "arrivals [%s] %s: %v\n", name, s.topic, l.arrivals[sub][si])
		}
	}
	for _, f := range l.foreign {
		fmt.Fprintf(&b, "foreign %s\n", f)
	}
	return b.String()
}

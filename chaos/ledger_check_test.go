package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt"
)

// The ledger finds every kind of violation it is there for, and lets
// through what the guarantees allow.
func TestLedgerFindsViolations(t *testing.T) {
	streams := []stream{
		{publisher: "p", topic: "t/q0", qos: mqtt.AtMostOnce},
		{publisher: "p", topic: "t/q1", qos: mqtt.AtLeastOnce},
		{publisher: "p", topic: "t/q2", qos: mqtt.ExactlyOnce},
	}
	l := newLedger(streams, []string{"s"}, false)
	results := []error{nil, nil, nil, fmt.Errorf("wrapped: %w", mqtt.ErrWithdrawn), mqtt.ErrOutcomeUnknown}
	for si := range streams {
		for _, err := range results {
			l.result(si, l.publish(si), err)
		}
	}
	deliver := func(topic string, seqs ...int) {
		for _, seq := range seqs {
			l.deliver(0, mqtt.Message{Topic: topic, Payload: []byte(strconv.Itoa(seq))})
		}
	}
	deliver("t/q0", 0, 2)       // QoS 0 may lose #1
	deliver("t/q1", 0, 1, 1, 0) // QoS 1 may duplicate; #2 is lost
	deliver("t/q2", 1, 0, 2, 2, 3, 7)
	deliver("t/other", 1)

	byQoS, problems, notes := l.check(nil)
	if got := byQoS[0]; got.violations(0) != 0 || got.delivered != 2 {
		t.Errorf("QoS 0: %+v, want 2 delivered and no violations", got)
	}
	if got := byQoS[1]; got.lost != 1 || got.dups != 2 || got.violations(1) != 1 {
		t.Errorf("QoS 1: %+v, want 1 lost, 2 duplicates allowed", got)
	}
	want := tally{published: 5, acked: 3, withdrawn: 1, unknown: 1, delivered: 5, deliveries: 6,
		dups: 1, neverPublished: 1, withdrawnArrived: 1, outOfOrder: 1}
	if got := byQoS[2]; got != want {
		t.Errorf("QoS 2:\n got %+v\nwant %+v", got, want)
	}
	for _, w := range []string{"matches no stream", "never arrived: 2", "#0 arrived after #1", "which was never published", "withdrawn", "1 duplicates: 2"} {
		if !strings.Contains(strings.Join(problems, "\n"), w) {
			t.Errorf("no problem says %q:\n%s", w, strings.Join(problems, "\n"))
		}
	}
	if len(notes) != 0 {
		t.Errorf("notes without excuses: %q", notes)
	}

	// A duplicate or an inversion the broker's log explains is a note, not
	// a violation.
	l = newLedger(streams[2:], []string{"s"}, true)
	for range 2 {
		l.result(0, l.publish(0), nil)
	}
	deliver("t/q2/1", 1)
	deliver("t/q2/0", 0, 0)
	byQoS, problems, notes = l.check(fakeEvidence{})
	if got := byQoS[2]; got.excused != 1 || got.reordered != 1 || got.violations(2) != 0 || len(problems) != 0 || len(notes) != 2 {
		t.Errorf("excused duplicate and inversion: %+v, problems %q, notes %q", got, problems, notes)
	}
}

// fakeEvidence explains one duplicate and every inversion.
type fakeEvidence struct{}

func (fakeEvidence) redeliveries(sub, topic string) (int, []string) { return 1, []string{"log"} }
func (fakeEvidence) reordered(sub, topic string, earlier, later int) ([]string, bool) {
	return []string{"log"}, true
}

// wait returns once the condition holds, and says why when ctx ends first.
func TestLedgerWait(t *testing.T) {
	l := newLedger([]stream{{topic: "t", qos: mqtt.AtLeastOnce}}, []string{"s"}, false)
	seq := l.publish(0)
	l.result(0, seq, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.wait(ctx, func() bool { return l.missingLocked() == 0 }); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait with a message missing = %v, want Canceled", err)
	}
	done := make(chan error)
	go func() { done <- l.wait(t.Context(), func() bool { return l.missingLocked() == 0 }) }()
	l.deliver(0, mqtt.Message{Topic: "t", Payload: []byte("0")})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// What a Mosquitto log proves: the QoS 2 re-delivery after a restart (PUBREL
// before it, no PUBCOMP, the same packet identifier as a PUBLISH after it),
// and the broker's own reordering (received in order, sent out of order).
func TestBrokerLog(t *testing.T) {
	log := `1: mosquitto version 2.0.11 starting
2: Received PUBLISH from p (d0, q2, r0, m1, 'chaos/a/7', ... (1 bytes))
3: Received PUBLISH from p (d0, q2, r0, m2, 'chaos/a/8', ... (1 bytes))
4: Sending PUBLISH to sub-0 (d0, q2, r0, m7, 'chaos/a/7', ... (1 bytes))
5: Sending PUBREL to sub-0 (m7)
6: Sending PUBLISH to sub-0 (d0, q2, r0, m8, 'chaos/a/8', ... (1 bytes))
7: Sending PUBREL to sub-0 (m8)
8: Received PUBCOMP from sub-0 (Mid: 8, RC:0)
9: Sending PUBREL to sub-1 (m9)
10: Sending PUBLISH to sub-1 (d1, q2, r0, m9, 'chaos/b/1', ... (1 bytes))
11: mosquitto version 2.0.11 terminating
12: mosquitto version 2.0.11 starting
13: Sending PUBLISH to sub-0 (d1, q2, r0, m7, 'chaos/a/7', ... (1 bytes))
14: Sending PUBLISH to sub-0 (d1, q2, r0, m8, 'chaos/a/8', ... (1 bytes))
15: Sending PUBLISH to sub-1 (d0, q2, r0, m3, 'chaos/a/8', ... (1 bytes))
16: Sending PUBLISH to sub-1 (d0, q2, r0, m4, 'chaos/a/7', ... (1 bytes))
17: Sending PUBLISH to sub-2 (d0, q2, r0, m5, 'chaos/a/7', ... (1 bytes))
18: Sending PUBLISH to sub-2 (d0, q2, r0, m6, 'chaos/a/8', ... (1 bytes))
`
	b := parseBrokerLog(log)
	n, ev := b.redeliveries("sub-0", "chaos/a")
	if n != 1 || len(ev) != 3 || !strings.HasPrefix(ev[0], "5:") || !strings.HasPrefix(ev[2], "13:") {
		t.Errorf("sub-0 chaos/a: %d re-deliveries, evidence %q; want 1 (m7: lines 5, 12, 13)", n, ev)
	}
	// m8 was completed; m9 was sent again without a restart in between.
	if n, _ := b.redeliveries("sub-1", "chaos/b"); n != 0 {
		t.Errorf("sub-1 chaos/b: %d re-deliveries, want 0", n)
	}
	// sub-1 was sent #8 before #7, which the broker had received first.
	if _, ok := b.reordered("sub-1", "chaos/a", 7, 8); !ok {
		t.Error("the broker's reordering for sub-1 not found")
	}
	// sub-2 was sent #7, then #8, once each: if #8 arrived first, the
	// client reordered them.
	if _, ok := b.reordered("sub-2", "chaos/a", 7, 8); ok {
		t.Error("an inversion the broker did not make was excused")
	}
	if _, ok := b.reordered("sub-1", "chaos/a", 7, 9); ok {
		t.Error("an inversion with a message the broker never saw was excused")
	}
}

package interop_test

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
)

// ledger records the result of every publish of a publishLoop: a publish
// whose result was nil was acknowledged by the broker and must arrive.
type ledger struct {
	mu      sync.Mutex
	issued  int
	acked   map[int]time.Time // when the result came
	errs    map[int]error
	changed chan struct{} // a token after every result
}

func newLedger() *ledger {
	return &ledger{acked: map[int]time.Time{}, errs: map[int]error{}, changed: make(chan struct{}, 1)}
}

func (l *ledger) record(seq int, err error) {
	l.mu.Lock()
	if err == nil {
		l.acked[seq] = time.Now()
	} else {
		l.errs[seq] = err
	}
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// ackedAt returns when seq was acknowledged, and whether it was.
func (l *ledger) ackedAt(seq int) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.acked[seq]
	return at, ok
}

// ackedCount is how many publishes were acknowledged so far.
func (l *ledger) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// snapshot returns the acknowledged sequence numbers, sorted, and the
// errors.
func (l *ledger) snapshot() (acked []int, errs map[int]error, issued int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for seq := range l.acked {
		acked = append(acked, seq)
	}
	sort.Ints(acked)
	errs = make(map[int]error, len(l.errs))
	for seq, err := range l.errs {
		errs[seq] = err
	}
	return acked, errs, l.issued
}

// publishLoop publishes QoS 1 messages to topic on c, payload the decimal
// sequence number from 0 on, one every interval at most (0: as fast as the
// window allows), with at most window publishes awaiting their result,
// until count are published (0: no limit) or stop is closed; every result goes into the ledger. Each publish's
// ctx is ctx: a message waits through an outage. It returns a channel
// closed once every result is in.
func publishLoop(ctx context.Context, c *mqtt.Client, topic string, window, count int, interval time.Duration, l *ledger, stop <-chan struct{}) <-chan struct{} {
	type pending struct {
		seq int
		res <-chan error
	}
	queue := make(chan pending, window)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range queue {
			l.record(p.seq, <-p.res)
		}
	}()
	go func() {
		defer close(queue)
		var pace <-chan time.Time
		if interval > 0 {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			pace = tick.C
		}
		for seq := 0; count == 0 || seq < count; seq++ {
			if pace != nil {
				select {
				case <-stop:
					return
				case <-pace:
				}
			}
			select {
			case <-stop:
				return
			default:
			}
			res := c.PublishAsync(ctx, mqtt.Message{Topic: topic, Payload: []byte(strconv.Itoa(seq)), QoS: mqtt.AtLeastOnce})
			l.mu.Lock()
			l.issued = seq + 1
			l.mu.Unlock()
			queue <- pending{seq, res} // the collector drains it: a full queue waits for a result
		}
	}()
	return done
}

// receipts counts the messages a subscriber received, by the sequence number
// in their payload.
type receipts struct {
	mu      sync.Mutex
	count   map[int]int
	total   int
	changed chan struct{}
}

// collect reads every message of c until its Messages channel closes,
// into l. The returned channel is closed when it has.
func collect(c *mqtt.Client, l *receipts) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range c.Messages() {
			seq, err := strconv.Atoi(string(m.Payload))
			if err != nil {
				seq = -1
			}
			l.mu.Lock()
			l.count[seq]++
			l.total++
			l.mu.Unlock()
			select {
			case l.changed <- struct{}{}:
			default:
			}
		}
	}()
	return done
}

func newReceipts() *receipts {
	return &receipts{count: map[int]int{}, changed: make(chan struct{}, 1)}
}

// missing returns the sequence numbers of want that r has not received.
func (r *receipts) missing(want []int) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var miss []int
	for _, seq := range want {
		if r.count[seq] == 0 {
			miss = append(miss, seq)
		}
	}
	return miss
}

// duplicates returns how many messages beyond the first of each sequence
// number r received, and which numbers came more than once.
func (r *receipts) duplicates() (extra int, seqs []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for seq, n := range r.count {
		if n > 1 {
			extra += n - 1
			seqs = append(seqs, seq)
		}
	}
	sort.Ints(seqs)
	return extra, seqs
}

// waitUntil waits, up to d, until cond holds, checking it after every token
// on changed (and every 100 ms, for conditions that more than one channel
// feeds). It fails the test with what, if d passes first.
func waitUntil(t testing.TB, d time.Duration, changed <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	if !waitFor(d, changed, cond) {
		t.Fatalf("not within %v: %s", d, what)
	}
}

// waitFor is waitUntil that reports a timeout instead of failing.
func waitFor(d time.Duration, changed <-chan struct{}, cond func() bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-changed:
		case <-tick.C:
		case <-deadline.C:
			return cond()
		}
	}
	return true
}

// waitQuiet waits until cond holds, or nothing came on changed for quiet,
// or d passed, and reports whether cond holds.
func waitQuiet(d, quiet time.Duration, changed <-chan struct{}, cond func() bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	idle := time.NewTimer(quiet)
	defer idle.Stop()
	for !cond() {
		select {
		case <-changed:
			idle.Reset(quiet)
		case <-idle.C:
			return cond()
		case <-deadline.C:
			return cond()
		}
	}
	return true
}

// ranges renders sorted numbers as "3-7 9 12-13", the first 12 runs of
// them and a count of the rest.
func ranges(seqs []int) string {
	var out []string
	for i := 0; i < len(seqs); {
		j := i
		for j+1 < len(seqs) && seqs[j+1] == seqs[j]+1 {
			j++
		}
		if j > i {
			out = append(out, fmt.Sprintf("%d-%d", seqs[i], seqs[j]))
		} else {
			out = append(out, fmt.Sprint(seqs[i]))
		}
		i = j + 1
	}
	if len(out) > 12 {
		out = append(out[:12], fmt.Sprintf("… (%d runs more)", len(out)-12))
	}
	return strings.Join(out, " ")
}

// eventLog keeps every event of a client.
type eventLog struct {
	mu      sync.Mutex
	events  []mqtt.Event
	changed chan struct{} // a token after every event
	done    chan struct{} // closed once Events is closed
}

func logEvents(c *mqtt.Client) *eventLog {
	l := &eventLog{changed: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for e := range c.Events() {
			l.mu.Lock()
			l.events = append(l.events, e)
			l.mu.Unlock()
			select {
			case l.changed <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

// since returns the events from index i on, and the index after them.
func (l *eventLog) since(i int) ([]mqtt.Event, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i > len(l.events) {
		i = len(l.events)
	}
	return append([]mqtt.Event(nil), l.events[i:]...), len(l.events)
}

// connected waits, up to d, for a Connected event at index from or later,
// and returns it with its index.
func (l *eventLog) connected(t testing.TB, from int, d time.Duration) (mqtt.Event, int) {
	t.Helper()
	var found mqtt.Event
	at := -1
	waitUntil(t, d, l.changed, "a Connected event", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for i := from; i < len(l.events); i++ {
			if l.events[i].Kind == mqtt.Connected {
				found, at = l.events[i], i
				return true
			}
		}
		return false
	})
	return found, at
}

// kinds renders events as "ConnectionLost, Reconnecting×3, Connected".
func kinds(events []mqtt.Event) string {
	var out []string
	for i := 0; i < len(events); {
		j := i
		for j < len(events) && events[j].Kind == events[i].Kind {
			j++
		}
		s := events[i].Kind.String()
		if j-i > 1 {
			s += fmt.Sprintf("×%d", j-i)
		}
		out = append(out, s)
		i = j
	}
	return fmt.Sprint(out)
}

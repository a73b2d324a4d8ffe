package crash_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// payloadRE matches the payloads of payloadOf, also inside a stored record.
var payloadRE = regexp.MustCompile(`r[0-9]+-s[0-9]+-q[12]`)

// ledger records what every child said and what the subscriber received.
// It is safe for concurrent use; one goroutine at a time may wait on it.
type ledger struct {
	mu        sync.Mutex
	stored    map[string]int   // payload -> the run that said "stored"
	got       map[string]int   // payload -> deliveries
	dupFlags  int              // deliveries with DUP set
	runStored map[int]int      // run -> "stored" lines
	restored  map[int]int      // run -> records in the store when it opened
	said      map[int][]string // run -> "connected", "finished"
	failed    []string         // "failed" lines
	other     []string         // lines of no known kind (the test framework's)

	// The torn-tail test's allowances: a message whose last record was
	// torn off may be lost (noLoss) or, QoS 2, arrive twice (noDupCheck).
	noLoss     map[string]bool
	noDupCheck map[string]bool

	poke chan struct{} // 1-buffered: something changed
}

func newLedger() *ledger {
	return &ledger{
		stored:     make(map[string]int),
		got:        make(map[string]int),
		runStored:  make(map[int]int),
		restored:   make(map[int]int),
		said:       make(map[int][]string),
		noLoss:     make(map[string]bool),
		noDupCheck: make(map[string]bool),
		poke:       make(chan struct{}, 1),
	}
}

func (l *ledger) changed() {
	select {
	case l.poke <- struct{}{}:
	default:
	}
}

// line records one line of run's stdout.
func (l *ledger) line(run int, s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.changed()
	verb, arg, _ := strings.Cut(s, " ")
	switch verb {
	case "stored":
		l.stored[arg] = run
		l.runStored[run]++
	case "restored":
		n, _ := strconv.Atoi(arg)
		l.restored[run] = n
	case "connected", "finished":
		l.said[run] = append(l.said[run], verb)
	case "failed":
		l.failed = append(l.failed, fmt.Sprintf("run %d: %s", run, s))
	default:
		l.other = append(l.other, fmt.Sprintf("run %d: %s", run, s))
	}
}

// delivered records one message at the subscriber.
func (l *ledger) delivered(payload string, dup bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got[payload]++
	if dup {
		l.dupFlags++
	}
	l.changed()
}

// wait blocks until cond (called with the lock held) is true, or ctx ends,
// or stop is closed.
func (l *ledger) wait(ctx context.Context, stop <-chan struct{}, cond func() bool) error {
	for {
		l.mu.Lock()
		ok := cond()
		l.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-l.poke:
		case <-stop:
			return fmt.Errorf("crash: the child exited")
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

func (l *ledger) hasSaid(run int, what string) bool { return slices.Contains(l.said[run], what) }

// missingLocked counts the stored messages not delivered yet, leaving out
// those the torn-tail test allows to be lost.
func (l *ledger) missingLocked() int {
	n := 0
	for p := range l.stored {
		if l.got[p] == 0 && !l.noLoss[p] {
			n++
		}
	}
	return n
}

// verdict is the ledger's account at the end of a test.
type verdict struct {
	stored      int      // "stored" lines
	delivered   int      // distinct payloads delivered (barriers excluded)
	unannounced int      // delivered, but the child was killed before it said "stored"
	lost        []string // stored, never delivered
	excused     []string // stored, never delivered, allowed by a torn record
	dup1        int      // extra deliveries of QoS 1 messages
	dup1Msgs    int      // QoS 1 messages delivered more than once
	dup2        []string // QoS 2 messages delivered more than once
	dup2Excused []string // the same, allowed by a torn record
	strange     []string // delivered, not a payload any child made
	dupFlags    int
}

func (l *ledger) verdict() verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	v := verdict{stored: len(l.stored), dupFlags: l.dupFlags}
	for p := range l.stored {
		if l.got[p] > 0 {
			continue
		}
		if l.noLoss[p] {
			v.excused = append(v.excused, p)
		} else {
			v.lost = append(v.lost, p)
		}
	}
	for p, n := range l.got {
		switch {
		case strings.HasPrefix(p, "barrier-"):
			continue
		case !payloadRE.MatchString(p):
			v.strange = append(v.strange, p)
			continue
		}
		v.delivered++
		if _, ok := l.stored[p]; !ok {
			v.unannounced++
		}
		switch {
		case n < 2:
		case strings.HasSuffix(p, "-q1"):
			v.dup1 += n - 1
			v.dup1Msgs++
		case l.noDupCheck[p]:
			v.dup2Excused = append(v.dup2Excused, fmt.Sprintf("%s x%d", p, n))
		default:
			v.dup2 = append(v.dup2, fmt.Sprintf("%s x%d", p, n))
		}
	}
	for _, s := range [][]string{v.lost, v.excused, v.dup2, v.dup2Excused, v.strange} {
		slices.Sort(s)
	}
	return v
}

// firstN joins at most n of list.
func firstN(list []string, n int) string {
	if len(list) <= n {
		return strings.Join(list, " ")
	}
	return strings.Join(list[:n], " ") + fmt.Sprintf(" ... (%d more)", len(list)-n)
}

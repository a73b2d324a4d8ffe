package crash_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/mqtttest"
	"github.com/robustmqtt/mqtt/store"
)

var (
	seedFlag = flag.Uint64("crash.seed", 0,
		"the seed of the kill schedule; 0 picks one from the clock (it is always logged, to replay a failure)")
	killsFlag = flag.Int("crash.kills", 10,
		"how many times TestCrashKill9 kills the child; the other tests scale with it (torn tail: half, broker down: a third)")
	versionFlag = flag.Int("crash.version", 4,
		"the MQTT protocol level of the children and the subscriber: 4 (3.1.1) or 5")
	holdFlag = flag.Duration("crash.hold", 150*time.Millisecond,
		"the longest a child publishes, after its first messages are stored, before it is killed")
)

// patience bounds every wait: for a child's line, its exit, a delivery.
// Nothing should take more than a fraction of it.
const patience = 30 * time.Second

// harness is one crash test's world: the broker, the store file the
// children share, the subscriber and the ledger.
type harness struct {
	t    *testing.T
	seed uint64
	rng  *rand.Rand
	b    *mqtttest.Broker
	path string
	l    *ledger

	subDone chan struct{} // the subscriber's reader has exited

	run      int            // the last run started
	kills    int            // children killed
	tornKill int            // kills after which Open found a torn tail and cut it
	faults   map[string]int // broker faults by kind
}

func newHarness(t *testing.T) *harness {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d; to replay: go test ./crash -run '^%s$' -crash.seed=%d -crash.kills=%d -crash.hold=%s -crash.version=%d",
		seed, t.Name(), seed, *killsFlag, *holdFlag, *versionFlag)
	h := &harness{
		t:      t,
		seed:   seed,
		rng:    rand.New(rand.NewPCG(seed, 0)),
		b:      mqtttest.NewBroker(t),
		path:   filepath.Join(t.TempDir(), "session.db"),
		l:      newLedger(),
		faults: make(map[string]int),
	}
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	sub, err := mqtt.Dial(ctx, mqtt.Config{
		Servers:  []string{h.b.URL()},
		ClientID: subscriberID, // a persistent session: it keeps what comes while it reconnects
		Version:  byte(*versionFlag),
		Backoff:  backoff.Constant(retryDelay),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.subDone = make(chan struct{})
	go func() {
		defer close(h.subDone)
		for m := range sub.Messages() {
			h.l.delivered(string(m.Payload), m.Duplicate)
		}
	}()
	t.Cleanup(func() {
		sub.Close()
		<-h.subDone
	})
	if err := sub.Subscribe(ctx, mqtt.Subscription{Filter: topic, QoS: mqtt.ExactlyOnce}); err != nil {
		t.Fatal(err)
	}
	return h
}

// upTo is a random duration in [0, d].
func (h *harness) upTo(d time.Duration) time.Duration {
	return time.Duration(h.rng.Int64N(int64(d) + 1))
}

// proc is one child process.
type proc struct {
	run    int
	mode   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser // held open: the child exits when it closes
	stderr bytes.Buffer   // read only once exited is closed
	exited chan struct{}  // closed once its stdout is drained and Wait returned
	err    error          // Wait's
}

// start starts the next run's child in mode.
func (h *harness) start(mode string) *proc {
	h.t.Helper()
	h.run++
	p := &proc{run: h.run, mode: mode, exited: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	p.cmd.Env = append(os.Environ(),
		childEnv+"="+mode, storeEnv+"="+h.path, brokerEnv+"="+h.b.URL(), runEnv+"="+strconv.Itoa(h.run),
		versionEnv+"="+strconv.Itoa(*versionFlag))
	p.cmd.Stderr = &p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		h.t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		h.t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.l.line(p.run, sc.Text())
		}
		io.Copy(io.Discard, stdout) // after a scanner error, let the child go on
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	h.t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// fatal fails the test with what the child wrote.
func (h *harness) fatal(p *proc, format string, args ...any) {
	h.t.Helper()
	msg := fmt.Sprintf(format, args...)
	select {
	case <-p.exited:
	default:
		// Still running: SIGQUIT makes the Go runtime print every
		// goroutine's stack on stderr, and exit.
		p.cmd.Process.Signal(syscall.SIGQUIT)
		<-p.exited
	}
	h.l.mu.Lock()
	msg += fmt.Sprintf("\nchild run %d (%s) said stored %d times, and exited: %v; other output: %s\nfailed: %s\nstderr:\n%s",
		p.run, p.mode, h.l.runStored[p.run], p.err, firstN(h.l.other, 20), firstN(h.l.failed, 20), p.stderr.String())
	h.l.mu.Unlock()
	h.t.Fatalf("%s (replay with -crash.seed=%d)", msg, h.seed)
}

// waitSaid waits until run p has said what (a whole line, such as
// "connected").
func (h *harness) waitSaid(p *proc, what string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), patience)
	defer cancel()
	if err := h.l.wait(ctx, p.exited, func() bool { return h.l.hasSaid(p.run, what) }); err != nil {
		h.fatal(p, "waiting for the child to say %q: %v", what, err)
	}
}

// waitStored waits until run p has stored n messages.
func (h *harness) waitStored(p *proc, n int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.t.Context(), patience)
	defer cancel()
	if err := h.l.wait(ctx, p.exited, func() bool { return h.l.runStored[p.run] >= n }); err != nil {
		h.fatal(p, "waiting for %d stored messages: %v", n, err)
	}
}

// hold lets p run for d more.
func (h *harness) hold(p *proc, d time.Duration) {
	h.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-p.exited:
		h.fatal(p, "the child exited before the kill")
	}
}

// kill sends p SIGKILL (Process.Kill) and waits until it is gone, for the
// broker too.
func (h *harness) kill(p *proc) {
	h.t.Helper()
	select {
	case <-p.exited:
		h.fatal(p, "the child exited before the kill")
	default:
	}
	if err := p.cmd.Process.Kill(); err != nil {
		<-p.exited
		h.fatal(p, "kill: %v", err)
	}
	<-p.exited
	h.kills++
	h.checkStderr(p)
	ctx, cancel := context.WithTimeout(h.t.Context(), patience)
	defer cancel()
	if err := h.b.WaitDisconnected(ctx, publisherID); err != nil {
		h.t.Fatal(err)
	}
}

// checkStderr fails the test if an exited child reported a data race (a
// child built with -race goes on after one, and is killed before it could
// exit with the race detector's status) or a panic.
func (h *harness) checkStderr(p *proc) {
	h.t.Helper()
	for _, bad := range []string{"WARNING: DATA RACE", "panic:"} {
		if bytes.Contains(p.stderr.Bytes(), []byte(bad)) {
			h.t.Errorf("child run %d (%s) wrote %q on stderr:\n%s", p.run, p.mode, bad, p.stderr.String())
			return
		}
	}
}

// recoverStore opens the store as the next child will, which cuts off a
// record the kill may have torn, and returns its records. It counts the
// kills that left a torn tail.
func (h *harness) recoverStore() map[uint64][]byte {
	h.t.Helper()
	before, err := os.Stat(h.path)
	if err != nil {
		h.t.Fatal(err)
	}
	recs, err := loadStore(h.path)
	if err != nil {
		h.t.Fatalf("open the store after the kill of run %d: %v", h.run, err)
	}
	after, err := os.Stat(h.path)
	if err != nil {
		h.t.Fatal(err)
	}
	if after.Size() < before.Size() {
		h.tornKill++
		h.t.Logf("the kill of run %d tore the last write: Open cut %d bytes", h.run, before.Size()-after.Size())
	}
	return recs
}

// loadStore opens the store file at path and returns a copy of its
// records.
func loadStore(path string) (map[uint64][]byte, error) {
	st, err := store.Open(path, store.Options{})
	if err != nil {
		return nil, err
	}
	recs := make(map[uint64][]byte)
	err = st.Load(func(k uint64, v []byte) error {
		recs[k] = bytes.Clone(v)
		return nil
	})
	return recs, errors.Join(err, st.Close())
}

// restart stops and starts the broker, counting it as kind.
func (h *harness) restart(kind string) {
	h.t.Helper()
	if err := h.b.Restart(); err != nil {
		h.t.Fatal(err)
	}
	h.faults[kind]++
}

// finish runs the finish child, waits for every stored message to arrive
// and checks the ledger and the store.
func (h *harness) finish() verdict {
	h.t.Helper()
	p := h.start(modeFinish)
	timer := time.NewTimer(patience)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		h.fatal(p, "the finish run did not exit within %s", patience)
	}
	h.l.mu.Lock()
	finished := h.l.hasSaid(p.run, "finished")
	h.l.mu.Unlock()
	if p.err != nil || !finished {
		h.fatal(p, "the finish run failed")
	}
	h.checkStderr(p)

	ctx, cancel := context.WithTimeout(h.t.Context(), patience)
	defer cancel()
	barrier := barrierOf(p.run)
	barrierCame := false
	err := h.l.wait(ctx, nil, func() bool {
		barrierCame = h.l.got[barrier] > 0
		return barrierCame && h.l.missingLocked() == 0
	})
	v := h.l.verdict()
	if err != nil {
		h.t.Errorf("%d stored messages still not delivered %s after the finish run (barrier delivered: %v): %v",
			len(v.lost), patience, barrierCame, err)
	}

	recs, err := loadStore(h.path)
	if owner, ok := recs[0]; ok && len(owner) > 2 && owner[0] == 'S' {
		delete(recs, 0) // names the store's client for the store's life, not a message
	}
	switch {
	case err != nil:
		h.t.Errorf("open the store after the finish run: %v", err)
	case len(recs) != 0:
		h.t.Errorf("the store holds %d records after the finish run; want none", len(recs))
	}
	return v
}

// check reports the verdict and the figures, and fails the test on a lost
// message, a QoS 2 duplicate or a failed publish.
func (h *harness) check(v verdict) {
	h.t.Helper()
	info := h.b.Server().Info.Clone()
	h.l.mu.Lock()
	var restored []string
	for run := 1; run <= h.run; run++ {
		restored = append(restored, strconv.Itoa(h.l.restored[run]))
	}
	failed := h.l.failed
	h.l.mu.Unlock()
	h.t.Logf("%d runs, %d kills (%d left a torn tail), broker faults %v; records restored per run: %s",
		h.run, h.kills, h.tornKill, h.faults, strings.Join(restored, " "))
	h.t.Logf("stored %d, delivered %d distinct (%d of them delivered although their child was killed before it said stored), "+
		"lost %d, excused %d; QoS 1 duplicates %d (of %d messages); QoS 2 duplicates %d, excused %d; deliveries with DUP set %d; "+
		"broker dropped %d+%d",
		v.stored, v.delivered, v.unannounced, len(v.lost), len(v.excused), v.dup1, v.dup1Msgs,
		len(v.dup2), len(v.dup2Excused), v.dupFlags, info.MessagesDropped, info.InflightDropped)
	if len(v.lost) > 0 {
		h.t.Errorf("%d messages lost that PublishAsync had accepted into the store: %s", len(v.lost), firstN(v.lost, 30))
	}
	if len(v.dup2) > 0 {
		h.t.Errorf("%d QoS 2 messages delivered more than once: %s", len(v.dup2), firstN(v.dup2, 30))
	}
	if len(v.strange) > 0 {
		h.t.Errorf("%d deliveries of payloads no child made: %s", len(v.strange), firstN(v.strange, 30))
	}
	if len(failed) > 0 {
		h.t.Errorf("%d publishes failed in the children: %s", len(failed), firstN(failed, 10))
	}
	if h.t.Failed() {
		h.t.Logf("replay: go test ./crash -run '^%s$' -crash.seed=%d -crash.kills=%d -crash.hold=%s -crash.version=%d",
			h.t.Name(), h.seed, *killsFlag, *holdFlag, *versionFlag)
	}
}

package chaos_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt/internal/mosquitto"
	"github.com/robustmqtt/mqtt/mqtttest"
)

var (
	duration = flag.Duration("chaos.duration", defaultDuration,
		"how long faults are injected, per broker (the embedded one, then Mosquitto)")
	liveRestarts = flag.Bool("chaos.live-restarts", false,
		"restart Mosquitto with the subscribers connected, as the embedded broker is, instead of keeping them away; "+
			"QoS 2 re-deliveries Mosquitto 2.0.x may then make are reported with its log as evidence")
	seedFlag = flag.Uint64("chaos.seed", 0,
		"the seed of the fault schedule; 0 picks one from the clock (it is always logged, to replay a failure)")
)

// settle bounds each wait of the end of a run: for every publish's result
// once the faults are healed, then for every acknowledged message to arrive.
const settle = time.Minute

func TestChaos(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d, faults for %s per broker; to replay: %s", seed, *duration, replay(t, seed))

	t.Run("embedded", func(t *testing.T) {
		b := mqtttest.NewBroker(t)
		run(t, seed, target{name: "embedded", addr: b.Addr(), stop: b.Stop, start: b.Start})
	})
	t.Run("mosquitto", func(t *testing.T) {
		b := mosquitto.New(t, "")
		run(t, seed, target{name: "mosquitto", addr: b.Addr(), stop: b.Stop, start: b.Start,
			awayRestarts: !*liveRestarts, log: b.Log})
	})
}

// replay is the command that runs t again with the same fault schedule.
func replay(t *testing.T, seed uint64) string {
	cmd := fmt.Sprintf("go test ./chaos -run '%s' -chaos.seed=%d -chaos.duration=%s", t.Name(), seed, *duration)
	if *liveRestarts {
		cmd += " -chaos.live-restarts"
	}
	return cmd
}

// run is one chaos run against one broker: the fleet publishes and
// subscribes through two proxies while the injector runs its schedule, then
// everything is healed, every result and every acknowledged message awaited,
// and the ledger checked.
func run(t *testing.T, seed uint64, b target) {
	pubProxy := mqtttest.NewProxy(t, b.addr)
	subProxy := mqtttest.NewProxy(t, b.addr)
	p := newPlan()
	l := newLedger(p.streams, p.subs, b.log != nil)
	f, err := start(t.Context(), p, l, pubProxy.URL(), subProxy.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()

	stop := make(chan struct{})
	f.publish(stop, seed)
	in := newInjector(seed, b, pubProxy, subProxy)
	faults, cancel := context.WithTimeout(t.Context(), *duration)
	err = in.run(faults)
	cancel()
	close(stop)
	if err != nil {
		t.Errorf("%v (replay: %s)", err, replay(t, seed))
	}

	// Every publish has exactly one result: wait for them all.
	ctx, cancel := context.WithTimeout(t.Context(), settle)
	defer cancel()
	published := make(chan struct{})
	go func() {
		f.pubWG.Wait()
		close(published)
	}()
	select {
	case <-published:
	case <-ctx.Done():
		t.Errorf("publishes without a result %s after the faults ended (replay: %s)", settle, replay(t, seed))
		f.close() // fails them with ErrClosed, so the goroutines end
		<-published
	}
	l.mu.Lock()
	settled := l.settledLocked()
	l.mu.Unlock()
	if !settled {
		t.Errorf("some publishes have no result")
	}
	// Every acknowledged QoS 1 and 2 message reaches every subscriber.
	if err := l.wait(ctx, func() bool { return l.missingLocked() == 0 }); err != nil {
		t.Errorf("acknowledged messages still missing %s after the faults ended", settle)
	}
	if err := f.disconnect(ctx); err != nil {
		t.Errorf("%v", err)
	}

	var ev evidence
	if b.log != nil {
		ev = parseBrokerLog(b.log())
	}
	byQoS, problems, notes := l.check(ev)
	reconnects, sessionLost := f.reconnects()
	t.Logf("%s: %s; %d reconnects, %d sessions lost, %d deliveries with DUP set; per QoS (delivered and after: summed over %d subscribers):\n%s",
		b.name, in.summary(), reconnects, sessionLost, l.dupFlags, len(p.subs), table(byQoS))
	for _, n := range notes {
		t.Logf("the broker's doing, not the client's: %s", n)
	}
	if sessionLost > 0 {
		t.Errorf("%d sessions lost: the broker forgot a persistent session", sessionLost)
	}
	if len(problems) > 0 || t.Failed() {
		dir := keep(t, b, seed, l, in)
		t.Errorf("%s: %d violations (replay: %s; ledger and broker log kept in %s):\n%s\nfault schedule:\n%s",
			b.name, len(problems), replay(t, seed), dir, joinLines(problems, 40), joinLines(in.history, 200))
	}
}

// keep writes what a failed run leaves for a post mortem into a directory
// that outlives the test: the fault schedule, the ledger (every result and
// every arrival) and the broker's log, if it has one.
func keep(t *testing.T, b target, seed uint64, l *ledger, in *injector) string {
	dir, err := os.MkdirTemp("", fmt.Sprintf("chaos-%s-%d-", b.name, seed))
	if err != nil {
		t.Logf("keep the evidence: %v", err)
		return "(nowhere)"
	}
	files := map[string]string{
		"faults.txt": strings.Join(in.history, "\n") + "\n",
		"ledger.txt": l.dump(),
	}
	if b.log != nil {
		files["broker.log"] = b.log()
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Logf("keep the evidence: %v", err)
		}
	}
	return dir
}

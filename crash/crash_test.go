package crash_test

import (
	"bytes"
	"fmt"
	"os"
	"testing"
)

// minStored is how many messages a child must have stored before the
// random hold that ends in its kill: at least some, and fewer than the
// child's window of outstanding results (publishers × perPublisher), all a
// child can store while the broker is down.
func (h *harness) minStored() int { return 20 + h.rng.IntN(publishers*perPublisher-40) }

// TestCrashKill9 kills a publishing child with SIGKILL again and again,
// with the broker restarted while it publishes, stopped across the kill, or
// restarted between two runs; then a last child with the same store
// finishes the job. Every message a child said was stored must arrive, QoS
// 2 exactly once, and the store must be empty at the end.
func TestCrashKill9(t *testing.T) {
	h := newHarness(t)
	for range *killsFlag {
		p := h.start(modePublish)
		h.waitStored(p, h.minStored())
		fault := h.rng.IntN(4)
		switch fault {
		case 1:
			h.restart("restart while publishing")
		case 2:
			if err := h.b.Stop(); err != nil {
				t.Fatal(err)
			}
			h.faults["down across the kill"]++
		}
		h.hold(p, h.upTo(*holdFlag))
		h.kill(p)
		switch fault {
		case 2:
			if err := h.b.Start(); err != nil {
				t.Fatal(err)
			}
		case 3:
			h.restart("restart after the kill")
		}
		h.recoverStore()
	}
	h.check(h.finish())
}

// TestCrashBrokerDown kills children whose messages were only queued: each
// connects, the broker stops, and only then does it publish, so nothing of
// its own run is sent before the kill (what it restored from the previous
// run is sent on its connection, before the broker stops).
func TestCrashBrokerDown(t *testing.T) {
	h := newHarness(t)
	for range max(1, *killsFlag/3) {
		p := h.start(modeOffline)
		h.waitSaid(p, "connected")
		if err := h.b.Stop(); err != nil {
			t.Fatal(err)
		}
		h.faults["down before publishing"]++
		h.waitStored(p, h.minStored())
		h.hold(p, h.upTo(*holdFlag))
		h.kill(p)
		h.recoverStore()
		if err := h.b.Start(); err != nil {
			t.Fatal(err)
		}
	}
	h.check(h.finish())
}

// TestCrashTornTail kills a publishing child, then cuts 1 to 8 bytes off
// the end of the store file, as a crash in the middle of a write would:
// the last record is torn. The next Open must recover every other record
// (checked by comparing the records before and after the cut), and the
// next runs deliver every stored message except, possibly, the torn
// record's. See the package documentation for what this proves and what
// it does not.
func TestCrashTornTail(t *testing.T) {
	h := newHarness(t)
	announced := 0
	for range max(1, *killsFlag/2) {
		p := h.start(modePublish)
		h.waitStored(p, h.minStored())
		h.hold(p, h.upTo(*holdFlag))
		h.kill(p)
		if h.tear(int64(1 + h.rng.IntN(8))) {
			announced++
		}
	}
	t.Logf("%d of the torn records belonged to a message its child had said was stored", announced)
	h.check(h.finish())
}

// tear cuts n bytes off the store file, checks that Open then loses the
// last record and nothing else, and records what the loss allows: a lost
// message, or a QoS 2 message sent again as new. It reports whether the
// torn record's message had been said to be stored.
func (h *harness) tear(n int64) (announced bool) {
	h.t.Helper()
	before := h.recoverStore()
	fi, err := os.Stat(h.path)
	if err != nil {
		h.t.Fatal(err)
	}
	// A header (16 bytes) and one record (at least 21) at the very least.
	if fi.Size() < 16+21+n {
		h.t.Fatalf("the store after run %d is %d bytes: no record to tear", h.run, fi.Size())
	}
	if err := os.Truncate(h.path, fi.Size()-n); err != nil {
		h.t.Fatal(err)
	}
	after, err := loadStore(h.path)
	if err != nil {
		h.t.Fatalf("open a store whose last record is torn (%d bytes cut): %v; want the other records recovered", n, err)
	}

	var changes []string
	change := func(kind string, value []byte) {
		ps := payloadRE.FindAll(value, -1)
		if len(ps) != 1 {
			h.t.Errorf("a record holds %d payloads, want 1: %q", len(ps), value)
			return
		}
		p := string(ps[0])
		h.l.mu.Lock()
		_, announced = h.l.stored[p]
		switch kind {
		case "put of a new message":
			h.l.noLoss[p] = true
		case "progress":
			h.l.noDupCheck[p] = true
		}
		h.l.mu.Unlock()
		changes = append(changes, fmt.Sprintf("%s %s (said stored: %v)", kind, p, announced))
	}
	for k, v := range before {
		w, ok := after[k]
		switch {
		case !ok:
			// Its only record: the message is gone.
			change("put of a new message", v)
		case !bytes.Equal(v, w):
			// A later state (packet identifier given, PUBREC received)
			// is undone: it goes again as it was before, a QoS 2
			// message possibly as a new one.
			change("progress", v)
		}
	}
	for k, w := range after {
		if _, ok := before[k]; !ok {
			// An acknowledged message is back: QoS 1 goes again (a
			// duplicate is allowed), QoS 2 only sends PUBREL again.
			change("delete", w)
		}
	}
	h.t.Logf("run %d: cut %d bytes; the torn record was: %v", h.run, n, changes)
	if len(changes) != 1 {
		h.t.Errorf("cutting %d bytes off the store changed %d records, want exactly the last one: %v", n, len(changes), changes)
	}
	return announced
}

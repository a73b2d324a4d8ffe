package mqtttest

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestRouteGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var g routeGate
		g.enter()
		locked := make(chan bool)
		go func() { locked <- g.lock(time.Second) }()
		synctest.Wait() // the takeover waits for the routing

		entered := make(chan struct{})
		go func() {
			g.enter()
			close(entered)
		}()
		synctest.Wait()
		select {
		case <-entered:
			t.Fatal("a routing started while a takeover was waiting")
		default:
		}

		g.leave()
		if !<-locked {
			t.Fatal("lock failed once the routing had left")
		}
		synctest.Wait()
		select {
		case <-entered:
			t.Fatal("a routing started during a takeover")
		default:
		}
		g.unlock()
		<-entered
		g.leave()

		// A routing that does not leave: the takeover gives up in time and
		// leaves the gate open.
		g.enter()
		start := time.Now()
		if g.lock(2 * time.Second) {
			t.Fatal("lock succeeded while a routing was in progress")
		}
		if waited := time.Since(start); waited != 2*time.Second {
			t.Errorf("lock gave up after %v, want 2s", waited)
		}
		g.enter()
		g.leave()
		g.leave()

		// Takeovers run one at a time.
		if !g.lock(time.Second) {
			t.Fatal("lock of an idle gate failed")
		}
		second := make(chan bool)
		go func() { second <- g.lock(time.Minute) }()
		synctest.Wait()
		g.unlock()
		if !<-second {
			t.Fatal("the second takeover failed")
		}
		g.unlock()
	})
}

package mqtttest

import (
	"sync"
	"time"
)

// routeGate keeps mochi's message routing and its session takeovers apart
// (see brokerHook.OnSessionEstablish). Any number of routings may run
// together; a takeover runs alone. A waiting takeover holds new routings
// back, so a steady stream of messages cannot starve it, and it gives up
// waiting after a timeout, so a stuck routing cannot block it for good.
type routeGate struct {
	mu       sync.Mutex
	routings int           // in progress
	takeover bool          // a takeover holds the gate or waits for it
	changed  chan struct{} // closed on every release; nil while nobody waits
}

// waitLocked returns a channel closed at the next release. Called with mu held.
func (g *routeGate) waitLocked() <-chan struct{} {
	if g.changed == nil {
		g.changed = make(chan struct{})
	}
	return g.changed
}

// releasedLocked wakes everyone waiting. Called with mu held.
func (g *routeGate) releasedLocked() {
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
}

// enter starts a routing, once no takeover holds or waits for the gate.
func (g *routeGate) enter() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.takeover {
		ch := g.waitLocked()
		g.mu.Unlock()
		<-ch
		g.mu.Lock()
	}
	g.routings++
}

// leave ends a routing.
func (g *routeGate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.routings--
	if g.routings == 0 {
		g.releasedLocked()
	}
}

// lock starts a takeover once no routing and no other takeover runs, and
// reports true; or reports false, holding nothing, if that takes longer than
// timeout.
func (g *routeGate) lock(timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	mine := false // whether g.takeover is ours
	for !mine || g.routings > 0 {
		if !mine && !g.takeover {
			g.takeover, mine = true, true
			continue
		}
		ch := g.waitLocked()
		g.mu.Unlock()
		select {
		case <-ch:
			g.mu.Lock()
		case <-timer.C:
			g.mu.Lock()
			if mine {
				g.takeover = false
				g.releasedLocked()
			}
			return false
		}
	}
	return true
}

// unlock ends a takeover that lock started.
func (g *routeGate) unlock() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.takeover = false
	g.releasedLocked()
}

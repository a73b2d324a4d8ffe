package mqtttest_test

import (
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/robustmqtt/mqtt/mqtttest"
)

// cleanupTB records the cleanups registered on it instead of running them
// at the end of the test, so a test can run them itself.
type cleanupTB struct {
	testing.TB
	cleanups []func()
}

func (c *cleanupTB) Cleanup(f func()) { c.cleanups = append(c.cleanups, f) }

func (c *cleanupTB) runCleanups() {
	for i := len(c.cleanups) - 1; i >= 0; i-- {
		c.cleanups[i]()
	}
}

// The cleanups that NewBroker, NewProxy and NewScriptedBroker register must
// leave no goroutine behind, whatever state a failing test left them in:
// clients connected, data held up by latency, a black-holed connection, a
// scripted connection never accepted.
func TestCleanupLeavesNothing(t *testing.T) {
	tb := &cleanupTB{TB: t}
	b := mqtttest.NewBroker(tb)
	p := mqtttest.NewProxy(tb, b.Addr())
	s := mqtttest.NewScriptedBroker(tb)
	ctx := testCtx(t)

	sub, _ := connect(t, p.Addr(), 4, "sub", true)
	sub.subscribe("t", 1)
	pub, _ := connect(t, b.Addr(), 5, "pub", false)
	pub.publish("t", "in flight", 1, 1)
	p.Latency(time.Hour)
	pub.publish("t", "held up", 1, 2)
	if err := b.WaitInflight(ctx, "sub", 1); err != nil {
		t.Fatal(err)
	}

	half, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	p.Blackhole(true)

	scripted := dialRaw(t, s.Addr(), 4)
	scripted.handshake("never accepted", false, 0)
	if err := b.Stop(); err != nil { // and one stopped midway
		t.Fatal(err)
	}

	tb.runCleanups()
	goleak.VerifyNone(t)
}

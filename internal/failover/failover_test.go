package failover_test

import (
	"flag"
	"testing"

	"go.uber.org/goleak"

	"github.com/robustmqtt/mqtt/internal/failover"
	"github.com/robustmqtt/mqtt/mqtttest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var (
	histories = flag.Int("failover.histories", 6, "TestFailoverBetweenServersRandomized: histories")
	seed      = flag.Uint64("failover.seed", 0, "TestFailoverBetweenServersRandomized: seed (0: from the clock, printed)")
)

// Random failover histories against two mochi-mqtt brokers (see the
// package doc), in both protocol versions. Replay a failure with
// -failover.seed; -failover.histories runs more.
func TestFailoverBetweenServersRandomized(t *testing.T) {
	failover.Histories(t, *histories, *seed, func(t *testing.T) failover.Broker { return mqtttest.NewBroker(t) }, testing.Verbose())
}

package failover_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/robustmqtt/mqtt/internal/failover"
	"github.com/robustmqtt/mqtt/mqtttest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var (
	histories = flag.Int("failover.histories", 5, "TestFailoverBetweenServersRandomized: histories")
	seedFlag  = flag.Uint64("failover.seed", 0, "TestFailoverBetweenServersRandomized: seed (0: from the clock, printed)")
)

// Random failover histories against two mochi-mqtt brokers (see the
// package doc), in both protocol versions. Replay a failure with
// -failover.seed; -failover.histories runs more.
func TestFailoverBetweenServersRandomized(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay: -failover.seed=%d)", seed, seed)
	for h := range *histories {
		rng := rand.New(rand.NewPCG(seed, uint64(h))) // a history replays alone with -run
		version := byte(4 + rng.IntN(2))
		t.Run(fmt.Sprintf("history%d/v%d", h, version), func(t *testing.T) {
			failover.Run(t, rng, version, func(t *testing.T) failover.Broker { return mqtttest.NewBroker(t) }, testing.Verbose() && *seedFlag != 0)
		})
	}
}

package interop_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt/internal/failover"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
)

var (
	failoverHistories = flag.Int("failover.histories", 4, "TestFailoverBetweenMosquittoBrokers: histories")
	failoverSeed      = flag.Uint64("failover.seed", 0, "TestFailoverBetweenMosquittoBrokers: seed (0: from the clock, printed)")
)

// Random failover histories (see package internal/failover) between two
// Mosquitto brokers that share nothing, each restarted with its persisted
// sessions, in both protocol versions. Replay a failure with
// -failover.seed.
func TestFailoverBetweenMosquittoBrokers(t *testing.T) {
	seed := *failoverSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay: -failover.seed=%d)", seed, seed)
	for h := range *failoverHistories {
		rng := rand.New(rand.NewPCG(seed, uint64(h))) // a history replays alone with -run
		version := byte(4)
		if h%2 == 1 {
			version = 5
		}
		t.Run(fmt.Sprintf("history%d/v%d", h, version), func(t *testing.T) {
			failover.Run(t, rng, version, func(t *testing.T) failover.Broker { return mosquitto.New(t, "") }, testing.Verbose() && *failoverSeed != 0)
		})
	}
}

package interop_test

import (
	"flag"
	"testing"

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
	failover.Histories(t, *failoverHistories, *failoverSeed, func(t *testing.T) failover.Broker { return mosquitto.New(t, "") }, testing.Verbose())
}

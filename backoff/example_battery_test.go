package backoff_test

import (
	"fmt"
	"os"
	"time"

	"github.com/robustmqtt/mqtt/internal/battery"
)

// The battery figures of the README: for each built-in strategy, configured
// as for the devices of umqtt.robust's README, and for umqtt.robust's own
// fixed 2 s delay, what a 1-hour broker outage costs and how soon after the
// broker's return the device connects again. Computed in simulated time by
// package internal/battery, whose test checks them against a real client
// and mqtttest's broker.
func Example_battery() {
	if err := battery.Table(os.Stdout, time.Hour, 1, battery.Cases()...); err != nil {
		fmt.Println(err)
	}
	// Output:
	// | device | strategy | attempts | bytes | back after | mean attempts | mean back after |
	// |---|---|--:|--:|---|--:|---|
	// | any (the client's default) | `backoff.Default()` | 70 | 5600 | 1m13.565s | 65.7 ± 0.06 | 40.0s ± 0.4s |
	// | window alarm | `Exponential{Initial: 1s, Max: 30m}` | 13 | 1040 | 6m20.16s | 13.6 ± 0.02 | 10m4.0s ± 5.9s |
	// | umqtt.robust (fixed 2 s) | `Constant(2s)` | 1799 | 143920 | 0s | 1799 | 0s |
	// | button press | `MaxElapsed(Exponential{Initial: 500ms, Max: 4s}, 15s)` | 8 | 640 | never: gives up 14.5s after the loss | 9.3 ± 0.02 | never: gives up 13.7s after the loss |
	// | temperature sensor | `Never()` | 0 | 0 | never: gives up at once | 0 | never: gives up at once |
	//
	// - outage: 1h0m0s, noticed by the device at once.
	// - attempts, bytes, back after: one outage, random numbers from seed 1.
	// - mean: over 5000 outages, ± one standard error.
	// - bytes: 80 per refused attempt, a SYN and the closed port's RST+ACK, IPv4 and TCP headers without options.
	// - back after: from the broker's return to the attempt that connects; delivery takes the round trips
	//   of the TCP handshake, CONNECT/CONNACK and PUBLISH/PUBACK more.
}

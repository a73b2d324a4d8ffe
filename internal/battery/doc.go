// Package battery computes the README's battery figures: what a reconnect
// strategy costs a device while its broker is away, and how soon the device
// is back once the broker returns.
//
// [Simulate] plays one outage through a [backoff.Strategy] in simulated
// time, the way the client's supervisor consults it, and returns the
// [Figures]: how many connection attempts the device made, how many bytes
// they cost (the byte model is [RefusedAttemptBytes]: a SYN and the
// RST+ACK of the closed port), and how long after the broker's return the
// device connected, or when the strategy gave up. Nothing sleeps:
//
//	f, err := battery.Simulate(backoff.Constant(2*time.Second), time.Hour)
//	// f.Attempts == 1799, f.Bytes == 143920, f.ReconnectAfter == 0
//
// A jittered strategy gives one outcome per run. Give it a seeded source
// ([Rand]) for an exact, repeatable one, or average many runs with [Mean]
// for the expected figures.
//
// [Cases] are the strategies the README compares (the client's default,
// the three devices of umqtt.robust's README, and umqtt.robust's own fixed
// 2 s delay), and [Table] prints them as the README's markdown table; the
// runnable example Example_battery in package backoff shows it.
//
// [Scale] speeds a strategy up for a test that measures a real client
// against mqtttest during a shortened outage, as this package's own test
// does to check that the simulation matches the client.
//
// The package is internal: it serves the README, the examples and the
// tests, and its API may change with them.
package battery

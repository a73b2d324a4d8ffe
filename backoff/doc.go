// Package backoff holds reconnect policies: given the retry about to be made,
// a [Strategy] says how long to wait first, or that it is time to give up.
//
// MicroPython's umqtt.robust asked applications to override a delay method to
// choose their policy. Here the policy is a value that the application hands
// to the client (and that the client's supervisor consults after every lost
// connection), so the three cases of that README are three values:
//
//   - a temperature sensor that reports once a minute does not retry at all:
//     a lost reading is fine and the battery matters more. Use [Never].
//   - a button press matters for about 15 seconds, then no longer. Use
//     [MaxElapsed] around a fast strategy, e.g.
//     MaxElapsed(Exponential{Initial: 500 * time.Millisecond, Max: 4 * time.Second}, 15*time.Second).
//   - a window-broken alarm must arrive however long the outage lasts, but a
//     device on battery should wake rarely meanwhile. Use [Exponential] with
//     full jitter and a high cap, forever: Exponential{Max: 30 * time.Minute}.
//
// [Default] is what the client uses when no strategy is configured.
//
// # The caller keeps the state
//
// Strategies are pure: the caller (the supervisor) counts the retries and
// measures the time since the loss, and passes them in an [Attempt]. So the
// same Attempt (and the same random source) always gives the same answer, a
// strategy value can be shared by any number of clients and goroutines, and
// a test can assert an exact schedule. Nothing here starts a goroutine or
// sleeps; waiting is the caller's job.
//
// # Jitter
//
// After a broker restart or a power cut, many clients lose their connection
// at the same moment. If they all waited the same delays they would reconnect
// in lockstep and hit the broker together at every retry. [Exponential]
// therefore randomises each delay by default ([FullJitter]); the other
// [Jitter] modes trade spread for predictability.
//
// Measured with 10,000 clients and Mosquitto stopped for 5 s (bench/fleet):
// every strategy retries the whole fleet within the first second, while the
// broker is down; once it listens again, [Default] brings the fleet back at
// about 2,300 connections a second, where [Constant] (2 s) and an
// exponential without jitter bring all 10,000 within a second. The price of
// full jitter is the tail: 99% back after 21 s and the last after 60 s,
// against 10-11 s; a lower Max bounds it.
//
// # Writing your own
//
// [Func] turns a function into a Strategy, and the wrappers [MaxAttempts] and
// [MaxElapsed] add limits to any Strategy.
package backoff

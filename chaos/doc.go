// Package chaos is the client's chaos suite with a ledger. It holds tests
// only.
//
// TestChaos runs the same fleet twice, against the embedded broker of package
// mqtttest and then against a real Mosquitto with persistence (skipped, as
// in package interop, when mosquitto is not installed): three publishers
// (QoS 0, 1 and 2 each, MQTT 3.1.1 and 5), a button that publishes QoS 1 and
// 2 presses with relevance windows of 0.1 to 2 s, and two persistent
// subscribers to everything. Publishers and subscribers connect through two
// fault proxies, and a seeded random schedule injects one fault at a time:
// broker restarts, cuts, black holes (held past two keepalives), latency,
// and 1-byte writes, on the publishers' side, the subscribers' or both.
//
// A ledger records every publish's result and every delivery. At the end
// every fault is healed, every result and every acknowledged message awaited,
// and the ledger checks, per subscriber and stream (one publisher, one QoS):
//
//   - every QoS 1 or 2 publish that returned nil was delivered: at least
//     once for QoS 1, exactly once for QoS 2 (and QoS 0 at most once);
//   - nothing was delivered that was never published, or whose publish was
//     withdrawn (its window closed before it was sent);
//   - first deliveries came in publish order;
//   - every publish ended with exactly one result, and no goroutine leaked
//     (goleak, in TestMain).
//
// It prints a table per broker: messages published and their results,
// deliveries, losses, duplicates, order violations, faults and reconnects.
//
// # Flags
//
//	go test ./chaos                                  # 20 s of faults per broker (8 s under -race)
//	go test ./chaos -run TestChaos -v -chaos.duration=10m
//	go test ./chaos -run TestChaos -chaos.seed=1234  # replay a failure's schedule
//
// The seed is logged at the start and repeated in every failure, with the
// command that replays it. It fixes the schedule (which faults, where, how
// long), not the interleaving with traffic, so a replay reproduces the
// conditions rather than every packet. A failed run keeps the fault
// schedule, the whole ledger and the broker's log in a directory it names.
//
// # Mosquitto, and what is the broker's doing
//
// Against Mosquitto each message also carries its number in its topic
// (chaos/pub-0/q1/152), so that the broker's log (log_type all) names every
// message; the ledger then reads the log to tell the broker's faults from
// the client's, and reports what the broker did separately, with the log
// lines as evidence, instead of as violations:
//
//   - QoS 2 duplicates that follow Mosquitto 2.0.x's re-delivery after a
//     restart: a PUBLISH (DUP, same packet identifier) for a message whose
//     PUBREL it had sent before the restart without getting PUBCOMP back.
//     The specification obliges the client to take it for a new message.
//   - inversions Mosquitto made itself: it received the earlier message
//     first but sent the later one to the subscriber before it had finished
//     sending the earlier one. Mosquitto 2.0.11 does this when a subscriber
//     comes back to a queue longer than its in-flight window: new messages
//     go out ahead of the queued ones.
//
// Restarts of Mosquitto are graceful (SIGTERM; sessions come back from its
// database) and happen while the subscribers are kept away by their proxy,
// so that exactly-once is checked in the conditions where Mosquitto keeps
// it. The clients keep the default in-flight window: an MQTT 3.1.1 client
// cannot learn Mosquitto's max_inflight_messages (20), beyond which
// Mosquitto 2.0.11 acknowledges and drops, so the default for 3.1.1 is
// within it (see Config.MaxInflight and the interop tests
// TestV311MosquittoInflightQuota and TestDefaultsLoseNothingOnStockMosquitto).
//
// The embedded broker keeps its sessions in memory across restarts; its
// restarts happen with the subscribers connected.
package chaos

// Package mqtt is an MQTT 3.1.1 and 5.0 client that keeps its session
// alive across broken networks and restarting brokers, driven from a
// select loop with channels and contexts instead of callbacks.
//
// # Three devices, one client
//
// "Robust" depends on the message. A temperature reading may be lost, a
// button press matters for a few seconds, a broken-window alarm must arrive
// no matter what. Each is a configuration, not a subclass:
//
//   - the reconnect policy is a [backoff.Strategy] in [Config.Backoff]:
//     [backoff.Never] for the thermometer, [backoff.Exponential] with full
//     jitter and a high cap for the alarm;
//   - a message's relevance window is the ctx of [Client.Publish]: when it
//     ends before the message was sent, the message is withdrawn
//     ([ErrWithdrawn]) and never sent late.
//
// See the examples: Example_temperature, Example_button and
// Example_windowAlarm.
//
// # The session outlives connections
//
// [Dial] connects and returns a [Client] whose session lives until
// [Client.Disconnect], [Client.Close], or until the strategy gives up
// ([Client.Done], [Client.Err]). While disconnected, publishes wait in a
// bounded queue; on reconnect, unacknowledged QoS 1/2
// messages are sent again in their original order before anything new, and
// if the broker lost the session the client subscribes again. Every publish
// ends with exactly one result: nil once delivered to the broker (QoS 1
// PUBACK, QoS 2 PUBCOMP; QoS 0 once written), or an error that says whether
// the message was never sent ([ErrWithdrawn], [ErrInvalidMessage],
// [ErrClosed]) or may have been ([ErrOutcomeUnknown]).
//
// # What piles up while the broker is away
//
// The queue is bounded by [Config.MaxQueued] and [Config.MaxQueuedBytes].
// When it is full, a publish's [QueuePolicy] (per client, or per message in
// [Message.QueuePolicy]) decides: [Block] waits for room, [FailNewest]
// fails at once ([ErrQueueFull]), [DropOldest] drops the oldest waiting
// message that allows it ([ErrDropped]), [LatestPerTopic] keeps only the
// newest waiting value per topic ([ErrSuperseded]). A message already
// written is never dropped. An MQTT 5 Message Expiry Interval that runs
// out in the queue withdraws the message ([ErrExpired]). [Client.Flush]
// waits until everything published before it has its result, and
// [Client.Stats] counts what happened, cheaply enough to poll.
//
// # Surviving a restart of the process
//
// With [Config.Store] (package store: a checksummed append-only file), a
// QoS 1/2 message is durable before its PUBLISH is written, and a new
// process with the same store and ClientID sends what the last one could
// not finish; such a publish's result in the old process is [ErrInStore].
// The broker must keep its side too: a persistent session, and for
// Mosquitto "persistence true".
//
// # Channels, not callbacks
//
// Inbound messages arrive on [Client.Messages]; a QoS 1/2 message is
// acknowledged once the application has received it (or called
// [Message.Ack] with [Config.ManualAck]), so a slow application holds back
// the broker through flow control instead of losing messages. Connection
// changes arrive on [Client.Events], which never blocks the client.
// [Client.PublishAsync] returns a channel with the publish's one result.
// No library goroutine runs application code, and no library goroutine
// waits on the application without also watching for shutdown.
//
// # Faults are tested, not hoped for
//
// Package mqtttest provides an embedded broker that restarts with its
// sessions intact, a fault proxy (cut, black hole, latency, split writes)
// and a scripted broker for hostile input; the client's own tests use them,
// and so can yours.
package mqtt

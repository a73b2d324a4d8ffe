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
// bounded queue ([Config.MaxQueued]); on reconnect, unacknowledged QoS 1/2
// messages are sent again in their original order before anything new, and
// if the broker lost the session the client subscribes again. Every publish
// ends with exactly one result: nil once delivered to the broker (QoS 1
// PUBACK, QoS 2 PUBCOMP; QoS 0 once written), or an error that says whether
// the message was never sent ([ErrWithdrawn], [ErrInvalidMessage],
// [ErrClosed]) or may have been ([ErrOutcomeUnknown]).
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

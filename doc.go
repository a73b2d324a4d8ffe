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
// [Dial] (or [Start]) returns a [Client] whose session lives until
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
// A broker may refuse a message by ending the connection (MQTT 3.1.1 has no
// other way): after two connections the broker ended with the same
// publish first in flight, the next sends it alone, and the others once it
// is acknowledged (each alone, if the broker ends that connection too
// soon after). A message whose lone sending the broker answers at once by
// ending the connection three times in a row ends with [ErrRefused], so
// that it does not hold back the messages behind it forever. A SUBSCRIBE
// or UNSUBSCRIBE the broker answers so (AWS IoT Core does, for a filter
// the client may not use) is sent alone and refused the same way, instead
// of ending every connection right after it starts.
//
// # Starting while the broker is away
//
// [Dial] returns once the first connection is up. [Start] returns at once
// and connects in the background, under the same [Config.Backoff] as every
// reconnect: a device that boots during an outage works from the start.
// Until the first connection everything behaves as during an outage:
// publishes wait in the queue, one whose ctx ends first is withdrawn
// ([ErrWithdrawn]), subscribes wait, [Config.Store] is already restored,
// and [Client.Events] reports Reconnecting, then Connected.
// [Client.WaitConnected] waits until a connection is up (now, not once),
// and returns [Client.Err] if the strategy gave up. See ExampleStart.
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
// # Routes and requests
//
// A [Route] gives the messages of some topic filters a channel of their
// own: [Client.Route] for filters the client is subscribed to anyway,
// [Client.SubscribeRoute] to subscribe and route in one call (under
// MQTT 5 by Subscription Identifier, so overlapping filters route
// exactly). Each message goes to the first route that takes it, in the
// order the routes were made, and the rest to [Client.Messages]. A slow
// route does not hold back a fast one, until the acknowledgements that
// MQTT wants in arrival order, or [Config.MaxPending] messages waiting in
// all, make every route wait for it; the Route documentation says when.
// [Match] is the topic matching a broker does.
//
// [Client.Request] (MQTT 5) publishes a request with a Response Topic and
// Correlation Data of its own and returns the reply, bounded by its ctx;
// [Client.Respond] answers one. See Example_route and Example_request.
//
// # MQTT 5 properties, credentials, dialers
//
// With [Config.Version] 5, [Properties] carry a message's MQTT 5 properties
// (content type, expiry, response topic, correlation data, user
// properties); [Interval] and [Flag] fill in its optional fields, and no
// other package need be imported. [Config.ConnectProperties] adds user
// properties and the problem and response information requests to the
// CONNECT, and the Connected event's [Event.Connack] holds what the broker
// answered: its limits, an assigned client identifier, response
// information. [Config.Credentials] is asked for a username and password
// before every connection attempt, for tokens that expire, and
// [Config.Dial] replaces the client's dialer. See ExampleProperties,
// ExampleConfig_credentials and ExampleConfig_dial.
//
// [Config.Auth] runs MQTT 5 enhanced authentication (SCRAM and other
// challenge-and-response methods) through an [Authenticator]: its data
// goes in CONNECT, it answers the broker's AUTH challenges, and it checks
// the broker's final data in CONNACK; [Client.Reauthenticate] runs the
// exchange again on a live connection. [Config.TopicAliases] lets the
// client replace a repeated topic by a two-byte alias, within the broker's
// Topic Alias Maximum, afresh on every connection. See ExampleConfig_auth
// and ExampleConfig_topicAliases.
//
// # Faults are tested, not hoped for
//
// Package mqtttest provides an embedded broker that restarts with its
// sessions intact, a fault proxy (cut, black hole, latency, split writes)
// and a scripted broker for hostile input; the client's own tests use them,
// and so can yours.
package mqtt

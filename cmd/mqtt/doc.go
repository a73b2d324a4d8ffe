// Mqtt is the command-line tool of github.com/robustmqtt/mqtt.
//
// Usage:
//
//	mqtt <command> [flags]
//
// # mqtt demo
//
// The demo is the library's claim, run where you can watch it: it needs
// nothing but Go.
//
//	go run ./cmd/mqtt demo              # about 20 seconds
//	go run ./cmd/mqtt demo -duration 1m
//
// It starts an embedded broker that keeps its sessions across restarts
// (package mqtttest), a fault proxy in front of it, a monitor that
// subscribes to everything, and the three devices of MicroPython's
// umqtt.robust README, each a configuration of the same client:
//
//   - temperature: a reading every half second (once a minute in real
//     life), QoS 0, backoff.Never. Its client stops at the first fault; the
//     sensor dials again at its next reading, as a sleeping sensor would, and
//     a reading it could not send is simply gone.
//   - button: a press every second or so, QoS 1, a persistent session, and a
//     relevance window (15 s) as the publish's context: a press that cannot
//     be sent within it is withdrawn, never delivered late.
//   - alarm: a window alarm every second or so, QoS 1, a persistent
//     session, exponential backoff with full jitter, no deadline: it waits
//     through every outage.
//
// Every few seconds it injects a fault: a broker restart, a cut of every
// connection, or a black hole (the network silently stops carrying data,
// which only the one-second keepalive notices). A table shows, per device,
// how many messages were sent, acknowledged by the broker, withdrawn, in
// doubt (the relevance window closed after the message was sent), delivered
// to the monitor, delivered more than once (QoS 1 is "at least once"), and
// how often the device reconnected. On a terminal it is redrawn in place;
// otherwise it is printed as plain lines.
//
// At the end the faults stop, the devices finish what they owe, and a
// summary says what was lost. The exit status is 0 only if every
// acknowledged button press and alarm reached the monitor; lost temperature
// readings are the temperature sensor's choice.
package main

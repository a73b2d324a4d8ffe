// Package fleet holds thousands of MQTT clients in one process against a
// broker in a child process, measures what each client costs while idle,
// and restarts the broker under the whole fleet to measure the reconnect
// storm that follows: the connection attempts per second the broker sees,
// how long until every client is back with its session, and whether any
// acknowledged message was lost.
//
// Three processes take part. This one holds the clients and a publisher.
// The broker is mochi-mqtt (mqtttest.Broker, in this binary re-executed)
// or Mosquitto, and is stopped and started again on the same port for the
// storm. A counter (this binary again) watches the loopback interface
// with a packet socket and reports every TCP handshake with the broker's
// port as the kernel sees it: each attempt (SYN), the SYNs sent again
// because the first got no answer, and the attempts refused (RST) while
// no broker listened. It stays up across the restart and costs the
// clients nothing.
//
// The command is cmd/fleet; README.md has the figures and how to get them.
package fleet

// Package failover plays random histories of a client whose
// Config.Servers are two brokers that share nothing, a primary and its
// backup, each with the client's session, on real sockets: publishes of
// every QoS from the client, messages to it from a client at each broker,
// and the faults that move it from one broker to the other and back (a
// connection cut, a broker that refuses connections for a while, a broker
// restart that keeps its sessions). Each return to a broker meets the
// session that broker kept, older than the client's. Whatever the
// history: no connection ends with a protocol error, every publish has a
// result, every QoS 1/2 publish that returned nil reaches the watcher of
// a broker, and every QoS 1/2 message a broker acknowledged for the client
// reaches it once the client has been back at that broker.
//
// Its own tests run the histories against mochi-mqtt (mqtttest); the
// interoperability tests run them against Mosquitto.
package failover

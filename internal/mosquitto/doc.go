// Package mosquitto runs a real Mosquitto broker for this module's tests:
// the interop tests (package interop) and the chaos suite (package chaos)
// prove the client against the broker the seed was written for, not only
// against the embedded one of package mqtttest.
//
// New starts the system's mosquitto (Debian's package, 2.x) on a free
// 127.0.0.1 port, with a configuration of its own in t.TempDir():
//
//	listener <port> 127.0.0.1
//	allow_anonymous true
//	persistence true
//	persistence_location <dir>/
//	autosave_interval 1
//	max_queued_messages 0   (no limit: an offline session loses nothing)
//	log_dest stderr, log_type all
//	user root               (only when the tests run as root)
//
// followed by the test's own lines (an acl_file, max_inflight_messages,
// DynamicSecurity's plugin, ...), and stops it when the test ends. NewWith
// with Config.WebSockets adds, last, a second listener for MQTT over
// WebSocket, whose URL Broker.WSURL returns:
//
//	listener <port2> 127.0.0.1
//	protocol websockets
//
// A mosquitto built without WebSocket support refuses that configuration;
// the test is then skipped, with a message saying so. It
// waits for readiness by dialing the port, never by sleeping. Broker.Restart is a graceful restart:
// SIGTERM, wait for the process to exit, start again on the same port.
// Sessions, subscriptions and queued messages come back from the database.
//
// # Persistence that really persists
//
// Started as root, Mosquitto drops its privileges to user mosquitto unless
// the configuration says "user root"; that user cannot write a test's
// temporary directory, so Mosquitto persists nothing, and the only sign is a
// line on stderr at shutdown. The helper therefore writes "user root" when it
// runs as root, and Broker.Stop fails if the database file is missing after a
// graceful stop: a restart test that silently lost the broker's state would
// prove nothing.
//
// # When mosquitto is not installed
//
// Require skips the test with a message saying how to install it
// (apt-get install mosquitto mosquitto-clients), or fails it when the
// environment variable MQTT_REQUIRE_MOSQUITTO is 1, as CI sets it: there a
// missing broker is a broken CI image, not a reason to pass.
//
// # The log
//
// Mosquitto logs everything to mosquitto.log in the broker's directory,
// across restarts. Broker.Log returns it and Broker.WaitLog waits for
// something to appear in it: what the broker did is sometimes the only
// evidence a test has (a session expired, a message was refused, a
// subscription was acknowledged). The chaos suite reads it to tell the
// broker's faults from the client's.
//
// If the test process dies without stopping it, mosquitto gets SIGTERM from
// the kernel (Linux), so no broker outlives its test.
package mosquitto

// Package interop proves the client against a real Mosquitto (Debian's
// package, 2.x) with persistence on, the broker the seed was written for.
// It holds tests only.
//
// Each test starts its own mosquitto on a free 127.0.0.1 port with a
// configuration in a temporary directory (see internal/mosquitto), and
// restarts it gracefully where a test needs the broker's database. The tests
// run for MQTT 3.1.1 and 5.0: QoS 0, 1 and 2 round trips, retained messages,
// the will on an unclean drop, a persistent subscriber that gets what was
// published while it was away and while the broker restarted, CleanStart
// with an existing session, MQTT 5 session expiry, the reason codes of a
// refused publish and subscribe (Mosquitto's dynamic security plugin, whose
// ACL, unlike an acl_file, refuses a SUBSCRIBE), the broker's maximum packet
// size, Receive Maximum in both directions, MQTT 3.1.1 against Mosquitto's
// in-flight quota, the client's defaults against Mosquitto's (every QoS 2
// message once, through an outage and a burst), a QoS 2 PUBLISH sent again
// after a lost PUBREC, and mosquitto_pub and mosquitto_sub as the other
// party.
//
// A few tests pin down client bugs they found (see each test's comment):
// TestResubscribeSendsOneSubscribe (with TestSessionExpiry) and
// TestPublishOverMessageSizeLimit.
//
// Without mosquitto the tests skip, saying how to install it:
//
//	apt-get install mosquitto mosquitto-clients
//
// With MQTT_REQUIRE_MOSQUITTO=1 (as in CI) they fail instead.
//
// TestTwinClientsOnMosquitto runs two clients with one ClientID and checks
// that both are told (ErrClientIDConflict) and that a strategy can make one
// step aside. TestSharedSubscriptions runs four consumer processes in one
// $share group against Mosquitto and mochi, kills one and stops another
// mid-stream, and accounts for every job (docs/shared-subscriptions.md).
// TestClusterFailover runs a two-node ejabberd cluster
// (scripts/cluster/start.sh) and kills the node a publisher is on: it is
// opt-in, with MQTT_CLUSTER=1, or MQTT_REQUIRE_CLUSTER=1 (as in CI) to fail
// instead of skipping where ejabberd cannot be installed or started.
package interop

// Mqtt is the command-line tool of github.com/robustmqtt/mqtt.
//
// Usage:
//
//	mqtt <command> [flags]
//
// # mqtt pub and mqtt sub
//
// They take the flags of mosquitto_pub and mosquitto_sub, so that
//
//	mqtt sub -h 127.0.0.1 -t 'home/#' -v -q 1
//	mqtt pub -h 127.0.0.1 -t home/window -m broken -q 1
//	tail -f events.log | mqtt pub --url mqtt://user:secret@broker/log -l -q 1
//
// do what their mosquitto counterparts do. "mqtt pub -help" and "mqtt sub
// -help" list the flags; Go spells them with one dash or two alike.
//
// Both are this module's client: a lost connection is re-established with
// exponential backoff (100ms to 5s, jittered), and said on stderr
// ("mqtt sub: connection lost: ...; reconnecting", "mqtt sub: reconnected
// to ..."). sub keeps printing through broker restarts; with -c -i id its
// session is persistent, so what is published while it is away arrives when
// it is back, if the broker kept the session. It acknowledges a QoS 1 or 2
// message only once the message is written to stdout. pub waits for the
// acknowledgement of every QoS 1 and 2 message before it exits 0; with -l
// it publishes each line of stdin as it is read, without waiting for the
// previous acknowledgement (at most -M in flight; by default the library's
// window, 20 with MQTT 3.1.1: what every broker takes in its default
// configuration).
//
// Where they differ from mosquitto's:
//
//   - The first connection must come within -W, or 10 seconds without it;
//     after that a lost connection is retried for ever. A refused login
//     (bad credentials, not authorized, banned, bad client identifier,
//     unsupported version), a server certificate that does not verify and
//     a TLS alert from the broker end the command at once.
//   - -W takes seconds ("5", "0.5") or a Go duration ("500ms"), counts from
//     the start, and bounds everything: connecting, publishing, the
//     acknowledgements. pub has it too. When it elapses the exit status is
//     27, as mosquitto_sub's, and stderr says so.
//   - --url (or -L) also takes tcp://, tls://, ssl://, ws:// and wss://.
//     For ws:// and wss:// the path is the WebSocket endpoint's, not a
//     topic: give -t. The user name and password are %-decoded; as with
//     mosquitto the host starts after the last '@' before the first '/',
//     so a '/' in a password is written %2F (and '%' is %25). Giving -h
//     or -p as well is an error.
//   - Any TLS flag (--cafile, --cert with --key, --insecure) turns TLS on
//     for -h and -p, with port 8883 by default; so does -p 8883 alone,
//     with the system's certificate authorities, as with mosquitto. With
//     --url a TLS flag needs a TLS scheme. So a password is never sent in
//     clear where TLS was asked for: mosquitto's --insecure without --cafile
//     connects in clear, this one does not. For plain MQTT on port 8883
//     write --url tcp://host:8883. --insecure skips the host name check
//     only, as mosquitto's does: the chain must still verify.
//   - --pw-file and $MQTT_CLI_PASSWORD (see Passwords below) are not
//     mosquitto's.
//   - -d says on stderr, in words, when the command connected, subscribed,
//     had a message acknowledged (pub), and why it retries; mosquitto's -d
//     prints packets on stdout.
//   - -V takes 311, mqttv311, 5 or mqttv5; MQTT 3.1 is not supported. With
//     -c an MQTT 5 session never expires, as with mosquitto.
//   - The default client identifier is mqtt_pub_<pid> or mqtt_sub_<pid>.
//   - Ctrl-C (or SIGTERM) disconnects cleanly. sub exits 0; pub exits 0 if
//     everything it had read was acknowledged, 1 otherwise. A second Ctrl-C
//     kills the process.
//   - Not implemented: -x, -I, -A, -N, -R, -E, -F, -T, -U, -D, --capath,
//     --psk, --proxy, --unix, --repeat, --quiet, --nodelay, --tls-version,
//     --ciphers.
//
// Exit status: 0 done; 1 failed (one line on stderr, "mqtt pub: <why>");
// 2 a mistake on the command line (one line too); 27 -W elapsed.
//
// # Passwords
//
// A password given with -P or in --url is on the command line, which every
// user of the machine can read (ps, /proc/<pid>/cmdline), and it stays in
// the shell's history. Two ways keep it off:
//
//   - --pw-file FILE reads the password from the first line of FILE, line
//     ending (\n or \r\n) removed; a file whose first line is empty is an
//     error. A FILE that other users may read is taken, with a warning on
//     stderr: chmod 600 it. (Docker and Kubernetes mount secrets readable
//     by all, in containers where "all" is one user.)
//   - The environment variable MQTT_CLI_PASSWORD, which only the user and
//     root can read (/proc/<pid>/environ). It is taken only when a user
//     name is given (-u, or in --url) and no password is: so an exported
//     variable never turns an anonymous connection into a refused one, nor
//     goes to a broker no user name was given for. Its name is this
//     command's own, not MQTT_PASSWORD, which other programs set. An empty
//     value counts as unset.
//
// Precedence: -P wins over a password in --url (as -u over its user name),
// and -P, --url and --pw-file each win over $MQTT_CLI_PASSWORD. --pw-file
// with -P or with a password in --url is a usage error, rather than one
// silently winning. -d says which source the password came from.
//
// No message of the command shows a password or part of one: a --url in
// an error has its password replaced by xxxxx, and a --url the command
// cannot read is described, not repeated. A --url with a ':' before its
// first '/' and an '@' after it (mqtt://h:1883/a@b) is refused: it reads
// the same as a password with an unencoded '/' (mqtt://u:12/34@h); give
// such a topic with -t.
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

// Mqtt is the command-line tool of github.com/robustmqtt/mqtt.
//
// Usage:
//
//	mqtt <command> [flags]
//
// # mqtt pub, mqtt sub and mqtt rr
//
// They take the flags of mosquitto_pub, mosquitto_sub and mosquitto_rr,
// so that
//
//	mqtt sub -h 127.0.0.1 -t 'home/#' -v -q 1
//	mqtt pub -h 127.0.0.1 -t home/window -m broken -q 1
//	tail -f events.log | mqtt pub --url mqtt://user:secret@broker/log -l -q 1
//	mqtt sub -t 'home/#' -F '%I %t %p' -R
//	mqtt pub -t home/cmd -m on -D publish message-expiry-interval 60 -D publish user-property from cli
//	mqtt rr -t service/time -e replies/me -m now
//
// do what their mosquitto counterparts do. "mqtt pub -help", "mqtt sub
// -help" and "mqtt rr -help" list the flags; Go spells them with one dash
// or two alike.
//
// All three are this module's client: a lost connection is re-established
// with exponential backoff (100ms to 5s, jittered), and said on stderr
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
// The flags of mosquitto's they take, besides -h -p -L (--url) -t -m -f
// -l -n -s -r -q -i -u -P -k -c -V -v -C -W -d, the wills (--will-topic,
// --will-payload, --will-qos, --will-retain) and TLS (--cafile, --cert,
// --key, --insecure):
//
//   - -D (or --property) command identifier value (-D command
//     user-property name value): an MQTT 5 property; see Properties below. It chooses MQTT 5 when -V
//     is not given.
//   - -x seconds: the session expiry interval (MQTT 5; it chooses MQTT 5
//     when -V is not given): 0 to 4294967294, or -1, 4294967295 or ∞ for
//     never, which needs -i. Without -x, -c means never and no -c 0, as
//     with mosquitto. -x without -c is a clean start whose session the
//     broker keeps that long after the connection.
//   - -I prefix: the client identifier is the prefix and the process id.
//   - --nodelay: accepted; Go's connections never delay small writes.
//   - pub: --repeat count and --repeat-delay seconds publish the message
//     (-m, -f, -s or -n) count times, each once the previous one is
//     acknowledged (QoS 1, 2) or written (QoS 0), the delay after it.
//   - sub and rr: -F format (see Output format below), -N (no newline
//     after a message), --pretty (indented JSON for -F %j and %J).
//   - sub: -R (do not print retained messages), --retained-only (print
//     only those, and exit 0 at the first message that is not retained),
//     --remove-retained (clear each retained message received: publish an
//     empty retained message to its topic, at QoS 1; with --retained-only
//     it clears a tree and exits, mosquitto_sub's idiom), -T filter (do
//     not print what matches), -U filter (unsubscribe, after subscribing
//     to -t, if any: for a persistent session, -c), -E (exit once
//     subscribed and unsubscribed). -C counts the messages printed.
//   - rr: -e response-topic. See Request and response below.
//
// Not implemented: -A (bind address), -S (SRV lookups), --unix, --proxy,
// --psk and --psk-identity, --capath, --tls-version, --ciphers,
// --tls-alpn, --tls-engine, --keyform, --tls-use-os-certs (the system's
// certificate authorities are the default already), --random-filter,
// --quiet, --version, -o (options file) and mosquitto's configuration
// files; pub's -m with -l, and rr's -l.
//
// Where they differ from mosquitto's:
//
//   - Without -W, a first connection that is refused ends the command at
//     once, as mosquitto's do: nothing listens on the port (or the peer
//     resets the connection), there is no route to the host, its name does
//     not resolve, or the broker's CONNACK says no. Another failure (a
//     timeout, a broker that closes the connection) is retried for 10
//     seconds. With -W, every failure is retried until -W elapses, except
//     those retrying cannot fix: a refused login (bad credentials, not
//     authorized, banned, bad client identifier, unsupported version), a
//     server certificate that does not verify and a TLS alert from the
//     broker, which end it at once. Once connected, a lost connection is
//     retried for ever (sub) or until -W (pub, rr).
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
//   - -V takes 311, mqttv311, 5 or mqttv5; MQTT 3.1 is not supported. -D
//     or -x with -V 311 is an error (mosquitto_pub then sends nothing, or
//     leaves -x out).
//   - A refusal exits 1; mosquitto's clients exit with the CONNACK's
//     reason code.
//   - The default client identifier is mqtt_pub_<pid>, mqtt_sub_<pid> or
//     mqtt_rr_<pid>.
//   - Without -F, sub prints an empty message as an empty line (with -v,
//     "topic " and an empty line); mosquitto_sub prints nothing for it
//     (with -v, "topic (null)").
//   - sub's -U works without -t (for a persistent session, -c);
//     mosquitto_sub wants a -t as well.
//   - A mistake is an error rather than ignored: --repeat with -l,
//     --repeat-delay without --repeat, an unknown -F conversion, a -D
//     property given twice (user-property aside).
//   - Ctrl-C (or SIGTERM) disconnects cleanly. sub exits 0; pub exits 0 if
//     everything it had read was acknowledged, 1 otherwise; rr exits 1. A
//     second Ctrl-C kills the process.
//
// Exit status: 0 done; 1 failed (one line on stderr, "mqtt pub: <why>");
// 2 a mistake on the command line (one line too); 27 -W elapsed.
//
// # Properties
//
// -D sends an MQTT 5 property, named as in the specification with '-'
// between words, in the packet that command names (case does not
// matter). What the library's Config and Message carry is supported:
//
//   - connect: session-expiry-interval (as -x: give one or the other),
//     receive-maximum (Config.MaxPending), maximum-packet-size (at most
//     268435460: no packet is larger), topic-alias-maximum.
//   - publish (pub and rr): payload-format-indicator (0 or 1),
//     message-expiry-interval, content-type, response-topic (pub: for rr
//     it is -e), correlation-data (a string), user-property (repeat it for
//     more).
//   - will (with --will-topic): those of publish, and will-delay-interval.
//
// Refused, with the reason: the properties MQTT 5 does not let a client
// send in that packet (server-reference, maximum-qos, ...), and these,
// which the client does not send: connect user-property,
// authentication-method and authentication-data (no enhanced
// authentication), request-problem-information and
// request-response-information; publish topic-alias; every property of
// subscribe, unsubscribe, disconnect, puback, pubrec, pubrel, pubcomp and
// auth. sub publishes nothing, so it refuses -D publish.
//
// # Output format
//
// sub -F format and rr -F format print each message as format says,
// followed by a newline unless -N:
//
//   - %t topic, %p payload, %x and %X the payload in hexadecimal, %l its
//     length, %q QoS, %r retained (1) or not (0), %% a %;
//   - %I the time it arrived, ISO 8601 ("2016-08-10T09:47:38+0100"), %U
//     as a Unix time with nanoseconds;
//   - %j the message as one JSON object: {"tst", "topic", "qos",
//     "retain", "payloadlen", "properties" (MQTT 5, when it has any),
//     "payload"}, the payload a string when it is UTF-8 and otherwise an
//     array of its bytes; %J the same with the payload as JSON itself (a
//     payload that is not valid JSON is printed as with %j, with a warning
//     on stderr, where mosquitto_sub prints no object). --pretty indents
//     them. Their "tst" is RFC 3339 with microseconds
//     ("2020-05-06T22:12:00.000000+01:00"); mosquitto's has a stray 'Z'
//     before the offset. There is no "mid".
//   - MQTT 5 properties, empty when absent: %C content type, %D
//     correlation data, %E message expiry interval (what is left of it),
//     %F payload format indicator, %P user properties ("name:value",
//     space-separated), %R response topic, %S subscription identifier, %A
//     topic alias.
//   - @ and a letter is strftime's field of the time it arrived, in the C
//     locale: @a @A @b @B @d @D @e @F @h @H @I @j @m @M @p @R @s @S @T @u
//     @w @y @Y @z @Z, and @N its nanoseconds; @@ is an @.
//   - \n \t \r \0 \a \e \v and \\ are escapes.
//   - %[-][0][width][.precision]conversion: width pads (on the left; on
//     the right with -; with zeros for a number with 0), precision cuts a
//     string to so many characters (the payload of %p, %x and %X to so
//     many bytes; mosquitto_sub's cuts %p to the width).
//
// Not supported, and an error: %m (the packet identifier, which the client
// does not show), other conversions, @ fields and escapes.
//
// # Request and response
//
// mqtt rr, as mosquitto_rr, subscribes to the response topic (-e), then
// publishes one request (-m, -f, -s or -n) to -t with the Response Topic
// -e and Correlation Data (random, or -D publish correlation-data), and
// prints the first response as sub would (-v, -F, -N), then exits 0. A
// response is a message on the response topic with the same correlation
// data, or with none (a responder that does not send it back); a retained
// message (there before the request) and one with other correlation data
// (a response to somebody else's request) are skipped (-d says so), and
// the subscription has No Local, so that a request sent to its own
// response topic is not its response. It needs MQTT 5, its default: -V
// 311 is an error. Without -W it waits for ever. -R is accepted: a
// retained message is never the response.
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
//	go run ./cmd/mqtt demo -url mqtt://broker.local:1883
//
// It starts an embedded broker that keeps its sessions across restarts
// (package mqtttest), a fault proxy in front of it, a monitor that
// subscribes to everything (QoS 2), and the three devices of MicroPython's
// umqtt.robust README, each a configuration of the same client:
//
//   - temperature: a reading every half second (once a minute in real
//     life), QoS 0, backoff.Never. Its client stops at the first fault; the
//     sensor dials again at its next reading, as a sleeping sensor would, and
//     a reading it could not send is simply gone.
//   - button: a press every second or so, QoS 1, a persistent session, and a
//     relevance window (15 s) as the publish's context: a press that cannot
//     be sent within it is withdrawn, never delivered late.
//   - alarm: a window alarm every second or so, QoS 2 (exactly once), a
//     persistent session, exponential backoff with full jitter, no
//     deadline: it waits through every outage.
//
// Every few seconds (-faults) it injects a fault: a broker restart, a cut
// of every connection, or a black hole (the network silently stops
// carrying data, which only the one-second keepalive notices); -faults 0
// injects none. A table shows, per device,
// how many messages were sent, acknowledged by the broker, withdrawn, in
// doubt (the relevance window closed after the message was sent), delivered
// to the monitor, delivered more than once (QoS 1 is "at least once"), and
// how often the device reconnected. On a terminal it is redrawn in place;
// otherwise it is printed as plain lines.
//
// With -url the devices and the monitor use your broker instead, and no
// broker is embedded: mosquitto's form, tcp:// or mqtt://, tls://, ssl://
// or mqtts:// (the system's certificate authorities), with a user name and
// password if it wants them, and a path that is the prefix of the topics
// (by default mqtt-demo/<process id>/: the demo never publishes to your
// home/ topics). The client identifiers are mqtt-demo-<process id>-<device>,
// and at the end the demo discards the persistent sessions it made (a clean
// connection with each identifier). A broker the demo did not start, it
// cannot restart: the faults are the proxy's, in front of your broker,
// cuts and black holes in turn (TLS goes through the proxy, checked for
// your broker's name). The proxy cannot sit in front of ws:// or wss://
// (the HTTP Host would name it): those take -faults 0.
//
// At the end the faults stop, the devices finish what they owe, and a
// summary says what was lost. The exit status is 0 only if every
// acknowledged button press and alarm reached the monitor; lost temperature
// readings are the temperature sensor's choice.
package main

package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// Every mistake on the command line is one line on stderr, "mqtt <command>:
// <reason>", and exit status 2 (1 for a file that cannot be read), before
// anything is dialed.
func TestBadFlags(t *testing.T) {
	t.Setenv(passwordEnv, "") // the developer's own must not change the outcome
	cases := []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"pub", "-m", "x"}, 2, "give the topic to publish to: -t topic"},
		{[]string{"pub", "-t", "a"}, 2, "give exactly one of -m message, -f file, -l, -n and -s"},
		{[]string{"pub", "-t", "a", "-m", "x", "-l"}, 2, "give exactly one of"},
		{[]string{"pub", "-t", "a", "-n", "-s"}, 2, "give exactly one of"},
		{[]string{"pub", "-t", "a/#", "-m", "x"}, 2, `-t "a/#": `},
		{[]string{"pub", "-t", "a", "-t", "b", "-m", "x"}, 2, "give one topic, not 2"},
		{[]string{"pub", "-t", "b", "-m", "x", "--url", "tcp://127.0.0.1/a"}, 2, "give one topic, not 2"},
		{[]string{"pub", "-t", "a", "-m", "x", "-q", "3"}, 2, "-q 3: QoS is 0, 1 or 2"},
		{[]string{"pub", "-t", "a", "-m", "x", "-q", "one"}, 2, `invalid value "one" for flag -q`},
		{[]string{"pub", "-t", "a", "-m", "x", "-V", "mqttv31"}, 2, "MQTT 3.1 is not supported; use 311 or 5"},
		{[]string{"pub", "-t", "a", "-m", "x", "-V", "6"}, 2, `-V "6": use 311 (mqttv311) or 5 (mqttv5)`},
		{[]string{"pub", "-t", "a", "-m", "x", "-c"}, 2, "-c (a persistent session) needs a client id: give -i"},
		{[]string{"pub", "-t", "a", "-m", "x", "-k", "70000"}, 2, "-k 70000: keepalive is 0 (off) to 65535 seconds"},
		{[]string{"pub", "-t", "a", "-m", "x", "-p", "0"}, 2, "-p 0: a port is 1 to 65535"},
		{[]string{"pub", "-t", "a", "-m", "x", "-h", ""}, 2, "-h: the host is empty"},
		{[]string{"pub", "-t", "a", "-m", "x", "-W", "soon"}, 2, `invalid value "soon" for flag -W: want a number of seconds`},
		{[]string{"pub", "-t", "a", "-m", "x", "-M", "0"}, 2, "-M 0: the window is 1 to 65535 messages"},
		{[]string{"pub", "-t", "a", "-m", "x", "-zz"}, 2, "flag provided but not defined: -zz (mqtt pub -help lists the flags)"},
		{[]string{"pub", "-t", "a", "hello"}, 2, `unexpected argument "hello"`},
		{[]string{"pub", "-t", "a", "-m", "x", "mqtt://me:secret@h/a"}, 2, `unexpected argument "mqtt://me:xxxxx@h/a"`},
		{[]string{"pub", "-t", "a", "-u", "me", "-P", "my", "secret"}, 2, "unexpected argument after the password of -P: quote a password that has spaces in it"},
		{[]string{"pub", "-t", "a", "-u", "me", "--P=my", "secret"}, 2, "unexpected argument after the password of -P"},
		{[]string{"pub", "-t", "a", "-u", "me", "-P", "x", "--", "word"}, 2, `unexpected argument "word"`},
		{[]string{"pub", "-t", "a", "-m", "x", "-P", "secret"}, 2, "a password needs a username (-u) in MQTT 3.1.1"},
		{[]string{"pub", "-m", "x", "--url", "tcp://127.0.0.1/a", "-h", "127.0.0.1"}, 2, "give either --url or -h and -p, not both"},
		{[]string{"pub", "-m", "x", "--url", "127.0.0.1:1883/a"}, 2, "has no scheme: write it as mqtt://host:port/topic"},
		{[]string{"pub", "-m", "x", "--url", "mqtt://me:secret@/a"}, 2, `--url "mqtt://me:xxxxx@/a" has no host`},
		{[]string{"pub", "-m", "x", "--url", "foo://127.0.0.1/a"}, 2, `unknown scheme "foo"`},
		{[]string{"pub", "-m", "x", "--url", "tcp://127.0.0.1/a", "--insecure"}, 2, "--cafile, --cert, --key and --insecure need a TLS URL"},
		{[]string{"pub", "-m", "x", "--url", "mqtt://me:se/cret@127.0.0.1/a"}, 2, "write a '/' in a password as %2F"},
		{[]string{"pub", "-m", "x", "--url", "mqtt://me:secret%@127.0.0.1/a"}, 2, "the password has a % that does not start an escape"},
		{[]string{"pub", "-m", "x", "--url", "me:secret@127.0.0.1/a"}, 2, "--url has no scheme"},
		{[]string{"pub", "-m", "x", "--url", "mqtt://me:secret"}, 2, "what follows mqtt:// is not host, host:port or [IPv6 address]:port"},
		{[]string{"pub", "-t", "a", "-m", "x", "-h", "me:secret@127.0.0.1"}, 2, "-h takes a host name or an IP address, not a URL"},
		{[]string{"pub", "-t", "a", "-m", "x", "-u", "me", "-P", "secret", "--pw-file", "/nonexistent"}, 2, "give the password once: -P or --pw-file, not both"},
		{[]string{"pub", "-t", "a", "-m", "x", "-u", "me", "--pw-file", "/nonexistent/pw"}, 1, "--pw-file: open /nonexistent/pw"},
		{[]string{"pub", "-t", "a", "-m", "x", "--will-qos", "1"}, 2, "--will-payload, --will-qos and --will-retain need --will-topic"},
		{[]string{"pub", "-t", "a", "-m", "x", "--will-topic", "a/+"}, 2, `--will-topic "a/+": `},
		{[]string{"pub", "-t", "a", "-m", "x", "--will-topic", "w", "--will-qos", "3"}, 2, "--will-qos 3: QoS is 0, 1 or 2"},
		{[]string{"pub", "-t", "a", "-m", "x", "--cert", "client.pem"}, 2, "--cert and --key go together: give both"},
		{[]string{"pub", "-t", "a", "-m", "x", "--cafile", "/nonexistent/ca.pem"}, 1, "--cafile: open /nonexistent/ca.pem"},
		{[]string{"pub", "-t", "a", "-f", "/nonexistent/payload"}, 1, "-f: open /nonexistent/payload"},
		{[]string{"sub"}, 2, "give a topic filter to subscribe to: -t filter"},
		{[]string{"sub", "-t", "a/#/b"}, 2, `-t "a/#/b": `},
		{[]string{"sub", "-t", "a", "-C", "-1"}, 2, "-C -1: the count cannot be negative"},
		{[]string{"sub", "-t", "a", "-l"}, 2, "flag provided but not defined: -l (mqtt sub -help lists the flags)"},
		{[]string{"sub", "-t", "a", "-t"}, 2, "flag needs an argument: -t"},

		// -D, -x, -I
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "publish", "content-type"}, 2, "-D takes a command, a property and its value"},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "publish", "user-property", "k"}, 2, "-D publish user-property takes a name and a value"},
		{[]string{"pub", "-t", "a", "-m", "x", "-D=publish"}, 2, "write -D command identifier value, as separate words"},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "pubilsh", "content-type", "x"}, 2, `unknown command "pubilsh"`},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "publish", "content_type", "x"}, 2, `unknown property "content_type"`},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "publish", "server-reference", "x"}, 2, "MQTT 5 does not let a client send server-reference in PUBLISH"},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "publish", "topic-alias", "1"}, 2, "-D publish topic-alias: not supported: the client does not send topic aliases"},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "connect", "user-property", "k", "v"}, 2, "not supported: the client's CONNECT carries no user properties"},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "connect", "authentication-method", "SCRAM"}, 2, "not supported: the client does not do MQTT 5 enhanced authentication"},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "disconnect", "session-expiry-interval", "0"}, 2, "not supported: the client's DISCONNECT carries no properties"},
		{[]string{"sub", "-t", "a", "-D", "subscribe", "user-property", "k", "v"}, 2, "not supported: the client's SUBSCRIBE carries no properties"},
		{[]string{"sub", "-t", "a", "-D", "publish", "content-type", "x"}, 2, "mqtt sub publishes nothing"},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "publish", "content-type", "a", "-D", "publish", "content-type", "b"}, 2, "-D publish content-type: given twice"},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "publish", "message-expiry-interval", "-1"}, 2, `-D publish message-expiry-interval "-1": want a whole number from 0 to 4294967295`},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "publish", "payload-format-indicator", "2"}, 2, "want a whole number from 0 to 1"},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "publish", "response-topic", "r/#"}, 2, `-D publish response-topic "r/#": `},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "connect", "receive-maximum", "0"}, 2, "MQTT 5 forbids 0"},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "connect", "receive-maximum", "65536"}, 2, "want a whole number from 0 to 65535"},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "will", "content-type", "x"}, 2, "-D will ... needs --will-topic"},
		{[]string{"pub", "-t", "a", "-m", "x", "-V", "311", "-D", "publish", "content-type", "x"}, 2, "-D publish content-type is MQTT 5: give -V 5, or leave -V out"},
		{[]string{"pub", "-t", "a", "-m", "x", "-V", "311", "-x", "60"}, 2, "-x is MQTT 5: give -V 5, or leave -V out"},
		{[]string{"pub", "-t", "a", "-m", "x", "-x", "soon"}, 2, `invalid value "soon" for flag -x`},
		{[]string{"pub", "-t", "a", "-m", "x", "-x", "4294967296"}, 2, `invalid value "4294967296" for flag -x`},
		{[]string{"pub", "-t", "a", "-m", "x", "-x", "-1"}, 2, "-x -1 (a session that never expires) needs a client id: give -i"},
		{[]string{"pub", "-t", "a", "-m", "x", "-x", "∞", "-I", "p"}, 2, "needs a client id: give -i"},
		{[]string{"pub", "-t", "a", "-m", "x", "-i", "a", "-x", "5", "-D", "connect", "session-expiry-interval", "5"}, 2, "give -x or -D connect session-expiry-interval, not both"},
		{[]string{"pub", "-t", "a", "-m", "x", "-i", "a", "-I", "p"}, 2, "give -i or -I, not both"},
		{[]string{"pub", "-t", "a", "-m", "x", "-D", "connect", "session-expiry-interval", "4294967295"}, 2, "a session that never expires needs a client id: give -i"},

		// pub --repeat
		{[]string{"pub", "-t", "a", "-m", "x", "--repeat", "0"}, 2, "--repeat 0: at least 1"},
		{[]string{"pub", "-t", "a", "-l", "--repeat", "2"}, 2, "--repeat repeats one message (-m, -f, -s or -n), not the lines of -l"},
		{[]string{"pub", "-t", "a", "-m", "x", "--repeat-delay", "1"}, 2, "--repeat-delay needs --repeat"},
		{[]string{"pub", "-t", "a", "-m", "x", "--repeat", "2", "--repeat-delay", "-1"}, 2, `invalid value "-1" for flag -repeat-delay`},

		// sub
		{[]string{"sub", "-t", "a", "-R", "--retained-only"}, 2, "give -R (no retained messages) or --retained-only, not both"},
		{[]string{"sub", "-t", "a", "-T", "a/#/b"}, 2, `-T "a/#/b": `},
		{[]string{"sub", "-t", "a", "-U", "a/#/b"}, 2, `-U "a/#/b": `},
		{[]string{"sub", "-t", "a", "-F", "%m"}, 2, "-F %m: the packet identifier of a message is not available here"},
		{[]string{"sub", "-t", "a", "-F", "%k"}, 2, `unknown conversion %k`},
		{[]string{"sub", "-t", "a", "-F", "%-05"}, 2, "ends in the middle of %-05"},
		{[]string{"sub", "-t", "a", "-F", "@Q"}, 2, "@Q is not a time field"},
		{[]string{"sub", "-t", "a", "-F", `\q`}, 2, `unknown escape \q`},
		{[]string{"sub", "-t", "a", "-F", `x\`}, 2, `ends with a lone \`},

		// rr
		{[]string{"rr", "-t", "a", "-e", "b", "-m", "x", "-V", "311"}, 2, "mqtt rr needs MQTT 5"},
		{[]string{"rr", "-t", "a", "-m", "x"}, 2, "give the response topic: -e topic"},
		{[]string{"rr", "-e", "b", "-m", "x"}, 2, "give the topic to send the request to: -t topic"},
		{[]string{"rr", "-t", "a", "-e", "b/+", "-m", "x"}, 2, `-e "b/+": `},
		{[]string{"rr", "-t", "a", "-e", "b"}, 2, "give exactly one of -m message, -f file, -n and -s"},
		{[]string{"rr", "-t", "a", "-e", "b", "-m", "x", "-D", "publish", "response-topic", "c"}, 2, "give the response topic with -e"},
		{[]string{"rr", "-t", "a", "-e", "b", "-m", "x", "-l"}, 2, "flag provided but not defined: -l"},
	}
	for _, tc := range cases {
		var out, errs bytes.Buffer
		status := run(t.Context(), tc.args, stdio{in: strings.NewReader(""), out: &out, errOut: &errs})
		prefix := "mqtt " + tc.args[0] + ": "
		if status != tc.status || out.Len() > 0 || strings.Count(errs.String(), "\n") != 1 ||
			!strings.HasPrefix(errs.String(), prefix) || !strings.Contains(errs.String(), tc.want) {
			t.Errorf("mqtt %q: exit status %d, stdout %q, stderr %q; want %d and one line %q...%q",
				tc.args, status, out.String(), errs.String(), tc.status, prefix, tc.want)
		}
		if strings.Contains(errs.String(), "secret") {
			t.Errorf("mqtt %q: stderr shows the password: %q", tc.args, errs.String())
		}
	}
}

// The built command behaves the same: one line, status 2.
func TestBadFlagsExitStatus(t *testing.T) {
	_, stderr, status := runCmd(t, nil, "pub", "-t", "a", "-m", "x", "-q", "3")
	if status != 2 {
		t.Errorf("exit status %d, want 2", status)
	}
	oneLine(t, stderr, "mqtt pub: ", "-q 3: QoS is 0, 1 or 2")
}

// -help lists the flags as mosquitto spells them, on stdout, with status 0.
func TestHelp(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"help"}, []string{"pub ", "sub ", "rr ", "demo "}},
		{[]string{"pub", "-help"}, []string{"usage: mqtt pub", "-t topic", "-m message", "-l ", "-q QoS", "--will-topic topic", "--cafile file", "--url URL", "-W seconds", "--pw-file file", "$" + passwordEnv,
			"-D command identifier value", "publish: payload-format-indicator", "-x seconds", "-I prefix", "--repeat count", "--repeat-delay seconds", "--nodelay"}},
		{[]string{"sub", "--help"}, []string{"usage: mqtt sub", "-t filter", "-C count", "-v ", "-c ", "--insecure", "(default localhost)",
			"-D command identifier value", "-x seconds", "-F format", "%j", "-N ", "-R ", "--retained-only", "--remove-retained", "-T filter", "-U filter", "-E ", "--pretty"}},
		{[]string{"rr", "-help"}, []string{"usage: mqtt rr", "-e topic", "-t topic", "-m message", "-F format", "-N ", "-v ", "-W seconds", "(default 5)"}},
	}
	for _, tc := range cases {
		var out, errs bytes.Buffer
		status := run(t.Context(), tc.args, stdio{out: &out, errOut: &errs})
		if status != 0 || errs.Len() > 0 {
			t.Errorf("mqtt %q: exit status %d, stderr %q", tc.args, status, errs.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("mqtt %q: the help lacks %q:\n%s", tc.args, w, out.String())
			}
		}
	}
}

func TestParseBrokerURL(t *testing.T) {
	cases := []struct {
		in   string
		want brokerURL
	}{
		{"mqtt://127.0.0.1:1883/a/b", brokerURL{scheme: "mqtt", server: "mqtt://127.0.0.1:1883", topic: "a/b"}},
		{"MQTTS://u:p%40ss@broker/sensors/#", brokerURL{scheme: "mqtts", server: "mqtts://broker", topic: "sensors/#",
			user: "u", password: "p@ss", hasUser: true, hasPassword: true, tls: true}},
		{"tcp://u:p:q@h/t", brokerURL{scheme: "tcp", server: "tcp://h", topic: "t", user: "u", password: "p:q", hasUser: true, hasPassword: true}},
		{"tcp://[::1]:1883", brokerURL{scheme: "tcp", server: "tcp://[::1]:1883"}},
		{"ws://h:8080/mqtt", brokerURL{scheme: "ws", server: "ws://h:8080/mqtt"}},
		{"wss://u@h", brokerURL{scheme: "wss", server: "wss://h", user: "u", hasUser: true, tls: true}},
		{"mqtt://u:p%2Fss%25@h:1/t", brokerURL{scheme: "mqtt", server: "mqtt://h:1", topic: "t", user: "u", password: "p/ss%", hasUser: true, hasPassword: true}},
		{"mqtt://u:p?s#s@h/t", brokerURL{scheme: "mqtt", server: "mqtt://h", topic: "t", user: "u", password: "p?s#s", hasUser: true, hasPassword: true}},
		{"mqtt://h/a@b", brokerURL{scheme: "mqtt", server: "mqtt://h", topic: "a@b"}},
		{"mqtt://u@h/a@b", brokerURL{scheme: "mqtt", server: "mqtt://h", topic: "a@b", user: "u", hasUser: true}},
		{"tcp://[::1]", brokerURL{scheme: "tcp", server: "tcp://[::1]"}},
		{"tcp://h:65535", brokerURL{scheme: "tcp", server: "tcp://h:65535"}},
	}
	for _, tc := range cases {
		got, err := parseBrokerURL(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseBrokerURL(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"127.0.0.1", "://h", "mqtt://", "mqtt://u@/t", "mqtt://u%zz@h/t",
		"mqtt://u:pa/ss@h/t", "mqtt://u:12/34@h/t", "mqtt://u:p@ss/w@h/t", "mqtt://h:1883/a@b", // where is the host?
		"mqtt://u:secret", "mqtt://h:/t", "mqtt://h:0/t", "mqtt://h:65536/t", "mqtt://h:mqtt/t", "mqtt://::1/t", "mqtt://[]/t", "mqtt://h]/t"} {
		if u, err := parseBrokerURL(bad); err == nil {
			t.Errorf("parseBrokerURL(%q) = %+v, want an error", bad, u)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"mqtt://u:secret@h/t":    "mqtt://u:xxxxx@h/t",
		"mqtt://u:se/cr@et@h/t":  "mqtt://u:xxxxx@h/t",
		"mqtt://u:se?c#r@h/t":    "mqtt://u:xxxxx@h/t",
		"u:secret@h/t":           "u:xxxxx@h/t",
		"mqtt:/u:se/cret@h/t":    "mqtt:xxxxx@h/t",
		"mqtt://u@h/t":           "mqtt://u@h/t",
		"mqtt://h/a@b":           "mqtt://h/a@b",
		"mqtt://h:1883/a@b":      "mqtt://h:xxxxx@b", // over-redacted: harmless in an error
		"mqtt://u:s@h/topic@x/y": "mqtt://u:xxxxx@x/y",
		"mqtt://h:1883/t":        "mqtt://h:1883/t",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSecondsFlag(t *testing.T) {
	for in, want := range map[string]time.Duration{"5": 5 * time.Second, "0.5": 500 * time.Millisecond, "250ms": 250 * time.Millisecond, "0": 0} {
		var s seconds
		if err := s.Set(in); err != nil || time.Duration(s) != want {
			t.Errorf("-W %s = %v, %v; want %v", in, time.Duration(s), err, want)
		}
	}
	for _, bad := range []string{"-1", "-1s", "soon", "NaN", "1e300"} {
		var s seconds
		if err := s.Set(bad); err == nil {
			t.Errorf("-W %s = %v, want an error", bad, time.Duration(s))
		}
	}
}

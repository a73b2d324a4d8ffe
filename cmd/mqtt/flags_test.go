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
		{[]string{"help"}, []string{"pub ", "sub ", "demo "}},
		{[]string{"pub", "-help"}, []string{"usage: mqtt pub", "-t topic", "-m message", "-l ", "-q QoS", "--will-topic topic", "--cafile file", "--url URL", "-W seconds", "--pw-file file", "$" + passwordEnv}},
		{[]string{"sub", "--help"}, []string{"usage: mqtt sub", "-t filter", "-C count", "-v ", "-c ", "--insecure", "(default localhost)"}},
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

package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
)

// -F prints what mosquitto_sub's does for the same format; the cases that
// mosquitto 2.0.11 prints are in TestMosquittoParity.
func TestFormat(t *testing.T) {
	expiry, pfi := uint32(60), byte(1)
	alias := uint16(3)
	full := mqtt.Message{Topic: "a/b", Payload: []byte(`{"x":1}`), QoS: 1, Retain: true, Properties: &codec.Properties{
		ContentType: "application/json", CorrelationData: []byte("c-1"), MessageExpiry: &expiry, PayloadFormat: &pfi,
		ResponseTopic: "r/t", SubscriptionIdentifier: []uint32{7}, TopicAlias: &alias,
		User: []codec.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: "w"}},
	}}
	plain := mqtt.Message{Topic: "t", Payload: []byte("hi\x00\xff")}
	now := time.Date(2024, 2, 29, 13, 4, 5, 123456789, time.FixedZone("", 3600))
	cases := []struct {
		format string
		m      mqtt.Message
		want   string
	}{
		{"%t %p", full, `a/b {"x":1}`},
		{"%q%r%l|%%|%x|%X", full, "117|%|7b2278223a317d|7B2278223A317D"},
		{"%C|%D|%E|%F|%P|%R|%S|%A", full, "application/json|c-1|60|1|k:v k:w|r/t|7|3"},
		{"%C|%D|%E|%F|%P|%R|%S|%A|", plain, "||||||||"},
		{"[%5t][%-5t][%.1t][%5.2t][%05l][%-5l][%3E]", full, "[  a/b][a/b  ][a][   a/][00007][7    ][ 60]"},
		{"[%3E][%03E]", plain, "[   ][   ]"},
		{"%.2p|%6.2x", full, `{"|  7b22`},
		{`%I %U|@Y-@m-@dT@H:@M:@S@z @N @@ @s @j`, plain, "2024-02-29T13:04:05+0100 1709208245.123456789|2024-02-29T13:04:05+0100 123456789 @ 1709208245 060"},
		{`\t\\\0\e\n`, plain, "\t\\\x00\x1b\n"},
		{"%x", plain, "686900ff"},
		{"ü %t", plain, "ü t"},
	}
	for _, tc := range cases {
		f, err := parseFormat(tc.format)
		if err != nil {
			t.Errorf("parseFormat(%q): %v", tc.format, err)
			continue
		}
		p := &printer{format: f, noEOL: true}
		if got := string(p.appendMessage(nil, tc.m, now)); got != tc.want {
			t.Errorf("-F %q = %q, want %q", tc.format, got, tc.want)
		}
	}
}

// %j and %J are one JSON object per message: the payload a string when it
// is UTF-8, an array of bytes otherwise, or (%J) the payload's own JSON.
func TestFormatJSON(t *testing.T) {
	now := time.Date(2024, 2, 29, 13, 4, 5, 123456789, time.UTC)
	expiry := uint32(60)
	cases := []struct {
		format string
		m      mqtt.Message
		want   string
		warns  int
	}{
		{"%j", mqtt.Message{Topic: "a", Payload: []byte("he said \"hi\"\n")},
			`{"tst":"2024-02-29T13:04:05.123456Z","topic":"a","qos":0,"retain":0,"payloadlen":13,"payload":"he said \"hi\"\n"}`, 0},
		{"%j", mqtt.Message{Topic: "a", Payload: []byte{0, 0xff}, QoS: 2, Retain: true},
			`{"tst":"2024-02-29T13:04:05.123456Z","topic":"a","qos":2,"retain":1,"payloadlen":2,"payload":[0,255]}`, 0},
		{"%J", mqtt.Message{Topic: "a", Payload: []byte(` {"t":21.5} `), Properties: &codec.Properties{MessageExpiry: &expiry,
			User: []codec.UserProperty{{Key: "k", Value: "v"}}}},
			`{"tst":"2024-02-29T13:04:05.123456Z","topic":"a","qos":0,"retain":0,"payloadlen":12,"properties":{"message-expiry-interval":60,"user-properties":{"k":"v"}},"payload":{"t":21.5}}`, 0},
		{"%J", mqtt.Message{Topic: "a", Payload: []byte("not json")},
			`{"tst":"2024-02-29T13:04:05.123456Z","topic":"a","qos":0,"retain":0,"payloadlen":8,"payload":"not json"}`, 1},
	}
	for _, tc := range cases {
		f, err := parseFormat(tc.format)
		if err != nil {
			t.Fatal(err)
		}
		warns := 0
		p := &printer{format: f, noEOL: true, warn: func(string, ...any) { warns++ }}
		got := p.appendMessage(nil, tc.m, now)
		if string(got) != tc.want || warns != tc.warns {
			t.Errorf("-F %s of %+v = %s (%d warnings), want %s (%d)", tc.format, tc.m, got, warns, tc.want, tc.warns)
		}
		if !json.Valid(got) {
			t.Errorf("-F %s: not valid JSON: %s", tc.format, got)
		}
	}
	// --pretty indents, and it is the same JSON.
	f, _ := parseFormat("%j")
	pretty := (&printer{format: f, noEOL: true, pretty: true}).appendMessage(nil, cases[0].m, now)
	if !strings.Contains(string(pretty), "\n\t\"topic\": \"a\"") || !json.Valid(pretty) {
		t.Errorf("--pretty: %s", pretty)
	}
}

// Without -F: the payload, "topic payload" with -v, a newline unless -N.
func TestPrinter(t *testing.T) {
	m := mqtt.Message{Topic: "a/b", Payload: []byte("x y")}
	for _, tc := range []struct {
		p    printer
		want string
	}{
		{printer{}, "x y\n"},
		{printer{verbose: true}, "a/b x y\n"},
		{printer{noEOL: true}, "x y"},
		{printer{verbose: true, noEOL: true}, "a/b x y"},
	} {
		if got := string(tc.p.appendMessage(nil, m, time.Now())); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestTopicMatches(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true}, {"a/b", "a/c", false}, {"a/+", "a/b", true}, {"a/+", "a/b/c", false},
		{"a/#", "a", true}, {"a/#", "a/b/c", true}, {"#", "a/b", true}, {"+/+", "a/b", true},
		{"+", "", true}, {"a/+/c", "a//c", true}, {"#", "$SYS/x", false}, {"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true}, {"a/b/c", "a/b", false}, {"a", "a/b", false},
	} {
		if got := topicMatches(tc.filter, tc.topic); got != tc.want {
			t.Errorf("topicMatches(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

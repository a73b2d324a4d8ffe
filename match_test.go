package mqtt_test

import (
	"strings"
	"testing"

	"github.com/robustmqtt/mqtt"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		// MQTT 5.0 section 4.7.1.2, the multi-level wildcard.
		{"sport/tennis/player1/#", "sport/tennis/player1", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
		{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
		{"sport/#", "sport", true}, // "#" includes the parent level
		{"#", "sport/tennis", true},
		{"#", "/", true},
		{"sport/tennis/#", "sport/tennis", true},
		{"sport/tennis/#", "sport/tennisplayer1", false},
		{"sport/tennis/#", "sport", false},

		// 4.7.1.3, the single-level wildcard.
		{"sport/tennis/+", "sport/tennis/player1", true},
		{"sport/tennis/+", "sport/tennis/player2", true},
		{"sport/tennis/+", "sport/tennis/player1/ranking", false},
		{"sport/+", "sport", false},
		{"sport/+", "sport/", true}, // an empty level is a level
		{"+", "sport", true},
		{"+/+", "/finance", true},
		{"/+", "/finance", true},
		{"+", "/finance", false},
		{"+/tennis/#", "sport/tennis/player1", true},
		{"sport/+/player1", "sport/tennis/player1", true},
		{"+/+/+", "a/b", false},
		{"a/+/c", "a//c", true},

		// 4.7.2, topics beginning with "$" [MQTT-4.7.2-1].
		{"#", "$SYS/broker/uptime", false},
		{"+/monitor/Clients", "$SYS/monitor/Clients", false},
		{"$SYS/#", "$SYS/monitor/Clients", true},
		{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
		{"$SYS/#", "$SYS", true},
		{"a/#", "a/$b", true}, // only the first level is special

		// Exact levels: case, spaces and the empty level count.
		{"sport/tennis", "sport/tennis", true},
		{"sport/tennis", "Sport/tennis", false},
		{"sport/tennis", "sport/tennis/", false},
		{"sport/tennis/", "sport/tennis", false},
		{"sport /tennis", "sport /tennis", true},
		{"/", "/", true},
		{"a", "ab", false},
		{"ab", "a", false},

		// 4.8.2, shared subscriptions match on their filter part.
		{"$share/group/sport/+", "sport/tennis", true},
		{"$share/group/sport/+", "sport/tennis/x", false},
		{"$share/group/#", "sport/tennis", true},
		{"$share/group/#", "$SYS/uptime", false},
		{"$share/g/$SYS/#", "$SYS/uptime", true},
		{"$share/group/a", "$share/group/a", false},

		// Invalid filters and topic names match nothing.
		{"sport/tennis#", "sport/tennis#", false},
		{"sport/#/ranking", "sport/x/ranking", false},
		{"sport+", "sport+", false},
		{"", "", false},
		{"#", "", false},
		{"+", "a/+", false},
		{"$share//a", "a", false},
		{"$share/g", "g", false},
		{"a/b", "a/b\x00", false},
	}
	for _, tc := range cases {
		if got := mqtt.Match(tc.filter, tc.topic); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

// A topic name is a filter that matches itself and nothing else of the
// same number of levels; "#" and a filter of "+" per level match it too,
// unless it starts with "$".
func FuzzMatch(f *testing.F) {
	for _, s := range []string{"a/b", "/", "$SYS/x", "a//b", "sport/tennis/player1"} {
		f.Add(s, "a/b")
	}
	f.Fuzz(func(t *testing.T, topic, other string) {
		if !mqtt.Match(topic, topic) {
			if strings.ContainsAny(topic, "+#") || topic == "" || strings.HasPrefix(topic, "$share/") {
				return // not a valid topic name, or a filter of its own kind
			}
			if mqtt.Match("#", topic) || mqtt.Match(topic+"/#", topic) {
				t.Fatalf("%q does not match itself but is a valid topic", topic)
			}
			return
		}
		plus := strings.Repeat("+/", strings.Count(topic, "/")) + "+"
		dollar := topic[0] == '$'
		if mqtt.Match("#", topic) == dollar || mqtt.Match(plus, topic) == dollar {
			t.Fatalf("%q: # and %q match %v, %v", topic, plus, mqtt.Match("#", topic), mqtt.Match(plus, topic))
		}
		if !mqtt.Match(topic+"/#", topic) {
			t.Fatalf("%q/# does not match its parent", topic)
		}
		if other != topic && mqtt.Match(topic, other) && !strings.HasPrefix(topic, "$share/") {
			t.Fatalf("wildcard-free filter %q matches %q", topic, other)
		}
	})
}

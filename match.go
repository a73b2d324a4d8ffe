package mqtt

import (
	"strings"

	"github.com/robustmqtt/mqtt/codec"
)

// Match reports whether a message published to topic matches the topic
// filter filter, by the rules a broker applies (MQTT 5.0 section 4.7, the
// same in 3.1.1):
//
//   - "+" matches exactly one level, which may be empty: "a/+" matches
//     "a/b" and "a/", not "a" nor "a/b/c".
//   - "#" matches any number of levels, including none, so "a/#" matches
//     "a" as well as "a/b/c", and "#" matches every topic.
//   - A filter that starts with a wildcard does not match a topic that
//     starts with "$" [MQTT-4.7.2-1]: "#" does not match "$SYS/uptime",
//     "$SYS/#" does.
//   - A shared subscription "$share/{ShareName}/{filter}" matches what its
//     filter part matches (section 4.8.2).
//
// Levels compare byte for byte: case and spaces matter. An invalid filter
// (a "#" that is not the last level, a wildcard inside a level, an empty
// ShareName) or an invalid topic name (empty, or with a wildcard) matches
// nothing.
func Match(filter, topic string) bool {
	if codec.ValidateTopicFilter(filter) != nil || codec.ValidateTopicName(topic) != nil {
		return false
	}
	return match(filter, topic)
}

// match is Match for a filter and a topic already known to be valid.
func match(filter, topic string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		_, filter, _ = strings.Cut(rest, "/") // the ShareName has no "/" [MQTT-4.8.2-2]
	}
	if topic[0] == '$' && (filter[0] == '+' || filter[0] == '#') {
		return false // [MQTT-4.7.2-1]
	}
	for {
		f, frest, fmore := strings.Cut(filter, "/")
		if f == "#" {
			return true // the last level, as validation ensured
		}
		t, trest, tmore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		switch {
		case !fmore:
			return !tmore
		case !tmore:
			// The topic ended, the filter did not: only a final "#"
			// matches the parent level (section 4.7.1.2).
			return frest == "#"
		}
		filter, topic = frest, trest
	}
}

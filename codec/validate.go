package codec

import (
	"encoding/binary"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// maxString is the largest UTF-8 string or binary field: its length is a two-byte integer.
const maxString = 65535

// stringProblem says what makes s unfit to be an MQTT UTF-8 Encoded String (section 1.5.4)
// and the index of the offending byte (-1 for the length), or "" when s is fine. Go's
// decoder rejects encoded surrogates (U+D800..U+DFFF) as invalid UTF-8, which is exactly
// [MQTT-1.5.4-1]. With topic set it also rejects the wildcards '+' and '#', which may not
// appear in a Topic Name [MQTT-3.3.2-2].
func stringProblem(s string, topic bool) (string, int) {
	if len(s) > maxString {
		return "string of " + strconv.Itoa(len(s)) + " bytes is longer than 65535", -1
	}
	// Fast path: plain ASCII, eight bytes at a time. Anything suspect is left to the exact
	// loop below, which finds and names the byte.
	if len(s) >= 8 && clean(s) {
		return "", -1
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0:
			return "string contains U+0000", i // [MQTT-1.5.4-2]
		case topic && (c == '+' || c == '#'):
			return "topic name contains the wildcard '" + string(c) + "'", i // [MQTT-3.3.2-2]
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return "string is not valid UTF-8", i // [MQTT-1.5.4-1]
			}
			i += size - 1
		}
	}
	return "", -1
}

// clean reports whether s (at least 8 bytes) is ASCII without NUL, '+' or '#': fine as
// any string and as a topic name. False means "look closer", not "invalid". It tests
// eight bytes at a time, the last word overlapping its predecessor, without a loop for
// the usual topic lengths.
func clean(s string) bool {
	n := len(s)
	p := unsafe.StringData(s)
	var acc uint64
	switch {
	case n <= 16:
		acc = suspect(word(p, 0)) | suspect(word(p, n-8))
	case n <= 32:
		acc = suspect(word(p, 0)) | suspect(word(p, 8)) | suspect(word(p, n-16)) | suspect(word(p, n-8))
	default:
		for i := 0; i < n-8; i += 8 {
			acc |= suspect(word(p, i))
		}
		acc |= suspect(word(p, n-8))
	}
	return acc&hiBits == 0
}

// word loads the eight bytes at p+i, which the caller has checked are in the string.
func word(p *byte, i int) uint64 {
	return binary.LittleEndian.Uint64(unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(p), i)), 8))
}

// suspect sets the high bit of each byte of x that is 0x80 or more, 0, '+' or '#' (and
// perhaps of bytes above such a byte, which is harmless: the caller only asks whether
// any is set). A byte is 0 exactly when (x-lo)&^x has its high bit, given no byte reaches
// 0x80 (which x itself then shows). '+' (0x2B) and '#' (0x23) differ in bit 3 only, so
// one test of x|0x08 against 0x2B finds both.
func suspect(x uint64) uint64 {
	w := (x | 0x08*loBits) ^ '+'*loBits
	return x | (x-loBits)&^x | (w-loBits)&^w
}

const (
	loBits = 0x0101010101010101
	hiBits = 0x8080808080808080
)

// ValidateString reports whether s may be sent as an MQTT UTF-8 Encoded String: at most
// 65535 bytes of valid UTF-8 with no U+0000 and no surrogate code points [MQTT-1.5.4-1]
// [MQTT-1.5.4-2]. The error is an *Error with Code MalformedPacket whose Offset is the
// index of the offending byte in s (-1 for the length).
func ValidateString(s string) error {
	if why, at := stringProblem(s, false); why != "" {
		return errorf(MalformedPacket, 0, at, "%s", why)
	}
	return nil
}

// ValidateTopicName reports whether s may be the topic of a PUBLISH or a will message:
// a valid UTF-8 string (see ValidateString), at least one byte long [MQTT-4.7.3-1], without
// the wildcards '+' and '#' [MQTT-3.3.2-2]. The error is an *Error with Code
// TopicNameInvalid for an empty name or a wildcard and MalformedPacket otherwise.
func ValidateTopicName(s string) error {
	if s == "" {
		return errorf(TopicNameInvalid, 0, -1, "topic name is empty") // [MQTT-4.7.3-1]
	}
	if why, at := stringProblem(s, true); why != "" {
		code := MalformedPacket
		if at >= 0 && (s[at] == '+' || s[at] == '#') {
			code = TopicNameInvalid
		}
		return errorf(code, 0, at, "%s", why)
	}
	return nil
}

// sharePrefix starts a shared subscription: $share/{ShareName}/{filter} (MQTT 5.0, 4.8.2).
const sharePrefix = "$share/"

// ValidateTopicFilter reports whether s may be subscribed to: a valid UTF-8 string (see
// ValidateString), at least one byte long [MQTT-4.7.3-1], where '#' appears only as the
// whole last level [MQTT-4.7.1-1] and '+' only as a whole level [MQTT-4.7.1-2] (3.1.1: 4.7.1-2, 4.7.1-3). A filter
// that starts with "$share/" must be "$share/{ShareName}/{filter}" where ShareName is at
// least one character without '/', '+' or '#' [MQTT-4.8.2-1] [MQTT-4.8.2-2] and filter is a
// valid, non-empty topic filter. This shared-subscription rule is applied at both protocol
// levels, as brokers that offer shared subscriptions to 3.1.1 clients use the same syntax.
// The error is an *Error with Code TopicFilterInvalid, or MalformedPacket for a string
// that is not valid UTF-8; Offset is the index in s.
func ValidateTopicFilter(s string) error {
	if why, at := stringProblem(s, false); why != "" {
		return errorf(MalformedPacket, 0, at, "%s", why)
	}
	if why, at := filterProblem(s); why != "" {
		return errorf(TopicFilterInvalid, 0, at, "%s", why)
	}
	return nil
}

// filterProblem checks the wildcard and shared-subscription syntax of a filter whose
// UTF-8 is already known to be valid.
func filterProblem(s string) (string, int) {
	if s == "" {
		return "topic filter is empty", -1 // [MQTT-4.7.3-1]
	}
	base := 0
	if strings.HasPrefix(s, sharePrefix) {
		rest := s[len(sharePrefix):]
		slash := strings.IndexByte(rest, '/')
		if slash < 0 {
			return "shared subscription \"$share/{ShareName}/{filter}\" has no filter", len(s)
		}
		if slash == 0 {
			return "shared subscription has an empty ShareName", len(sharePrefix) // [MQTT-4.8.2-1]
		}
		if i := strings.IndexAny(rest[:slash], "+#"); i >= 0 {
			return "ShareName contains a wildcard", len(sharePrefix) + i // [MQTT-4.8.2-2]
		}
		base = len(sharePrefix) + slash + 1
		if base == len(s) {
			return "shared subscription has an empty filter", base
		}
	}
	for i := base; i < len(s); i++ {
		switch s[i] {
		case '#':
			// [MQTT-4.7.1-1] (3.1.1: 4.7.1-2): alone or after '/', and the last character.
			if (i > base && s[i-1] != '/') || i != len(s)-1 {
				return "'#' must be the whole last level of the filter", i
			}
		case '+':
			// [MQTT-4.7.1-2] (3.1.1: 4.7.1-3): it must occupy an entire level.
			if (i > base && s[i-1] != '/') || (i+1 < len(s) && s[i+1] != '/') {
				return "'+' must occupy a whole level of the filter", i
			}
		}
	}
	return "", -1
}

// isShared reports whether filter names a shared subscription.
func isShared(filter string) bool { return strings.HasPrefix(filter, sharePrefix) }

// ValidateClientID reports whether id may be sent as the Client Identifier of a CONNECT
// at protocol level version: a valid UTF-8 string (see ValidateString) [MQTT-3.1.3-4].
// An empty id is valid here; in MQTT 3.1.1 it also needs CleanStart, which
// (*Connect).AppendTo checks [MQTT-3.1.3-7]. Servers must accept 1 to 23 characters from
// 0-9, a-z and A-Z [MQTT-3.1.3-5] and may refuse anything else with
// ClientIdentifierNotValid. The error is an *Error with Code ClientIdentifierNotValid.
func ValidateClientID(id string, version byte) error {
	if err := checkVersion(version); err != nil {
		return err
	}
	if why, at := stringProblem(id, false); why != "" {
		return errorf(ClientIdentifierNotValid, 0, at, "client identifier: %s", why)
	}
	return nil
}

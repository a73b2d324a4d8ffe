package codec_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/robustmqtt/mqtt/codec"
)

func codeOf(err error) codec.ReasonCode {
	var e *codec.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func TestValidateTopicName(t *testing.T) {
	for _, tc := range []struct {
		s    string
		code codec.ReasonCode // 0: valid
	}{
		{"a", 0}, {"/", 0}, {"a/b/c", 0}, {"$SYS/x", 0}, {"sensors/é/水/😀", 0}, {" ", 0},
		{strings.Repeat("x", 65535), 0},
		{"", codec.TopicNameInvalid},
		{"a/+", codec.TopicNameInvalid}, {"#", codec.TopicNameInvalid}, {"abcdefgh/ijklmn+", codec.TopicNameInvalid},
		{"a\x00b", codec.MalformedPacket}, {"abcdefghijkl\x00", codec.MalformedPacket},
		{"\xff", codec.MalformedPacket}, {"\xed\xa0\x80", codec.MalformedPacket}, {"abcdefghi\xc3", codec.MalformedPacket},
		{strings.Repeat("x", 65536), codec.MalformedPacket},
	} {
		if got := codeOf(codec.ValidateTopicName(tc.s)); got != tc.code {
			t.Errorf("ValidateTopicName(%.20q) code %v, want %v", tc.s, got, tc.code)
		}
	}
}

func TestValidateTopicFilter(t *testing.T) {
	for _, tc := range []struct {
		s    string
		code codec.ReasonCode
	}{
		{"a", 0}, {"#", 0}, {"+", 0}, {"a/#", 0}, {"+/+", 0}, {"/+/", 0}, {"a/+/c/#", 0}, {"+/#", 0}, {"/", 0}, {"//", 0},
		{"$share/g/a/#", 0}, {"$share/group/+", 0}, {"$share/g/#", 0}, {"$shared/x", 0}, {"$share", 0},
		{"", codec.TopicFilterInvalid}, {"a#", codec.TopicFilterInvalid}, {"#/a", codec.TopicFilterInvalid},
		{"a/#/", codec.TopicFilterInvalid}, {"a+", codec.TopicFilterInvalid}, {"+a", codec.TopicFilterInvalid},
		{"a/b+/c", codec.TopicFilterInvalid}, {"##", codec.TopicFilterInvalid},
		{"$share/", codec.TopicFilterInvalid}, {"$share//a", codec.TopicFilterInvalid}, {"$share/g", codec.TopicFilterInvalid},
		{"$share/g/", codec.TopicFilterInvalid}, {"$share/g+/a", codec.TopicFilterInvalid}, {"$share/#/a", codec.TopicFilterInvalid},
		{"$share/g/a#", codec.TopicFilterInvalid},
		{"a/\x00", codec.MalformedPacket}, {"\xc0\x80", codec.MalformedPacket},
	} {
		if got := codeOf(codec.ValidateTopicFilter(tc.s)); got != tc.code {
			t.Errorf("ValidateTopicFilter(%q) code %v, want %v", tc.s, got, tc.code)
		}
	}
}

func TestValidateString(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
		at int
	}{
		{"", true, -1}, {"+#/", true, -1}, {"\u007f\u0080\uffff\U0010FFFF", true, -1}, {"\ufeff", true, -1},
		{"ab\x00", false, 2}, {"\xed\xbf\xbf", false, 0}, {"abcdefghijklmnop\xf4\x90\x80\x80", false, 16},
		{strings.Repeat("é", 32768), false, -1},
	} {
		err := codec.ValidateString(tc.s)
		var e *codec.Error
		if tc.ok != (err == nil) || (err != nil && (!errors.As(err, &e) || e.Offset != tc.at || e.Code != codec.MalformedPacket)) {
			t.Errorf("ValidateString(%.20q) = %v, want ok=%v at %d", tc.s, err, tc.ok, tc.at)
		}
	}
}

func TestValidateClientID(t *testing.T) {
	for _, v := range []byte{codec.V311, codec.V5} {
		for _, ok := range []string{"", "client-1", "ü"} {
			if err := codec.ValidateClientID(ok, v); err != nil {
				t.Errorf("ValidateClientID(%q, %d) = %v", ok, v, err)
			}
		}
		if codeOf(codec.ValidateClientID("a\x00", v)) != codec.ClientIdentifierNotValid {
			t.Errorf("ValidateClientID with NUL accepted")
		}
	}
	if !errors.Is(codec.ValidateClientID("x", 3), codec.ErrVersion) {
		t.Errorf("ValidateClientID at version 3 accepted")
	}
}

// refString is the definition of an MQTT UTF-8 string, written the slow and obvious way.
func refString(s string) bool {
	if len(s) > 65535 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == 0 || (r >= 0xD800 && r <= 0xDFFF) {
			return false
		}
	}
	return true
}

// refFilter checks wildcard placement level by level.
func refFilter(s string) bool {
	if s == "" {
		return false
	}
	if rest, ok := strings.CutPrefix(s, "$share/"); ok {
		group, filter, ok := strings.Cut(rest, "/")
		if !ok || group == "" || strings.ContainsAny(group, "+#") || filter == "" {
			return false
		}
		s = filter
	}
	levels := strings.Split(s, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return false
		}
		if strings.Contains(l, "+") && l != "+" {
			return false
		}
	}
	return true
}

// FuzzValidate compares the validators, whose fast path reads eight bytes at a time, with
// the obvious definitions.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{"", "a/b", "sensors/building-7/temp01", "a/+/#", "$share/g/x", "é\x00", "abcdefgh#", "\xed\xa0\x80abcdefgh"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		str := refString(s)
		if got := codec.ValidateString(s) == nil; got != str {
			t.Fatalf("ValidateString(%q) ok=%v, want %v", s, got, str)
		}
		name := str && s != "" && !strings.ContainsAny(s, "+#")
		if got := codec.ValidateTopicName(s) == nil; got != name {
			t.Fatalf("ValidateTopicName(%q) ok=%v, want %v", s, got, name)
		}
		filter := str && refFilter(s)
		if got := codec.ValidateTopicFilter(s) == nil; got != filter {
			t.Fatalf("ValidateTopicFilter(%q) ok=%v, want %v", s, got, filter)
		}
		// The same string as a PUBLISH topic must be judged the same way.
		_, err := (&codec.Publish{Topic: s}).AppendTo(nil, codec.V311)
		if (err == nil) != name {
			t.Fatalf("Publish{Topic: %q}.AppendTo: %v, want ok=%v", s, err, name)
		}
	})
}

// TestValidateEveryPosition puts each kind of bad byte at every position of topics of
// every length up to 70, to cover the word-at-a-time fast path and its overlapping tail.
func TestValidateEveryPosition(t *testing.T) {
	for n := 1; n <= 70; n++ {
		clean := strings.Repeat("a", n)
		if err := codec.ValidateTopicName(clean); err != nil {
			t.Fatalf("length %d: %v", n, err)
		}
		for i := range n {
			for _, bad := range []byte{'+', '#', 0, 0x80, 0xFF} {
				b := []byte(clean)
				b[i] = bad
				var e *codec.Error
				if err := codec.ValidateTopicName(string(b)); !errors.As(err, &e) || e.Offset != i {
					t.Fatalf("length %d, byte 0x%02X at %d: %v", n, bad, i, err)
				}
			}
		}
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
)

// printer writes the received messages of sub and rr as -v, -N and -F
// say.
type printer struct {
	format  *format // -F; nil: the payload, or "topic payload" with -v
	verbose bool    // -v
	noEOL   bool    // -N
	pretty  bool    // --pretty: %j and %J indented
	// warn says what could not be printed as asked (%J of a payload
	// that is not JSON), on stderr.
	warn func(format string, args ...any)
}

// appendMessage appends m, printed, to b. now is when it arrived, for the
// time conversions of -F.
func (p *printer) appendMessage(b []byte, m mqtt.Message, now time.Time) []byte {
	switch {
	case p.format != nil:
		b = p.format.appendMessage(b, m, now, p)
	case p.verbose:
		b = append(b, m.Topic...)
		b = append(b, ' ')
		b = append(b, m.Payload...)
	default:
		b = append(b, m.Payload...)
	}
	if !p.noEOL {
		b = append(b, '\n')
	}
	return b
}

// format is a parsed -F: literal text and conversions, mosquitto_sub's
// "Output Format". Every sequence is checked when it is parsed, so that a
// typing mistake is a usage error rather than a silent blank.
type format struct {
	pieces []piece
}

// piece is literal text (verb 0), or a conversion: %<verb>, or @<verb>
// for a time field (time true).
type piece struct {
	text      string
	verb      byte
	time      bool
	left      bool // '-': align left
	zero      bool // '0': pad with zeros (numbers)
	width     int  // minimum width; 0: none
	precision int  // maximum length of a string; -1: none
}

// formatVerbs are the % conversions, and what each prints.
const formatVerbs = `%% a literal %; %t topic; %p payload; %x, %X payload in hex; %l payload length;
%q QoS; %r retained (0 or 1); %I ISO 8601 time; %U Unix time with nanoseconds;
%j, %J the message as JSON (%J: the payload as JSON, not a string); MQTT 5: %C content
type, %D correlation data, %E message expiry interval, %F payload format indicator,
%P user properties (name:value ...), %R response topic, %S subscription identifier,
%A topic alias. @Y @m @d @H @M @S @z ... strftime's fields, @N nanoseconds, @@ a @.
\n \t \r \0 \a \e \v \\ escapes. %[-][0][width][.precision]verb pads and cuts as printf.`

// strftime are the @ fields, as C's strftime prints them in the C locale.
var strftime = map[byte]string{
	'a': "Mon", 'A': "Monday", 'b': "Jan", 'h': "Jan", 'B': "January", 'd': "02", 'D': "01/02/06",
	'F': "2006-01-02", 'H': "15", 'I': "03", 'm': "01", 'M': "04", 'p': "PM", 'R': "15:04",
	'S': "05", 'T': "15:04:05", 'y': "06", 'Y': "2006", 'z': "-0700", 'Z': "MST",
}

// parseFormat parses -F.
func parseFormat(s string) (*format, error) {
	f := &format{}
	var text strings.Builder
	flush := func() {
		if text.Len() > 0 {
			f.pieces = append(f.pieces, piece{text: text.String()})
			text.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '%':
			p := piece{precision: -1}
			j := i + 1
			if j < len(s) && s[j] == '-' {
				p.left = true
				j++
			}
			if j < len(s) && s[j] == '0' {
				p.zero = true
				j++
			}
			for ; j < len(s) && s[j] >= '0' && s[j] <= '9'; j++ {
				p.width = min(p.width*10+int(s[j]-'0'), 1<<16)
			}
			if j < len(s) && s[j] == '.' {
				p.precision = 0
				for j++; j < len(s) && s[j] >= '0' && s[j] <= '9'; j++ {
					p.precision = min(p.precision*10+int(s[j]-'0'), 1<<16)
				}
			}
			if j == len(s) {
				return nil, usagef("-F %q ends in the middle of %s: write %%%% for a %%", s, s[i:])
			}
			p.verb = s[j]
			switch p.verb {
			case '%':
				text.WriteByte('%')
			case 't', 'p', 'x', 'X', 'l', 'q', 'r', 'I', 'U', 'j', 'J', 'C', 'D', 'E', 'F', 'P', 'R', 'S', 'A':
				flush()
				f.pieces = append(f.pieces, p)
			case 'm':
				return nil, usagef("-F %%m: the packet identifier of a message is not available here")
			default:
				return nil, usagef("-F %q: unknown conversion %s; mqtt sub -help lists them", s, s[i:j+1])
			}
			i = j
		case '@':
			if i+1 == len(s) {
				return nil, usagef("-F %q ends with a lone @: write @@ for an @", s)
			}
			i++
			switch v := s[i]; {
			case v == '@':
				text.WriteByte('@')
			case v == 'N' || v == 's' || v == 'j' || v == 'e' || v == 'u' || v == 'w' || strftime[v] != "":
				flush()
				f.pieces = append(f.pieces, piece{verb: v, time: true, precision: -1})
			default:
				return nil, usagef("-F %q: @%c is not a time field this command knows (@Y @m @d @H @M @S @z @N ...)", s, v)
			}
		case '\\':
			if i+1 == len(s) {
				return nil, usagef(`-F %q ends with a lone \: write \\ for a \`, s)
			}
			i++
			e, ok := map[byte]byte{'\\': '\\', '0': 0, 'a': '\a', 'e': 0x1b, 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v'}[s[i]]
			if !ok {
				return nil, usagef(`-F %q: unknown escape \%c (\n \t \r \0 \a \e \v \\)`, s, s[i])
			}
			text.WriteByte(e)
		default:
			text.WriteByte(c)
		}
	}
	flush()
	return f, nil
}

// appendMessage appends m as f describes it.
func (f *format) appendMessage(b []byte, m mqtt.Message, now time.Time, pr *printer) []byte {
	props := m.Properties
	if props == nil {
		props = &codec.Properties{}
	}
	for _, p := range f.pieces {
		switch {
		case p.verb == 0:
			b = append(b, p.text...)
		case p.time:
			b = appendTime(b, p.verb, now)
		default:
			b = p.appendConversion(b, m, props, now, pr)
		}
	}
	return b
}

func (p piece) appendConversion(b []byte, m mqtt.Message, props *codec.Properties, now time.Time, pr *printer) []byte {
	num := func(v uint64, present bool) []byte {
		if !present {
			return p.pad(b, "", false)
		}
		return p.pad(b, strconv.FormatUint(v, 10), true)
	}
	switch p.verb {
	case 't':
		return p.pad(b, p.cut(m.Topic), false)
	case 'p':
		payload := m.Payload
		if p.precision >= 0 && len(payload) > p.precision {
			payload = payload[:p.precision]
		}
		return p.pad(b, string(payload), false)
	case 'x', 'X':
		payload := m.Payload
		if p.precision >= 0 && len(payload) > p.precision {
			payload = payload[:p.precision]
		}
		hex := fmt.Sprintf("%x", payload)
		if p.verb == 'X' {
			hex = strings.ToUpper(hex)
		}
		return p.pad(b, hex, true)
	case 'l':
		return num(uint64(len(m.Payload)), true)
	case 'q':
		return num(uint64(m.QoS), true)
	case 'r':
		return num(uint64(retainBit(m)), true)
	case 'I':
		return p.pad(b, p.cut(now.Format("2006-01-02T15:04:05-0700")), false)
	case 'U':
		return p.pad(b, fmt.Sprintf("%d.%09d", now.Unix(), now.Nanosecond()), false)
	case 'j', 'J':
		return appendJSON(b, m, props, now, p.verb == 'J', pr)
	case 'C':
		return p.pad(b, p.cut(props.ContentType), false)
	case 'D':
		return append(b, props.CorrelationData...)
	case 'E':
		return num(uint64(deref(props.MessageExpiry)), props.MessageExpiry != nil)
	case 'F':
		return num(uint64(deref(props.PayloadFormat)), props.PayloadFormat != nil)
	case 'P':
		for i, u := range props.User {
			if i > 0 {
				b = append(b, ' ')
			}
			b = append(b, u.Key...)
			b = append(b, ':')
			b = append(b, u.Value...)
		}
		return b
	case 'R':
		return p.pad(b, p.cut(props.ResponseTopic), false)
	case 'S':
		if len(props.SubscriptionIdentifier) == 0 {
			return num(0, false)
		}
		return num(uint64(props.SubscriptionIdentifier[0]), true)
	case 'A':
		return num(uint64(deref(props.TopicAlias)), props.TopicAlias != nil)
	}
	return b
}

// cut applies the precision to s, in characters.
func (p piece) cut(s string) string {
	if p.precision < 0 || utf8.RuneCountInString(s) <= p.precision {
		return s
	}
	n := 0
	for i := range s {
		if n == p.precision {
			return s[:i]
		}
		n++
	}
	return s
}

// pad appends s, padded to the width: on the left with spaces (or zeros
// for a number with the 0 flag), on the right with the - flag.
func (p piece) pad(b []byte, s string, number bool) []byte {
	n := p.width - utf8.RuneCountInString(s)
	if n <= 0 {
		return append(b, s...)
	}
	if p.left {
		return append(append(b, s...), bytes.Repeat([]byte{' '}, n)...)
	}
	fill := byte(' ')
	if p.zero && number && s != "" {
		fill = '0'
	}
	return append(append(b, bytes.Repeat([]byte{fill}, n)...), s...)
}

// appendTime appends one @ field of now.
func appendTime(b []byte, verb byte, now time.Time) []byte {
	switch verb {
	case 'N':
		return fmt.Appendf(b, "%09d", now.Nanosecond())
	case 's':
		return strconv.AppendInt(b, now.Unix(), 10)
	case 'j':
		return fmt.Appendf(b, "%03d", now.YearDay())
	case 'e':
		return fmt.Appendf(b, "%2d", now.Day())
	case 'u':
		return strconv.AppendInt(b, int64((now.Weekday()+6)%7+1), 10)
	case 'w':
		return strconv.AppendInt(b, int64(now.Weekday()), 10)
	}
	return now.AppendFormat(b, strftime[verb])
}

// appendJSON appends mosquitto_sub's %j (%J with payloadJSON): the
// message as one JSON object, {"tst":..., "topic":..., "qos":...,
// "retain":..., "payloadlen":..., "properties":{...}, "payload":...}.
// The payload is a string when it is valid UTF-8 and otherwise an array
// of its bytes; with %J it is the payload's own JSON, and when that is not
// valid JSON, a string, with a warning.
func appendJSON(b []byte, m mqtt.Message, props *codec.Properties, now time.Time, payloadJSON bool, pr *printer) []byte {
	start := len(b)
	b = append(b, `{"tst":`...)
	b = appendJSONString(b, now.Format("2006-01-02T15:04:05.000000Z07:00"))
	b = append(b, `,"topic":`...)
	b = appendJSONString(b, m.Topic)
	b = fmt.Appendf(b, `,"qos":%d,"retain":%d,"payloadlen":%d`, m.QoS, retainBit(m), len(m.Payload))
	if m.Properties != nil {
		b = appendJSONProperties(b, props)
	}
	b = append(b, `,"payload":`...)
	switch {
	case payloadJSON && json.Valid(m.Payload):
		b = append(b, bytes.TrimSpace(m.Payload)...)
	case utf8.Valid(m.Payload):
		if payloadJSON && pr.warn != nil {
			pr.warn("warning: -F %%J: the payload on topic %s is not valid JSON; printed as a string", m.Topic)
		}
		b = appendJSONString(b, string(m.Payload))
	default:
		if payloadJSON && pr.warn != nil {
			pr.warn("warning: -F %%J: the payload on topic %s is not valid JSON; printed as an array of bytes", m.Topic)
		}
		b = append(b, '[')
		for i, c := range m.Payload {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(c), 10)
		}
		b = append(b, ']')
	}
	b = append(b, '}')
	if pr.pretty {
		var out bytes.Buffer
		if json.Indent(&out, b[start:], "", "\t") == nil {
			b = append(b[:start], out.Bytes()...)
		}
	}
	return b
}

// appendJSONProperties appends the MQTT 5 properties of a message as
// mosquitto_sub's %j names them.
func appendJSONProperties(b []byte, p *codec.Properties) []byte {
	b = append(b, `,"properties":{`...)
	first := true
	key := func(k string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, k)
		b = append(b, ':')
	}
	if p.PayloadFormat != nil {
		key("payload-format-indicator")
		b = strconv.AppendUint(b, uint64(*p.PayloadFormat), 10)
	}
	if p.MessageExpiry != nil {
		key("message-expiry-interval")
		b = strconv.AppendUint(b, uint64(*p.MessageExpiry), 10)
	}
	if p.ContentType != "" {
		key("content-type")
		b = appendJSONString(b, p.ContentType)
	}
	if p.ResponseTopic != "" {
		key("response-topic")
		b = appendJSONString(b, p.ResponseTopic)
	}
	if p.CorrelationData != nil {
		key("correlation-data")
		b = appendJSONString(b, string(p.CorrelationData))
	}
	if len(p.SubscriptionIdentifier) > 0 {
		key("subscription-identifier")
		b = strconv.AppendUint(b, uint64(p.SubscriptionIdentifier[0]), 10)
	}
	if p.TopicAlias != nil {
		key("topic-alias")
		b = strconv.AppendUint(b, uint64(*p.TopicAlias), 10)
	}
	if len(p.User) > 0 {
		key("user-properties")
		b = append(b, '{')
		for i, u := range p.User {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, u.Key)
			b = append(b, ':')
			b = appendJSONString(b, u.Value)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string; bytes that are not UTF-8
// become U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r < 0x20 || r == 0x7f || r == 0x2028 || r == 0x2029:
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return append(b, '"')
}

func retainBit(m mqtt.Message) int {
	if m.Retain {
		return 1
	}
	return 0
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

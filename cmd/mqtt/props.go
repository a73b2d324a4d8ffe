package main

import (
	"flag"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/codec"
)

// propertyArg is one -D as typed: -D command identifier value, or
// -D command user-property name value.
type propertyArg struct {
	packet string   // lower case: connect, publish, will, ...
	name   string   // lower case: message-expiry-interval, ...
	values []string // one, two for user-property
}

func (p propertyArg) String() string {
	return "-D " + p.packet + " " + p.name
}

// propertyCommands are the command names -D takes, as mosquitto's do (its
// mosquitto_string_to_command). Which of them a command accepts, and which
// properties, is propertySupport's to say.
var propertyCommands = []string{"connect", "publish", "puback", "pubrec", "pubrel", "pubcomp",
	"subscribe", "unsubscribe", "disconnect", "auth", "will"}

// propertyPackets says, for every property of MQTT 5 (by mosquitto's name
// for it), which packets a client may send it in (section 2.2.2.2, Table
// 2-4). A property that only a server sends has none.
var propertyPackets = map[string][]string{
	"payload-format-indicator":          {"publish", "will"},
	"message-expiry-interval":           {"publish", "will"},
	"content-type":                      {"publish", "will"},
	"response-topic":                    {"publish", "will"},
	"correlation-data":                  {"publish", "will"},
	"subscription-identifier":           {"subscribe"},
	"session-expiry-interval":           {"connect", "disconnect"},
	"assigned-client-identifier":        nil,
	"server-keep-alive":                 nil,
	"authentication-method":             {"connect", "auth"},
	"authentication-data":               {"connect", "auth"},
	"request-problem-information":       {"connect"},
	"will-delay-interval":               {"will"},
	"request-response-information":      {"connect"},
	"response-information":              nil,
	"server-reference":                  nil,
	"reason-string":                     {"puback", "pubrec", "pubrel", "pubcomp", "disconnect", "auth"},
	"receive-maximum":                   {"connect"},
	"topic-alias-maximum":               {"connect"},
	"topic-alias":                       {"publish"},
	"maximum-qos":                       nil,
	"retain-available":                  nil,
	"user-property":                     {"connect", "publish", "puback", "pubrec", "pubrel", "pubcomp", "subscribe", "unsubscribe", "disconnect", "auth", "will"},
	"maximum-packet-size":               {"connect"},
	"wildcard-subscription-available":   nil,
	"subscription-identifier-available": nil,
	"shared-subscription-available":     nil,
}

// supported says which properties this command line can send: those the
// library's Config and Message carry. The rest of what MQTT allows a
// client is refused with the reason.
var supported = map[string][]string{
	"connect": {"session-expiry-interval", "receive-maximum", "maximum-packet-size", "topic-alias-maximum"},
	"publish": {"payload-format-indicator", "message-expiry-interval", "content-type", "response-topic", "correlation-data", "user-property"},
	"will":    {"payload-format-indicator", "message-expiry-interval", "content-type", "response-topic", "correlation-data", "will-delay-interval", "user-property"},
}

// unsupportedWhy says why a property MQTT allows is not sent, by packet
// and property ("" for the packet as a whole).
var unsupportedWhy = map[string]string{
	"connect/user-property":                "the client's CONNECT carries no user properties",
	"connect/authentication-method":        "the client does not do MQTT 5 enhanced authentication (AUTH)",
	"connect/authentication-data":          "the client does not do MQTT 5 enhanced authentication (AUTH)",
	"connect/request-problem-information":  "the client always leaves it at its default (1: reason strings wanted)",
	"connect/request-response-information": "the client never asks for response information",
	"publish/topic-alias":                  "the client does not send topic aliases",
	"subscribe":                            "the client's SUBSCRIBE carries no properties",
	"unsubscribe":                          "the client's UNSUBSCRIBE carries no properties",
	"disconnect":                           "the client's DISCONNECT carries no properties",
	"puback":                               "the client's acknowledgements carry no properties",
	"pubrec":                               "the client's acknowledgements carry no properties",
	"pubrel":                               "the client's acknowledgements carry no properties",
	"pubcomp":                              "the client's acknowledgements carry no properties",
	"auth":                                 "the client does not do MQTT 5 enhanced authentication (AUTH)",
}

// extractProperties takes every -D and its three or four words out of
// args, and returns the rest for fs to parse. The flag package takes one
// value per flag; -D takes two or three. It walks args as the flag package
// would, so that a value such as -m -D stays the message: a flag of fs
// that takes a value takes the next word whatever it is, and the first
// word that is not a flag, or "--", ends the flags.
func extractProperties(args []string, fs *flag.FlagSet) (rest []string, props []propertyArg, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			return append(rest, args[i:]...), props, nil
		}
		name := strings.TrimPrefix(a[1:], "-")
		name, _, hasValue := strings.Cut(name, "=")
		if name == "D" || name == "property" {
			if hasValue {
				return nil, nil, usagef("%s: write -D command identifier value, as separate words", a)
			}
			words := args[i+1:]
			if len(words) < 3 {
				return nil, nil, usagef("-D takes a command, a property and its value: -D publish content-type text/plain, or -D publish user-property name value")
			}
			p := propertyArg{packet: strings.ToLower(words[0]), name: strings.ToLower(words[1]), values: words[2:3]}
			if p.name == "user-property" {
				if len(words) < 4 {
					return nil, nil, usagef("-D %s user-property takes a name and a value: -D %[1]s user-property name value", words[0])
				}
				p.values = words[2:4]
			}
			props = append(props, p)
			i += 2 + len(p.values)
			continue
		}
		rest = append(rest, a)
		if f := fs.Lookup(name); f != nil && !hasValue && !isBoolFlag(f) && i+1 < len(args) {
			rest = append(rest, args[i+1])
			i++
		}
	}
	return rest, props, nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// propertyFlag stands for -D in the flag set, for the help to list it;
// extractProperties takes every -D out before the flag set sees it.
type propertyFlag struct{}

func (propertyFlag) String() string { return "" }
func (propertyFlag) Set(string) error {
	return fmt.Errorf("write -D command identifier value")
}

// properties are the checked -D of one command, by packet.
type properties struct {
	connect map[string]propertyArg // by name
	publish *codec.Properties      // nil: none
	will    *codec.Properties      // nil: none
	given   map[string]bool        // "packet/name", for what a command checks itself
}

// checkProperties checks the -D of command, which publishes (pub, rr) or
// not (sub), and returns them parsed. Every command has a CONNECT and may
// have a will; whether --will-topic is given is for the caller to check.
func checkProperties(command string, props []propertyArg, publishes bool) (properties, error) {
	out := properties{connect: map[string]propertyArg{}, given: map[string]bool{}}
	for _, p := range props {
		if !slices.Contains(propertyCommands, p.packet) {
			return out, usagef("%s: unknown command %q: one of %s", p, p.packet, strings.Join(propertyCommands, ", "))
		}
		allowed, known := propertyPackets[p.name]
		switch {
		case !known:
			return out, usagef("%s: unknown property %q (MQTT 5's names, with '-' between words: message-expiry-interval, user-property, ...)", p, p.name)
		case !slices.Contains(allowed, p.packet):
			return out, usagef("%s: MQTT 5 does not let a client send %s in %s", p, p.name, strings.ToUpper(p.packet))
		case p.packet == "publish" && !publishes:
			return out, usagef("%s: mqtt %s publishes nothing; -D publish is for mqtt pub and mqtt rr", p, command)
		}
		why, refused := unsupportedWhy[p.packet]
		if !refused {
			why, refused = unsupportedWhy[p.packet+"/"+p.name]
		}
		if refused || !slices.Contains(supported[p.packet], p.name) {
			if why == "" {
				why = "the client does not send it"
			}
			return out, usagef("%s: not supported: %s", p, why)
		}
		key := p.packet + "/" + p.name
		if out.given[key] && p.name != "user-property" {
			return out, usagef("%s: given twice", p)
		}
		out.given[key] = true
		var err error
		switch p.packet {
		case "connect":
			err = checkConnectProperty(p)
			out.connect[p.name] = p
		case "publish":
			out.publish, err = addProperty(out.publish, p)
		case "will":
			out.will, err = addProperty(out.will, p)
		}
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// checkConnectProperty checks the value of a CONNECT property.
func checkConnectProperty(p propertyArg) error {
	switch p.name {
	case "session-expiry-interval", "maximum-packet-size":
		_, err := propertyUint(p, math.MaxUint32)
		return err
	case "receive-maximum", "topic-alias-maximum":
		_, err := propertyUint(p, math.MaxUint16)
		return err
	}
	return nil
}

// applyConnect sets what the CONNECT properties of props say in cfg.
func (props properties) applyConnect(cfg *mqtt.Config) error {
	for name, p := range props.connect {
		n, err := propertyUint(p, math.MaxUint32)
		if err != nil {
			return err
		}
		switch name {
		case "session-expiry-interval":
			cfg.SessionExpiry = expiryDuration(int64(n))
		case "receive-maximum":
			if n == 0 {
				return usagef("%s 0: MQTT 5 forbids 0; 1 to 65535", p)
			}
			// The library announces MaxPending as its Receive Maximum.
			cfg.MaxPending = int(n)
		case "maximum-packet-size":
			if n == 0 {
				return usagef("%s 0: MQTT 5 forbids 0; 1 to 4294967295 bytes", p)
			}
			// No packet is larger than this anyway: the remaining length
			// takes at most four bytes.
			cfg.MaxPacketSize = int(min(n, 268435460))
		case "topic-alias-maximum":
			cfg.TopicAliasMaximum = uint16(n)
		}
	}
	return nil
}

// addProperty adds p to the properties of a PUBLISH or a will.
func addProperty(to *codec.Properties, p propertyArg) (*codec.Properties, error) {
	if to == nil {
		to = &codec.Properties{}
	}
	v := p.values[0]
	switch p.name {
	case "payload-format-indicator":
		n, err := propertyUint(p, 1)
		if err != nil {
			return nil, err
		}
		b := byte(n)
		to.PayloadFormat = &b
	case "message-expiry-interval", "will-delay-interval":
		n, err := propertyUint(p, math.MaxUint32)
		if err != nil {
			return nil, err
		}
		u := uint32(n)
		if p.name == "message-expiry-interval" {
			to.MessageExpiry = &u
		} else {
			to.WillDelayInterval = &u
		}
	case "content-type":
		if err := codec.ValidateString(v); err != nil {
			return nil, usagef("%s %q: %v", p, v, err)
		}
		to.ContentType = v
	case "response-topic":
		if err := codec.ValidateTopicName(v); err != nil {
			return nil, usagef("%s %q: %v", p, v, err)
		}
		to.ResponseTopic = v
	case "correlation-data":
		if len(v) > math.MaxUint16 {
			return nil, usagef("%s: at most 65535 bytes", p)
		}
		to.CorrelationData = []byte(v)
	case "user-property":
		for _, s := range p.values {
			if err := codec.ValidateString(s); err != nil {
				return nil, usagef("%s %q: %v", p, s, err)
			}
		}
		to.User = append(to.User, codec.UserProperty{Key: p.values[0], Value: p.values[1]})
	}
	return to, nil
}

// propertyUint reads the value of p, a whole number from 0 to most.
func propertyUint(p propertyArg, most uint64) (uint64, error) {
	n, err := strconv.ParseUint(p.values[0], 10, 64)
	if err != nil || n > most {
		return 0, usagef("%s %q: want a whole number from 0 to %d", p, p.values[0], most)
	}
	return n, nil
}

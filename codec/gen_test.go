package codec_test

import (
	"math/rand/v2"
	"strings"

	"github.com/robustmqtt/mqtt/codec"
)

// gen builds random valid packets: every field within its rules, so that encoding must
// succeed and decoding must give the packet back. It states the property table (MQTT 5.0
// Table 2-4) on its own, independently of the codec's, so a mistake in either shows.
type gen struct {
	r *rand.Rand
	v byte // codec.V311 or codec.V5
}

func newGen(seed uint64, version byte) *gen {
	return &gen{r: rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15)), v: version}
}

// newGenFrom draws its choices from data, so that a fuzzer steers the generator by
// mutating bytes; once data runs out it continues with a fixed pseudo-random sequence
// (never constant: rand's bounded draws retry on some values, forever if they repeat).
func newGenFrom(data []byte, version byte) *gen {
	return &gen{r: rand.New(&byteSource{data: data}), v: version}
}

type byteSource struct {
	data []byte
	n    uint64
}

func (s *byteSource) Uint64() uint64 {
	if len(s.data) >= 8 {
		v := uint64(s.data[0]) | uint64(s.data[1])<<8 | uint64(s.data[2])<<16 | uint64(s.data[3])<<24 |
			uint64(s.data[4])<<32 | uint64(s.data[5])<<40 | uint64(s.data[6])<<48 | uint64(s.data[7])<<56
		s.data = s.data[8:]
		return v
	}
	s.data = nil
	// splitmix64
	s.n += 0x9E3779B97F4A7C15
	z := s.n
	z = (z ^ z>>30) * 0xBF58476D1CE4E5B9
	z = (z ^ z>>27) * 0x94D049BB133111EB
	return z ^ z>>31
}

func (g *gen) n(n int) int       { return g.r.IntN(n) }
func (g *gen) chance(n int) bool { return g.r.IntN(n) == 0 }

// alphabet mixes ASCII, two-, three- and four-byte UTF-8 (but no wildcards or NUL).
var alphabet = []string{"a", "b", "z", "0", "9", "-", "_", " ", ".", "$", "é", "ß", "水", "€", "😀", "\u007f"}

func (g *gen) str(max int) string {
	var b strings.Builder
	for i := g.n(max + 1); i > 0; i-- {
		b.WriteString(alphabet[g.n(len(alphabet))])
	}
	return b.String()
}

func (g *gen) bytes(max int) []byte {
	n := g.n(max + 1)
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	return b
}

// binary returns Binary Data for a property: present (possibly empty) or absent (nil).
func (g *gen) binary() []byte {
	if g.chance(3) {
		return []byte{}
	}
	return g.bytes(20)
}

func (g *gen) topic() string {
	levels := make([]string, 1+g.n(4))
	for i := range levels {
		levels[i] = g.str(6)
	}
	t := strings.Join(levels, "/")
	if t == "" {
		t = "t"
	}
	return t
}

func (g *gen) filter() string {
	levels := make([]string, 1+g.n(4))
	for i := range levels {
		switch g.n(4) {
		case 0:
			levels[i] = "+"
		default:
			levels[i] = g.str(5)
		}
	}
	if g.chance(3) {
		levels = append(levels, "#")
	}
	f := strings.Join(levels, "/")
	if f == "" {
		f = "#"
	}
	if g.chance(5) {
		f = "$share/g" + g.str(3) + "/" + f
	}
	return f
}

func (g *gen) qos() codec.QoS { return codec.QoS(g.n(3)) }

func (g *gen) id() uint16 { return uint16(1 + g.n(65535)) }

func ptr[T any](v T) *T { return &v }

// allowed is MQTT 5.0 Table 2-4 by property name; "will" stands for the will properties.
var allowed = map[string][]string{
	"PayloadFormat":          {"PUBLISH", "will"},
	"MessageExpiry":          {"PUBLISH", "will"},
	"ContentType":            {"PUBLISH", "will"},
	"ResponseTopic":          {"PUBLISH", "will"},
	"CorrelationData":        {"PUBLISH", "will"},
	"SubscriptionIdentifier": {"PUBLISH", "SUBSCRIBE"},
	"SessionExpiryInterval":  {"CONNECT", "CONNACK", "DISCONNECT"},
	"AssignedClientID":       {"CONNACK"},
	"ServerKeepAlive":        {"CONNACK"},
	"AuthenticationMethod":   {"CONNECT", "CONNACK", "AUTH"},
	"AuthenticationData":     {"CONNECT", "CONNACK", "AUTH"},
	"RequestProblemInfo":     {"CONNECT"},
	"WillDelayInterval":      {"will"},
	"RequestResponseInfo":    {"CONNECT"},
	"ResponseInfo":           {"CONNACK"},
	"ServerReference":        {"CONNACK", "DISCONNECT"},
	"ReasonString":           {"CONNACK", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBACK", "UNSUBACK", "DISCONNECT", "AUTH"},
	"ReceiveMaximum":         {"CONNECT", "CONNACK"},
	"TopicAliasMaximum":      {"CONNECT", "CONNACK"},
	"TopicAlias":             {"PUBLISH"},
	"MaximumQoS":             {"CONNACK"},
	"RetainAvailable":        {"CONNACK"},
	"User":                   {"CONNECT", "CONNACK", "PUBLISH", "will", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "DISCONNECT", "AUTH"},
	"MaximumPacketSize":      {"CONNECT", "CONNACK"},
	"WildcardSubAvailable":   {"CONNACK"},
	"SubIDAvailable":         {"CONNACK"},
	"SharedSubAvailable":     {"CONNACK"},
}

func isAllowed(prop, where string) bool {
	for _, w := range allowed[prop] {
		if w == where {
			return true
		}
	}
	return false
}

// props returns random properties allowed in where (a packet name or "will"), or nil.
// In MQTT 3.1.1 it is always nil.
func (g *gen) props(where string) *codec.Properties {
	if g.v != codec.V5 || g.chance(3) {
		return nil
	}
	p := &codec.Properties{}
	any := false
	// maybe reports whether to set prop, which must be allowed in where.
	maybe := func(prop string) bool {
		ok := isAllowed(prop, where) && g.chance(2)
		any = any || ok
		return ok
	}
	if maybe("PayloadFormat") {
		p.PayloadFormat = ptr(byte(g.n(2)))
	}
	if maybe("MessageExpiry") {
		p.MessageExpiry = ptr(g.r.Uint32())
	}
	if maybe("ContentType") {
		p.ContentType = "ct" + g.str(8)
	}
	if maybe("ResponseTopic") {
		p.ResponseTopic = g.topic()
	}
	if maybe("CorrelationData") {
		p.CorrelationData = g.binary()
		if p.CorrelationData == nil {
			p.CorrelationData = []byte{1}
		}
	}
	if maybe("SubscriptionIdentifier") {
		n := 1
		if where == "PUBLISH" {
			n += g.n(3)
		}
		for range n {
			p.SubscriptionIdentifier = append(p.SubscriptionIdentifier, 1+uint32(g.n(268435455)))
		}
	}
	if maybe("SessionExpiryInterval") {
		p.SessionExpiryInterval = ptr(g.r.Uint32())
	}
	if maybe("AssignedClientID") {
		p.AssignedClientID = "id" + g.str(10)
	}
	if maybe("ServerKeepAlive") {
		p.ServerKeepAlive = ptr(uint16(g.r.Uint32()))
	}
	if maybe("AuthenticationMethod") {
		p.AuthenticationMethod = "SCRAM-" + g.str(4)
		if g.chance(2) {
			p.AuthenticationData = g.binary()
			if p.AuthenticationData == nil {
				p.AuthenticationData = []byte{}
			}
		}
	}
	if maybe("RequestProblemInfo") {
		p.RequestProblemInfo = ptr(byte(g.n(2)))
	}
	if maybe("WillDelayInterval") {
		p.WillDelayInterval = ptr(g.r.Uint32())
	}
	if maybe("RequestResponseInfo") {
		p.RequestResponseInfo = ptr(byte(g.n(2)))
	}
	if maybe("ResponseInfo") {
		p.ResponseInfo = "ri" + g.str(8)
	}
	if maybe("ServerReference") {
		p.ServerReference = "sr" + g.str(8)
	}
	if maybe("ReasonString") {
		p.ReasonString = "rs" + g.str(12)
	}
	if maybe("ReceiveMaximum") {
		p.ReceiveMaximum = ptr(uint16(1 + g.n(65535)))
	}
	if maybe("TopicAliasMaximum") {
		p.TopicAliasMaximum = ptr(uint16(g.r.Uint32()))
	}
	if maybe("TopicAlias") {
		p.TopicAlias = ptr(uint16(1 + g.n(65535)))
	}
	if maybe("MaximumQoS") {
		p.MaximumQoS = ptr(byte(g.n(2)))
	}
	if maybe("RetainAvailable") {
		p.RetainAvailable = ptr(g.chance(2))
	}
	if maybe("User") {
		for range 1 + g.n(3) {
			p.User = append(p.User, codec.UserProperty{Key: g.str(5), Value: g.str(5)})
		}
	}
	if maybe("MaximumPacketSize") {
		p.MaximumPacketSize = ptr(1 + uint32(g.n(1<<30)))
	}
	if maybe("WildcardSubAvailable") {
		p.WildcardSubAvailable = ptr(g.chance(2))
	}
	if maybe("SubIDAvailable") {
		p.SubIDAvailable = ptr(g.chance(2))
	}
	if maybe("SharedSubAvailable") {
		p.SharedSubAvailable = ptr(g.chance(2))
	}
	if !any {
		return nil
	}
	return p
}

func pick[T any](g *gen, vs ...T) T { return vs[g.n(len(vs))] }

// allTypes lists the packet types valid at version.
func allTypes(version byte) []codec.PacketType {
	ts := []codec.PacketType{codec.TypeConnect, codec.TypeConnack, codec.TypePublish, codec.TypePuback,
		codec.TypePubrec, codec.TypePubrel, codec.TypePubcomp, codec.TypeSubscribe, codec.TypeSuback,
		codec.TypeUnsubscribe, codec.TypeUnsuback, codec.TypePingreq, codec.TypePingresp, codec.TypeDisconnect}
	if version == codec.V5 {
		ts = append(ts, codec.TypeAuth)
	}
	return ts
}

// packet returns a random valid packet of type t.
func (g *gen) packet(t codec.PacketType) codec.Packet {
	v5 := g.v == codec.V5
	name := t.String()
	switch t {
	case codec.TypeConnect:
		c := &codec.Connect{Version: g.v, CleanStart: g.chance(2), KeepAlive: uint16(g.r.Uint32()),
			ClientID: g.str(12), Properties: g.props(name)}
		if c.ClientID == "" && !v5 {
			c.CleanStart = true // [MQTT-3.1.3-7]
		}
		if g.chance(2) {
			c.Will = &codec.Will{Topic: g.topic(), Payload: g.bytes(30), QoS: g.qos(), Retain: g.chance(2), Properties: g.props("will")}
		}
		if g.chance(2) {
			c.HasUsername, c.Username = true, g.str(8)
		}
		if g.chance(2) && (v5 || c.HasUsername) {
			c.HasPassword, c.Password = true, g.bytes(8)
		}
		return c
	case codec.TypeConnack:
		c := &codec.Connack{Properties: g.props(name)}
		if v5 {
			c.ReasonCode = pick(g, codec.Success, codec.UnspecifiedError, codec.MalformedPacket, codec.ProtocolError,
				codec.NotAuthorized, codec.ServerBusy, codec.Banned, codec.BadAuthenticationMethod, codec.UseAnotherServer,
				codec.ServerMoved, codec.ConnectionRateExceeded, codec.QuotaExceeded, codec.PacketTooLarge)
		} else {
			c.ReasonCode = pick(g, codec.Success, codec.UnsupportedProtocolVersion, codec.ClientIdentifierNotValid,
				codec.ServerUnavailable, codec.BadUserNameOrPassword, codec.NotAuthorized)
		}
		c.SessionPresent = c.ReasonCode == codec.Success && g.chance(2)
		return c
	case codec.TypePublish:
		p := &codec.Publish{Topic: g.topic(), Payload: g.bytes(40), QoS: g.qos(), Retain: g.chance(2), Properties: g.props(name)}
		if p.QoS > 0 {
			p.PacketID, p.Dup = g.id(), g.chance(2)
		}
		if v5 && p.Properties != nil && p.Properties.TopicAlias != nil && g.chance(2) {
			p.Topic = ""
		}
		return p
	case codec.TypePuback, codec.TypePubrec, codec.TypePubrel, codec.TypePubcomp:
		id, code, props := g.id(), codec.Success, g.props(name)
		if v5 && g.chance(2) {
			if t == codec.TypePuback || t == codec.TypePubrec {
				code = pick(g, codec.NoMatchingSubscribers, codec.UnspecifiedError, codec.ImplementationSpecificError,
					codec.NotAuthorized, codec.TopicNameInvalid, codec.PacketIdentifierInUse, codec.QuotaExceeded,
					codec.PayloadFormatInvalid)
			} else {
				code = codec.PacketIdentifierNotFound
			}
		}
		switch t {
		case codec.TypePuback:
			return &codec.Puback{PacketID: id, ReasonCode: code, Properties: props}
		case codec.TypePubrec:
			return &codec.Pubrec{PacketID: id, ReasonCode: code, Properties: props}
		case codec.TypePubrel:
			return &codec.Pubrel{PacketID: id, ReasonCode: code, Properties: props}
		}
		return &codec.Pubcomp{PacketID: id, ReasonCode: code, Properties: props}
	case codec.TypeSubscribe:
		s := &codec.Subscribe{PacketID: g.id(), Properties: g.props(name)}
		for range 1 + g.n(4) {
			sub := codec.Subscription{Filter: g.filter(), QoS: g.qos()}
			if v5 {
				sub.NoLocal = !strings.HasPrefix(sub.Filter, "$share/") && g.chance(2)
				sub.RetainAsPublished = g.chance(2)
				sub.RetainHandling = byte(g.n(3))
			}
			s.Subscriptions = append(s.Subscriptions, sub)
		}
		return s
	case codec.TypeSuback:
		s := &codec.Suback{PacketID: g.id(), Properties: g.props(name)}
		for range 1 + g.n(4) {
			if v5 {
				s.ReasonCodes = append(s.ReasonCodes, pick(g, codec.GrantedQoS0, codec.GrantedQoS1, codec.GrantedQoS2,
					codec.UnspecifiedError, codec.NotAuthorized, codec.TopicFilterInvalid, codec.QuotaExceeded,
					codec.SharedSubscriptionsNotSupported, codec.WildcardSubscriptionsNotSupported))
			} else {
				s.ReasonCodes = append(s.ReasonCodes, pick(g, codec.GrantedQoS0, codec.GrantedQoS1, codec.GrantedQoS2, codec.UnspecifiedError))
			}
		}
		return s
	case codec.TypeUnsubscribe:
		u := &codec.Unsubscribe{PacketID: g.id(), Properties: g.props(name)}
		for range 1 + g.n(4) {
			u.Filters = append(u.Filters, g.filter())
		}
		return u
	case codec.TypeUnsuback:
		u := &codec.Unsuback{PacketID: g.id(), Properties: g.props(name)}
		if v5 {
			for range 1 + g.n(4) {
				u.ReasonCodes = append(u.ReasonCodes, pick(g, codec.Success, codec.NoSubscriptionExisted,
					codec.UnspecifiedError, codec.NotAuthorized, codec.TopicFilterInvalid, codec.PacketIdentifierInUse))
			}
		}
		return u
	case codec.TypePingreq:
		return &codec.Pingreq{}
	case codec.TypePingresp:
		return &codec.Pingresp{}
	case codec.TypeDisconnect:
		d := &codec.Disconnect{Properties: g.props(name)}
		if v5 && g.chance(2) {
			d.ReasonCode = pick(g, codec.DisconnectWithWill, codec.ServerShuttingDown, codec.KeepAliveTimeout,
				codec.SessionTakenOver, codec.ProtocolError, codec.MessageRateTooHigh, codec.UseAnotherServer)
		}
		return d
	case codec.TypeAuth:
		return &codec.Auth{ReasonCode: pick(g, codec.Success, codec.ContinueAuthentication, codec.ReAuthenticate), Properties: g.props(name)}
	}
	panic("gen: unknown packet type " + name)
}

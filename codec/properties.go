package codec

// Properties holds the MQTT 5.0 properties of a packet or of a will message (section
// 2.2.2). Each field is one property; which ones a packet may carry is fixed by the
// specification and checked in both directions.
//
// Absence: a nil pointer, a nil slice, or an empty string means the property is absent.
// So an empty string property cannot be sent (the specification gives none of them a
// meaning), while Binary Data (CorrelationData, AuthenticationData) is present whenever
// the slice is non-nil, even with length 0. A decoded packet with no properties has a nil
// *Properties; MQTT 3.1.1 packets never have properties.
//
// User properties keep their order and may repeat; SubscriptionIdentifier may hold several
// values in a PUBLISH (one per matching subscription) and at most one in a SUBSCRIBE. Any
// other property appears at most once. A property list holds at most MaxUserProperties
// user properties and MaxSubscriptionIdentifiers subscription identifiers: beyond them
// the codec refuses to encode or decode the packet.
type Properties struct {
	PayloadFormat          *byte          // 0x01 PUBLISH, will: 0 unspecified bytes, 1 UTF-8
	MessageExpiry          *uint32        // 0x02 PUBLISH, will: seconds
	ContentType            string         // 0x03 PUBLISH, will
	ResponseTopic          string         // 0x08 PUBLISH, will: a topic name
	CorrelationData        []byte         // 0x09 PUBLISH, will
	SubscriptionIdentifier []uint32       // 0x0B PUBLISH (any number), SUBSCRIBE (one): 1 to 268435455
	SessionExpiryInterval  *uint32        // 0x11 CONNECT, CONNACK, DISCONNECT: seconds
	AssignedClientID       string         // 0x12 CONNACK
	ServerKeepAlive        *uint16        // 0x13 CONNACK: seconds
	AuthenticationMethod   string         // 0x15 CONNECT, CONNACK, AUTH
	AuthenticationData     []byte         // 0x16 CONNECT, CONNACK, AUTH: needs AuthenticationMethod
	RequestProblemInfo     *byte          // 0x17 CONNECT: 0 or 1
	WillDelayInterval      *uint32        // 0x18 will: seconds
	RequestResponseInfo    *byte          // 0x19 CONNECT: 0 or 1
	ResponseInfo           string         // 0x1A CONNACK
	ServerReference        string         // 0x1C CONNACK, DISCONNECT
	ReasonString           string         // 0x1F CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH
	ReceiveMaximum         *uint16        // 0x21 CONNECT, CONNACK: not 0
	TopicAliasMaximum      *uint16        // 0x22 CONNECT, CONNACK
	TopicAlias             *uint16        // 0x23 PUBLISH: not 0
	MaximumQoS             *byte          // 0x24 CONNACK: 0 or 1
	RetainAvailable        *bool          // 0x25 CONNACK
	User                   []UserProperty // 0x26 every packet that has properties, and will
	MaximumPacketSize      *uint32        // 0x27 CONNECT, CONNACK: not 0
	WildcardSubAvailable   *bool          // 0x28 CONNACK
	SubIDAvailable         *bool          // 0x29 CONNACK
	SharedSubAvailable     *bool          // 0x2A CONNACK
}

// The most values one property list may repeat. MQTT sets no limit, but a repeated value
// costs more decoded than on the wire: an empty User Property is 5 bytes that become a
// 32-byte UserProperty, a Subscription Identifier 2 bytes that become a 4-byte uint32.
// Unbounded, a 16 MiB PUBLISH of nothing else would cost 40 times its size to decode
// (three million UserProperty values, and the garbage of growing the slice to hold them).
// With these limits the repeated values of a property list cost at most 36 KiB decoded,
// whatever the frame's size.
//
// A receiver may refuse a packet it will not process, and the decoder refuses one beyond
// these limits with ImplementationSpecificError ("the packet is valid but is not accepted
// by this receiver"). The encoder refuses to build one, so that one peer using this
// package never sends another what it would refuse.
const (
	// MaxUserProperties bounds the User Properties of one property list (the properties of
	// a packet, or the will properties of a CONNECT). Brokers forward a PUBLISH's User
	// Properties unaltered [MQTT-3.3.2-17], so this limit is applied to what any publisher
	// sends; it is far above what applications attach (a handful, like HTTP headers) and
	// what services that cap them allow (Alibaba Cloud IoT: 20).
	MaxUserProperties = 1024

	// MaxSubscriptionIdentifiers bounds the Subscription Identifiers of one PUBLISH. A
	// server sends one for each subscription of the receiving client that matched the
	// message and was made with an identifier [MQTT-3.3.4-4], so only a client with more
	// overlapping subscriptions than this could ever be sent more.
	MaxSubscriptionIdentifiers = 1024
)

// UserProperty is one name-value pair of the User Property (0x26).
type UserProperty struct {
	Key, Value string
}

// Property identifiers, section 2.2.2.2, Table 2-4.
const (
	propPayloadFormat          = 0x01
	propMessageExpiry          = 0x02
	propContentType            = 0x03
	propResponseTopic          = 0x08
	propCorrelationData        = 0x09
	propSubscriptionIdentifier = 0x0B
	propSessionExpiryInterval  = 0x11
	propAssignedClientID       = 0x12
	propServerKeepAlive        = 0x13
	propAuthenticationMethod   = 0x15
	propAuthenticationData     = 0x16
	propRequestProblemInfo     = 0x17
	propWillDelayInterval      = 0x18
	propRequestResponseInfo    = 0x19
	propResponseInfo           = 0x1A
	propServerReference        = 0x1C
	propReasonString           = 0x1F
	propReceiveMaximum         = 0x21
	propTopicAliasMaximum      = 0x22
	propTopicAlias             = 0x23
	propMaximumQoS             = 0x24
	propRetainAvailable        = 0x25
	propUser                   = 0x26
	propMaximumPacketSize      = 0x27
	propWildcardSubAvailable   = 0x28
	propSubIDAvailable         = 0x29
	propSharedSubAvailable     = 0x2A
	propMax                    = 0x2A
)

// propContext is where a property list sits: a packet type, or ctxWill for the will
// properties inside CONNECT, which are a set of their own (section 3.1.3.2).
type propContext uint8

const ctxWill propContext = 16

func (c propContext) String() string {
	if c == ctxWill {
		return "will properties"
	}
	return PacketType(c).String()
}

// packet is the packet type errors about this context name.
func (c propContext) packet() PacketType {
	if c == ctxWill {
		return TypeConnect
	}
	return PacketType(c)
}

func in(ts ...propContext) uint32 {
	var m uint32
	for _, t := range ts {
		m |= 1 << t
	}
	return m
}

const (
	cConnect     = propContext(TypeConnect)
	cConnack     = propContext(TypeConnack)
	cPublish     = propContext(TypePublish)
	cPuback      = propContext(TypePuback)
	cPubrec      = propContext(TypePubrec)
	cPubrel      = propContext(TypePubrel)
	cPubcomp     = propContext(TypePubcomp)
	cSubscribe   = propContext(TypeSubscribe)
	cSuback      = propContext(TypeSuback)
	cUnsubscribe = propContext(TypeUnsubscribe)
	cUnsuback    = propContext(TypeUnsuback)
	cDisconnect  = propContext(TypeDisconnect)
	cAuth        = propContext(TypeAuth)
)

// valueKind is how a property's value is encoded (Table 2-4's data types).
type valueKind uint8

const (
	kindByte   valueKind = iota + 1 // Byte
	kindUint16                      // Two Byte Integer
	kindUint32                      // Four Byte Integer
	kindVarint                      // Variable Byte Integer
	kindString                      // UTF-8 Encoded String
	kindBinary                      // Binary Data
	kindPair                        // UTF-8 String Pair
)

// propInfo is Table 2-4: each property's name, the contexts that may carry it, and how
// its value is encoded.
var propInfo = [propMax + 1]struct {
	name    string
	allowed uint32
	kind    valueKind
}{
	propPayloadFormat:          {"Payload Format Indicator", in(cPublish, ctxWill), kindByte},
	propMessageExpiry:          {"Message Expiry Interval", in(cPublish, ctxWill), kindUint32},
	propContentType:            {"Content Type", in(cPublish, ctxWill), kindString},
	propResponseTopic:          {"Response Topic", in(cPublish, ctxWill), kindString},
	propCorrelationData:        {"Correlation Data", in(cPublish, ctxWill), kindBinary},
	propSubscriptionIdentifier: {"Subscription Identifier", in(cPublish, cSubscribe), kindVarint},
	propSessionExpiryInterval:  {"Session Expiry Interval", in(cConnect, cConnack, cDisconnect), kindUint32},
	propAssignedClientID:       {"Assigned Client Identifier", in(cConnack), kindString},
	propServerKeepAlive:        {"Server Keep Alive", in(cConnack), kindUint16},
	propAuthenticationMethod:   {"Authentication Method", in(cConnect, cConnack, cAuth), kindString},
	propAuthenticationData:     {"Authentication Data", in(cConnect, cConnack, cAuth), kindBinary},
	propRequestProblemInfo:     {"Request Problem Information", in(cConnect), kindByte},
	propWillDelayInterval:      {"Will Delay Interval", in(ctxWill), kindUint32},
	propRequestResponseInfo:    {"Request Response Information", in(cConnect), kindByte},
	propResponseInfo:           {"Response Information", in(cConnack), kindString},
	propServerReference:        {"Server Reference", in(cConnack, cDisconnect), kindString},
	propReasonString: {"Reason String", in(cConnack, cPuback, cPubrec, cPubrel, cPubcomp,
		cSuback, cUnsuback, cDisconnect, cAuth), kindString},
	propReceiveMaximum:    {"Receive Maximum", in(cConnect, cConnack), kindUint16},
	propTopicAliasMaximum: {"Topic Alias Maximum", in(cConnect, cConnack), kindUint16},
	propTopicAlias:        {"Topic Alias", in(cPublish), kindUint16},
	propMaximumQoS:        {"Maximum QoS", in(cConnack), kindByte},
	propRetainAvailable:   {"Retain Available", in(cConnack), kindByte},
	propUser: {"User Property", in(cConnect, cConnack, cPublish, ctxWill, cPuback, cPubrec,
		cPubrel, cPubcomp, cSubscribe, cSuback, cUnsubscribe, cUnsuback, cDisconnect, cAuth), kindPair},
	propMaximumPacketSize:    {"Maximum Packet Size", in(cConnect, cConnack), kindUint32},
	propWildcardSubAvailable: {"Wildcard Subscription Available", in(cConnack), kindByte},
	propSubIDAvailable:       {"Subscription Identifier Available", in(cConnack), kindByte},
	propSharedSubAvailable:   {"Shared Subscription Available", in(cConnack), kindByte},
}

// propName names a known property identifier for error messages.
func propName(id uint32) string { return propInfo[id].name }

// allowed reports whether context c may carry property id.
func (c propContext) allowed(id uint32) bool {
	return id <= propMax && propInfo[id].allowed&(1<<c) != 0
}

// maxSubscriptionID is the largest Subscription Identifier (a Variable Byte Integer, 3.3.2.3.8).
const maxSubscriptionID = maxRemaining

// isEmpty reports whether p carries no property at all.
func (p *Properties) isEmpty() bool {
	return p == nil || (p.PayloadFormat == nil && p.MessageExpiry == nil && p.ContentType == "" &&
		p.ResponseTopic == "" && p.CorrelationData == nil && len(p.SubscriptionIdentifier) == 0 &&
		p.SessionExpiryInterval == nil && p.AssignedClientID == "" && p.ServerKeepAlive == nil &&
		p.AuthenticationMethod == "" && p.AuthenticationData == nil && p.RequestProblemInfo == nil &&
		p.WillDelayInterval == nil && p.RequestResponseInfo == nil && p.ResponseInfo == "" &&
		p.ServerReference == "" && p.ReasonString == "" && p.ReceiveMaximum == nil &&
		p.TopicAliasMaximum == nil && p.TopicAlias == nil && p.MaximumQoS == nil &&
		p.RetainAvailable == nil && len(p.User) == 0 && p.MaximumPacketSize == nil &&
		p.WildcardSubAvailable == nil && p.SubIDAvailable == nil && p.SharedSubAvailable == nil)
}

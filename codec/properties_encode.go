package codec

// valueProblem says what is wrong with value v of the numeric property id, or "" when
// v is allowed. Encoding and decoding share it so that they accept the same packets.
func valueProblem(id byte, v uint32) string {
	switch id {
	case propPayloadFormat, propRequestProblemInfo, propRequestResponseInfo, propMaximumQoS,
		propRetainAvailable, propWildcardSubAvailable, propSubIDAvailable, propSharedSubAvailable:
		if v > 1 {
			return "must be 0 or 1" // sections 3.1.2.11.6, 3.1.2.11.7, 3.2.2.3.4, 3.3.2.3.2, ...
		}
	case propReceiveMaximum, propMaximumPacketSize:
		if v == 0 {
			return "must not be 0" // sections 3.1.2.11.3, 3.1.2.11.4
		}
	case propTopicAlias:
		if v == 0 {
			return "must not be 0" // [MQTT-3.3.2-8]
		}
	case propSubscriptionIdentifier:
		if v == 0 || v > maxSubscriptionID {
			return "must be 1 to 268435455" // section 3.3.2.3.8
		}
	}
	return ""
}

// propSizer accumulates the encoded size of a property list and the first problem in it.
type propSizer struct {
	c   propContext
	n   int
	err error
}

func (s *propSizer) fail(code ReasonCode, id byte, why string) {
	if s.err == nil {
		s.err = errorf(code, s.c.packet(), -1, "%s: %s", propName(uint32(id)), why)
	}
}

// add counts property id with a value of size bytes if the context may carry it.
func (s *propSizer) add(id byte, size int) {
	if !s.c.allowed(uint32(id)) {
		// Section 2.2.2.2: a property not valid for the packet makes it malformed.
		s.fail(MalformedPacket, id, "not allowed in "+s.c.String())
		return
	}
	s.n += 1 + size
}

func (s *propSizer) num(id byte, v uint32, size int) {
	if why := valueProblem(id, v); why != "" {
		s.fail(ProtocolError, id, why)
	}
	s.add(id, size)
}

func (s *propSizer) str(id byte, v string) {
	if v == "" {
		return
	}
	if why, at := stringProblem(v, false); why != "" {
		s.fail(MalformedPacket, id, why+" (byte "+itoa(at)+")")
	}
	s.add(id, 2+len(v))
}

func (s *propSizer) bin(id byte, v []byte) {
	if v == nil {
		return
	}
	if len(v) > maxString {
		s.fail(MalformedPacket, id, "longer than 65535 bytes")
	}
	s.add(id, 2+len(v))
}

// encodedLen validates p for context c and returns the size of its property list without
// the Property Length prefix. A nil p is an empty list.
func (p *Properties) encodedLen(c propContext) (int, error) {
	if p == nil {
		return 0, nil
	}
	s := propSizer{c: c}
	if p.PayloadFormat != nil {
		s.num(propPayloadFormat, uint32(*p.PayloadFormat), 1)
	}
	if p.MessageExpiry != nil {
		s.add(propMessageExpiry, 4)
	}
	s.str(propContentType, p.ContentType)
	if p.ResponseTopic != "" {
		// [MQTT-3.3.2-14]: the Response Topic is a Topic Name, so no wildcards.
		if why, at := stringProblem(p.ResponseTopic, true); why != "" {
			s.fail(TopicNameInvalid, propResponseTopic, why+" (byte "+itoa(at)+")")
		}
		s.add(propResponseTopic, 2+len(p.ResponseTopic))
	}
	s.bin(propCorrelationData, p.CorrelationData)
	if len(p.SubscriptionIdentifier) > 1 && c != cPublish {
		s.fail(ProtocolError, propSubscriptionIdentifier, "may appear only once in "+c.String())
	}
	// The decoder's limits, so that what is encoded here is never refused there.
	if len(p.SubscriptionIdentifier) > MaxSubscriptionIdentifiers {
		s.fail(ImplementationSpecificError, propSubscriptionIdentifier, itoa(len(p.SubscriptionIdentifier))+
			" of them; a receiver using this package accepts at most "+itoa(MaxSubscriptionIdentifiers))
	}
	if len(p.User) > MaxUserProperties {
		s.fail(ImplementationSpecificError, propUser, itoa(len(p.User))+
			" of them; a receiver using this package accepts at most "+itoa(MaxUserProperties))
	}
	for _, id := range p.SubscriptionIdentifier {
		s.num(propSubscriptionIdentifier, id, varintLen(int(id&maxRemaining)))
	}
	if p.SessionExpiryInterval != nil {
		s.add(propSessionExpiryInterval, 4)
	}
	s.str(propAssignedClientID, p.AssignedClientID)
	if p.ServerKeepAlive != nil {
		s.add(propServerKeepAlive, 2)
	}
	s.str(propAuthenticationMethod, p.AuthenticationMethod)
	if p.AuthenticationData != nil && p.AuthenticationMethod == "" {
		s.fail(ProtocolError, propAuthenticationData, "sent without an Authentication Method") // 3.1.2.11.10
	}
	s.bin(propAuthenticationData, p.AuthenticationData)
	if p.RequestProblemInfo != nil {
		s.num(propRequestProblemInfo, uint32(*p.RequestProblemInfo), 1)
	}
	if p.WillDelayInterval != nil {
		s.add(propWillDelayInterval, 4)
	}
	if p.RequestResponseInfo != nil {
		s.num(propRequestResponseInfo, uint32(*p.RequestResponseInfo), 1)
	}
	s.str(propResponseInfo, p.ResponseInfo)
	s.str(propServerReference, p.ServerReference)
	s.str(propReasonString, p.ReasonString)
	if p.ReceiveMaximum != nil {
		s.num(propReceiveMaximum, uint32(*p.ReceiveMaximum), 2)
	}
	if p.TopicAliasMaximum != nil {
		s.add(propTopicAliasMaximum, 2)
	}
	if p.TopicAlias != nil {
		s.num(propTopicAlias, uint32(*p.TopicAlias), 2)
	}
	if p.MaximumQoS != nil {
		s.num(propMaximumQoS, uint32(*p.MaximumQoS), 1)
	}
	if p.RetainAvailable != nil {
		s.add(propRetainAvailable, 1)
	}
	for _, u := range p.User {
		if why, at := stringProblem(u.Key, false); why != "" {
			s.fail(MalformedPacket, propUser, "key: "+why+" (byte "+itoa(at)+")")
		}
		if why, at := stringProblem(u.Value, false); why != "" {
			s.fail(MalformedPacket, propUser, "value: "+why+" (byte "+itoa(at)+")")
		}
		s.add(propUser, 4+len(u.Key)+len(u.Value))
	}
	if p.MaximumPacketSize != nil {
		s.num(propMaximumPacketSize, *p.MaximumPacketSize, 4)
	}
	if p.WildcardSubAvailable != nil {
		s.add(propWildcardSubAvailable, 1)
	}
	if p.SubIDAvailable != nil {
		s.add(propSubIDAvailable, 1)
	}
	if p.SharedSubAvailable != nil {
		s.add(propSharedSubAvailable, 1)
	}
	if s.err == nil && s.n > maxRemaining {
		s.err = errorf(PacketTooLarge, c.packet(), -1, "%s take %d bytes, more than a packet can hold", c, s.n)
	}
	return s.n, s.err
}

// propsLen is encodedLen plus the Property Length prefix: what a v5 packet spends on p.
func (p *Properties) propsLen(c propContext) (int, error) {
	n, err := p.encodedLen(c)
	return varintLen(n) + n, err
}

// appendProps appends the Property Length n (from encodedLen) and then p's properties in
// identifier order.
func appendProps(dst []byte, p *Properties, n int) []byte {
	dst = appendVarint(dst, uint32(n))
	if n == 0 {
		return dst
	}
	if p.PayloadFormat != nil {
		dst = append(dst, propPayloadFormat, *p.PayloadFormat)
	}
	if p.MessageExpiry != nil {
		dst = appendUint32(append(dst, propMessageExpiry), *p.MessageExpiry)
	}
	dst = appendStringProp(dst, propContentType, p.ContentType)
	dst = appendStringProp(dst, propResponseTopic, p.ResponseTopic)
	if p.CorrelationData != nil {
		dst = appendBinary(append(dst, propCorrelationData), p.CorrelationData)
	}
	for _, id := range p.SubscriptionIdentifier {
		dst = appendVarint(append(dst, propSubscriptionIdentifier), id)
	}
	if p.SessionExpiryInterval != nil {
		dst = appendUint32(append(dst, propSessionExpiryInterval), *p.SessionExpiryInterval)
	}
	dst = appendStringProp(dst, propAssignedClientID, p.AssignedClientID)
	if p.ServerKeepAlive != nil {
		dst = appendUint16(append(dst, propServerKeepAlive), *p.ServerKeepAlive)
	}
	dst = appendStringProp(dst, propAuthenticationMethod, p.AuthenticationMethod)
	if p.AuthenticationData != nil {
		dst = appendBinary(append(dst, propAuthenticationData), p.AuthenticationData)
	}
	if p.RequestProblemInfo != nil {
		dst = append(dst, propRequestProblemInfo, *p.RequestProblemInfo)
	}
	if p.WillDelayInterval != nil {
		dst = appendUint32(append(dst, propWillDelayInterval), *p.WillDelayInterval)
	}
	if p.RequestResponseInfo != nil {
		dst = append(dst, propRequestResponseInfo, *p.RequestResponseInfo)
	}
	dst = appendStringProp(dst, propResponseInfo, p.ResponseInfo)
	dst = appendStringProp(dst, propServerReference, p.ServerReference)
	dst = appendStringProp(dst, propReasonString, p.ReasonString)
	if p.ReceiveMaximum != nil {
		dst = appendUint16(append(dst, propReceiveMaximum), *p.ReceiveMaximum)
	}
	if p.TopicAliasMaximum != nil {
		dst = appendUint16(append(dst, propTopicAliasMaximum), *p.TopicAliasMaximum)
	}
	if p.TopicAlias != nil {
		dst = appendUint16(append(dst, propTopicAlias), *p.TopicAlias)
	}
	if p.MaximumQoS != nil {
		dst = append(dst, propMaximumQoS, *p.MaximumQoS)
	}
	dst = appendBoolProp(dst, propRetainAvailable, p.RetainAvailable)
	for _, u := range p.User {
		dst = appendString(appendString(append(dst, propUser), u.Key), u.Value)
	}
	if p.MaximumPacketSize != nil {
		dst = appendUint32(append(dst, propMaximumPacketSize), *p.MaximumPacketSize)
	}
	dst = appendBoolProp(dst, propWildcardSubAvailable, p.WildcardSubAvailable)
	dst = appendBoolProp(dst, propSubIDAvailable, p.SubIDAvailable)
	dst = appendBoolProp(dst, propSharedSubAvailable, p.SharedSubAvailable)
	return dst
}

func appendStringProp(dst []byte, id byte, s string) []byte {
	if s == "" {
		return dst
	}
	return appendString(append(dst, id), s)
}

func appendBoolProp(dst []byte, id byte, v *bool) []byte {
	if v == nil {
		return dst
	}
	b := byte(0)
	if *v {
		b = 1
	}
	return append(dst, id, b)
}

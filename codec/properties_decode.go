package codec

// properties decodes a property list (section 2.2.2) for context c. It returns nil when
// the list holds no property (or only empty strings, which Properties cannot tell from
// absent ones). Section 2.2.2.2: an identifier the packet may not carry makes it
// malformed; a property that may appear once and appears twice is a protocol error.
func (d *decoder) properties(c propContext) (*Properties, error) {
	start := d.off
	n, err := d.varint("property length")
	if err != nil {
		return nil, err
	}
	if int64(n) > int64(d.left()) {
		return nil, d.errAt(MalformedPacket, start, "property length %d runs past the end of %s", n, d.end())
	}
	if n == 0 {
		return nil, nil
	}
	full, in := d.b, d.in
	d.b, d.in = d.b[:d.off+int(n)], "the properties"
	p := new(Properties)
	// Each repeated property gets its slice at its final size, in one allocation: so a
	// decoded list holds no spare capacity and leaves no garbage of grown copies, and
	// these lists cost at most what the limits allow (see MaxUserProperties).
	users, subIDs := countRepeated(d.b[d.off:])
	if users > 0 {
		p.User = make([]UserProperty, 0, users)
	}
	if subIDs > 0 {
		p.SubscriptionIdentifier = make([]uint32, 0, subIDs)
	}
	var seen uint64
	for d.left() > 0 {
		at := d.off
		id, err := d.varint("property identifier")
		if err != nil {
			return nil, err
		}
		if id > propMax || propInfo[id].name == "" {
			return nil, d.errAt(MalformedPacket, at, "unknown property identifier 0x%02X", id)
		}
		if !c.allowed(id) {
			return nil, d.errAt(MalformedPacket, at, "%s is not allowed in %s", propName(id), c)
		}
		repeatable := id == propUser || (id == propSubscriptionIdentifier && c == cPublish)
		if seen&(1<<id) != 0 && !repeatable {
			return nil, d.errAt(ProtocolError, at, "%s appears more than once", propName(id))
		}
		seen |= 1 << id
		if err := d.property(p, byte(id), at); err != nil {
			return nil, err
		}
	}
	d.b, d.in = full, in
	if p.AuthenticationData != nil && p.AuthenticationMethod == "" {
		// Section 3.1.2.11.10 (and 3.2.2.3.18, 3.15.2.2.3).
		return nil, d.errAt(ProtocolError, start, "Authentication Data without an Authentication Method")
	}
	if p.isEmpty() {
		return nil, nil
	}
	return p, nil
}

// countRepeated counts the User Properties and Subscription Identifiers in the property
// list b (what follows the Property Length). It only sizes the slices that properties
// fills, and never decides whether the list is valid: it stops at the first thing it
// cannot read, and properties then reports it; and at the first value over a limit,
// which properties refuses. It reads each identifier and value as properties does (by
// propInfo's kind), so the counts are what properties stores before it finishes or
// refuses the list.
func countRepeated(b []byte) (users, subIDs int) {
	for i := 0; i < len(b); {
		var id uint32
		for k := 0; ; k++ { // the identifier, a Variable Byte Integer like d.varint's
			if k == 4 || i == len(b) {
				return
			}
			c := b[i]
			i++
			id |= uint32(c&0x7F) << (7 * k)
			if c < 0x80 {
				break
			}
		}
		if id > propMax {
			return
		}
		switch propInfo[id].kind {
		case kindByte:
			i++
		case kindUint16:
			i += 2
		case kindUint32:
			i += 4
		case kindVarint:
			for k := 0; k < 4 && i < len(b); k++ {
				i++
				if b[i-1] < 0x80 {
					break
				}
			}
			if subIDs++; subIDs > MaxSubscriptionIdentifiers {
				return users, MaxSubscriptionIdentifiers // properties refuses this one
			}
		case kindString, kindBinary:
			if i+2 > len(b) {
				return
			}
			i += 2 + (int(b[i])<<8 | int(b[i+1]))
		case kindPair:
			for range 2 {
				if i+2 > len(b) {
					return
				}
				i += 2 + (int(b[i])<<8 | int(b[i+1]))
			}
			if users++; users > MaxUserProperties {
				return MaxUserProperties, subIDs // properties refuses this one
			}
		default: // not a property identifier
			return
		}
	}
	return
}

// property decodes the value of property id, which starts at body offset at, into p.
func (d *decoder) property(p *Properties, id byte, at int) error {
	name := propInfo[id].name
	var err error
	var v uint32 // numeric value, for valueProblem
	switch propInfo[id].kind {
	case kindByte:
		var b byte
		b, err = d.byte1(name)
		v = uint32(b)
		if err == nil && valueProblem(id, v) == "" {
			setByteProp(p, id, b)
		}
	case kindUint16:
		var u uint16
		u, err = d.uint16(name)
		v = uint32(u)
		switch id {
		case propServerKeepAlive:
			p.ServerKeepAlive = &u
		case propReceiveMaximum:
			p.ReceiveMaximum = &u
		case propTopicAliasMaximum:
			p.TopicAliasMaximum = &u
		default:
			p.TopicAlias = &u
		}
	case kindUint32:
		var u uint32
		u, err = d.uint32(name)
		v = u
		switch id {
		case propMessageExpiry:
			p.MessageExpiry = &u
		case propSessionExpiryInterval:
			p.SessionExpiryInterval = &u
		case propWillDelayInterval:
			p.WillDelayInterval = &u
		default:
			p.MaximumPacketSize = &u
		}
	case kindVarint: // the Subscription Identifier
		if len(p.SubscriptionIdentifier) == MaxSubscriptionIdentifiers {
			return d.errAt(ImplementationSpecificError, at,
				"more than %d Subscription Identifiers; this receiver accepts no more (codec.MaxSubscriptionIdentifiers)",
				MaxSubscriptionIdentifiers)
		}
		v, err = d.varint(name)
		p.SubscriptionIdentifier = append(p.SubscriptionIdentifier, v)
	case kindBinary:
		var b []byte
		b, err = d.binary(name)
		if id == propCorrelationData {
			p.CorrelationData = b
		} else {
			p.AuthenticationData = b
		}
	case kindPair: // the User Property
		if len(p.User) == MaxUserProperties {
			return d.errAt(ImplementationSpecificError, at,
				"more than %d User Properties; this receiver accepts no more (codec.MaxUserProperties)",
				MaxUserProperties)
		}
		var u UserProperty
		if u.Key, err = d.string("User Property name", false); err == nil {
			u.Value, err = d.string("User Property value", false)
		}
		p.User = append(p.User, u)
	default: // kindString
		if id == propResponseTopic {
			p.ResponseTopic, err = d.string(name, true) // [MQTT-3.3.2-14]
			if err == nil && p.ResponseTopic == "" {
				return d.errAt(TopicNameInvalid, at, "%s is empty", name) // [MQTT-4.7.3-1]
			}
			break
		}
		var s string
		s, err = d.string(name, false)
		switch id {
		case propContentType:
			p.ContentType = s
		case propAssignedClientID:
			p.AssignedClientID = s
		case propAuthenticationMethod:
			p.AuthenticationMethod = s
		case propResponseInfo:
			p.ResponseInfo = s
		case propServerReference:
			p.ServerReference = s
		default:
			p.ReasonString = s
		}
	}
	if err != nil {
		return err
	}
	if why := valueProblem(id, v); why != "" {
		return d.errAt(ProtocolError, at, "%s is %d; it %s", name, v, why)
	}
	return nil
}

// setByteProp stores a one-byte property whose value was checked.
func setByteProp(p *Properties, id, b byte) {
	t := b == 1
	switch id {
	case propPayloadFormat:
		p.PayloadFormat = &b
	case propRequestProblemInfo:
		p.RequestProblemInfo = &b
	case propRequestResponseInfo:
		p.RequestResponseInfo = &b
	case propMaximumQoS:
		p.MaximumQoS = &b
	case propRetainAvailable:
		p.RetainAvailable = &t
	case propWildcardSubAvailable:
		p.WildcardSubAvailable = &t
	case propSubIDAvailable:
		p.SubIDAvailable = &t
	case propSharedSubAvailable:
		p.SharedSubAvailable = &t
	}
}

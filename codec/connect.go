package codec

import "bytes"

// Connect is a CONNECT packet, the first packet a client sends (section 3.1).
//
// Version is the protocol level written into the frame (V311 or V5); the version
// argument of AppendTo and Size is ignored for CONNECT, and a decoded Connect has the
// level its frame carried. Username and Password are sent only when HasUsername and
// HasPassword are set (an empty value is then sent as empty); setting a value without its
// flag is an error rather than a silent drop. MQTT 3.1.1 does not allow a password
// without a user name [MQTT-3.1.2-22], nor an empty ClientID without CleanStart
// [MQTT-3.1.3-7]. A decoded Password is nil when empty.
type Connect struct {
	Version     byte // V311 or V5
	CleanStart  bool // Clean Session in MQTT 3.1.1
	KeepAlive   uint16
	ClientID    string
	Will        *Will
	Username    string
	HasUsername bool
	Password    []byte
	HasPassword bool
	Properties  *Properties // MQTT 5.0 only
}

// Will is the will message in a CONNECT: what the server publishes for the client when it
// goes away without DISCONNECT. Topic is a non-empty topic name; Payload may be empty (a
// decoded one is then nil); Properties are MQTT 5.0 only and are the will's own set
// (Will Delay Interval, Payload Format Indicator, Message Expiry Interval, Content Type,
// Response Topic, Correlation Data, User Property).
type Will struct {
	Topic      string
	Payload    []byte
	QoS        QoS
	Retain     bool
	Properties *Properties
}

// protocolName is the Protocol Name of MQTT 3.1.1 and 5.0 [MQTT-3.1.2-1].
const protocolName = "MQTT"

// Type returns TypeConnect.
func (*Connect) Type() PacketType { return TypeConnect }

// AppendTo appends p's frame, at protocol level p.Version, to dst; version is ignored.
// See Packet.
func (p *Connect) AppendTo(dst []byte, version byte) ([]byte, error) {
	return appendFrame(dst, p, version)
}

func (*Connect) header() byte { return byte(TypeConnect) << 4 }

// flags returns the Connect Flags byte (section 3.1.2.3); bit 0 is reserved [MQTT-3.1.2-3].
func (p *Connect) flags() byte {
	var f byte
	if p.CleanStart {
		f |= 0x02
	}
	if w := p.Will; w != nil {
		f |= 0x04 | byte(w.QoS&3)<<3
		if w.Retain {
			f |= 0x20
		}
	}
	if p.HasPassword {
		f |= 0x40
	}
	if p.HasUsername {
		f |= 0x80
	}
	return f
}

func (p *Connect) bodyLen(byte) (int, error) {
	v := p.Version
	if v != V311 && v != V5 {
		return 0, errorf(UnsupportedProtocolVersion, TypeConnect, -1, "Version is %d; set V311 (4) or V5 (5)", v)
	}
	n := 2 + len(protocolName) + 1 + 1 + 2 // name, level, flags, keep alive
	if err := propsFor(&n, p.Properties, cConnect, v); err != nil {
		return 0, err
	}
	m, err := stringLen(TypeConnect, "client identifier", p.ClientID)
	if err != nil {
		err.(*Error).Code = ClientIdentifierNotValid
		return 0, err
	}
	n += m
	if v == V311 && p.ClientID == "" && !p.CleanStart {
		return 0, errorf(ClientIdentifierNotValid, TypeConnect, -1,
			"an empty client identifier needs CleanStart in MQTT 3.1.1") // [MQTT-3.1.3-7]
	}
	if w := p.Will; w != nil {
		if !w.QoS.Valid() {
			return 0, errorf(MalformedPacket, TypeConnect, -1, "will QoS %d; it must be 0, 1 or 2", w.QoS) // 5.0 [MQTT-3.1.2-12]
		}
		if err := propsFor(&n, w.Properties, ctxWill, v); err != nil {
			return 0, err
		}
		if w.Topic == "" {
			return 0, errorf(TopicNameInvalid, TypeConnect, -1, "will topic is empty") // [MQTT-4.7.3-1]
		}
		m, err := topicLen(TypeConnect, "will topic", w.Topic)
		if err != nil {
			return 0, err
		}
		n += m
		if m, err = binaryLen(TypeConnect, "will payload", w.Payload); err != nil {
			return 0, err
		}
		n += m
	}
	switch {
	case p.HasUsername:
		if m, err = stringLen(TypeConnect, "user name", p.Username); err != nil {
			return 0, err
		}
		n += m
	case p.Username != "":
		return 0, errorf(ProtocolError, TypeConnect, -1, "Username is set but HasUsername is false") // [MQTT-3.1.2-16] (3.1.1: [MQTT-3.1.2-18])
	case p.HasPassword && v == V311:
		return 0, errorf(MalformedPacket, TypeConnect, -1, "MQTT 3.1.1 does not allow a password without a user name") // [MQTT-3.1.2-22]
	}
	switch {
	case p.HasPassword:
		if m, err = binaryLen(TypeConnect, "password", p.Password); err != nil {
			return 0, err
		}
		n += m
	case len(p.Password) > 0:
		return 0, errorf(ProtocolError, TypeConnect, -1, "Password is set but HasPassword is false") // [MQTT-3.1.2-18] (3.1.1: [MQTT-3.1.2-20])
	}
	return n, nil
}

// propsFor adds to *n what a property list costs at protocol level v: in MQTT 5.0 its
// size with the Property Length; in MQTT 3.1.1 nothing, and it must be empty.
func propsFor(n *int, p *Properties, c propContext, v byte) error {
	if v != V5 {
		if !p.isEmpty() {
			return errV311Props(c.packet())
		}
		return nil
	}
	m, err := p.propsLen(c)
	*n += m
	return err
}

func (p *Connect) appendBody(dst []byte, _ byte) []byte {
	dst = appendString(dst, protocolName)
	dst = append(dst, p.Version, p.flags())
	dst = appendUint16(dst, p.KeepAlive)
	if p.Version == V5 {
		n, _ := p.Properties.encodedLen(cConnect)
		dst = appendProps(dst, p.Properties, n)
	}
	dst = appendString(dst, p.ClientID)
	if w := p.Will; w != nil {
		if p.Version == V5 {
			n, _ := w.Properties.encodedLen(ctxWill)
			dst = appendProps(dst, w.Properties, n)
		}
		dst = appendString(dst, w.Topic)
		dst = appendBinary(dst, w.Payload)
	}
	if p.HasUsername {
		dst = appendString(dst, p.Username)
	}
	if p.HasPassword {
		dst = appendBinary(dst, p.Password)
	}
	return dst
}

// connect decodes a CONNECT body (section 3.1) at the protocol level it names.
func (d *decoder) connect(p *Connect) error {
	name, at, err := d.field("protocol name")
	if err != nil {
		return err
	}
	level, err := d.byte1("protocol level")
	if err != nil {
		return err
	}
	switch {
	case string(name) == "MQIsdp":
		return d.errAt(UnsupportedProtocolVersion, at, "MQTT 3.1 (protocol name MQIsdp, level %d) is not supported", level)
	case !bytes.Equal(name, []byte(protocolName)):
		return d.errAt(MalformedPacket, at, "protocol name is %q, not \"MQTT\"", name) // [MQTT-3.1.2-1]
	case level != V311 && level != V5:
		return d.errAt(UnsupportedProtocolVersion, d.off-1, "protocol level %d is not 4 (3.1.1) or 5 (5.0)", level) // [MQTT-3.1.2-2]
	}
	p.Version = level
	flags, err := d.byte1("connect flags")
	if err != nil {
		return err
	}
	flagsAt := d.off - 1
	willQoS := QoS(flags >> 3 & 3)
	switch {
	case flags&0x01 != 0:
		return d.errAt(MalformedPacket, flagsAt, "reserved connect flag is set") // [MQTT-3.1.2-3]
	case flags&0x04 == 0 && (willQoS != 0 || flags&0x20 != 0):
		// 5.0 [MQTT-3.1.2-11] [MQTT-3.1.2-13]; 3.1.1 [MQTT-3.1.2-13] [MQTT-3.1.2-15].
		return d.errAt(MalformedPacket, flagsAt, "will QoS or will retain set without the will flag")
	case willQoS == 3:
		return d.errAt(MalformedPacket, flagsAt, "will QoS 3") // 5.0 [MQTT-3.1.2-12]; 3.1.1 [MQTT-3.1.2-14]
	case level == V311 && flags&0xC0 == 0x40:
		return d.errAt(MalformedPacket, flagsAt, "password flag without user name flag") // [MQTT-3.1.2-22]
	}
	p.CleanStart = flags&0x02 != 0
	p.HasPassword = flags&0x40 != 0
	p.HasUsername = flags&0x80 != 0
	if p.KeepAlive, err = d.uint16("keep alive"); err != nil {
		return err
	}
	if level == V5 {
		if p.Properties, err = d.properties(cConnect); err != nil {
			return err
		}
	}
	idAt := d.off
	if p.ClientID, err = d.string("client identifier", false); err != nil {
		return err
	}
	if level == V311 && p.ClientID == "" && !p.CleanStart {
		return d.errAt(ClientIdentifierNotValid, idAt, "empty client identifier without clean session") // [MQTT-3.1.3-7]
	}
	if flags&0x04 != 0 {
		w := &Will{QoS: willQoS, Retain: flags&0x20 != 0}
		if level == V5 {
			if w.Properties, err = d.properties(ctxWill); err != nil {
				return err
			}
		}
		topicAt := d.off
		if w.Topic, err = d.string("will topic", true); err != nil {
			return err
		}
		if w.Topic == "" {
			return d.errAt(TopicNameInvalid, topicAt, "will topic is empty") // [MQTT-4.7.3-1]
		}
		if w.Payload, err = d.binary("will payload"); err != nil {
			return err
		}
		if len(w.Payload) == 0 {
			w.Payload = nil
		}
		p.Will = w
	}
	if p.HasUsername {
		if p.Username, err = d.string("user name", false); err != nil {
			return err
		}
	}
	if p.HasPassword {
		if p.Password, err = d.binary("password"); err != nil {
			return err
		}
		if len(p.Password) == 0 {
			p.Password = nil
		}
	}
	return d.done()
}

// Connack is a CONNACK packet, the server's answer to CONNECT (section 3.2).
//
// In MQTT 3.1.1 the return codes 0 to 5 map to and from Success,
// UnsupportedProtocolVersion, ClientIdentifierNotValid, ServerUnavailable,
// BadUserNameOrPassword and NotAuthorized, so callers see one vocabulary; encoding any
// other code for V311 is an error. SessionPresent must be false when ReasonCode is an
// error [MQTT-3.2.2-4] [MQTT-3.2.2-6]. Properties are MQTT 5.0 only.
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Properties     *Properties
}

// Type returns TypeConnack.
func (*Connack) Type() PacketType { return TypeConnack }

// AppendTo appends p's frame to dst; see Packet.
func (p *Connack) AppendTo(dst []byte, version byte) ([]byte, error) {
	return appendFrame(dst, p, version)
}

func (*Connack) header() byte { return byte(TypeConnack) << 4 }

func (p *Connack) bodyLen(version byte) (int, error) {
	if p.SessionPresent && p.ReasonCode != Success {
		return 0, errorf(ProtocolError, TypeConnack, -1, "session present with reason code %s", p.ReasonCode)
	}
	if version == V311 {
		if _, ok := connackToV311(p.ReasonCode); !ok {
			return 0, errorf(MalformedPacket, TypeConnack, -1, "reason code %s has no MQTT 3.1.1 return code", p.ReasonCode)
		}
	} else if !connackCodes.permits(p.ReasonCode) {
		return 0, errorf(ProtocolError, TypeConnack, -1, "reason code 0x%02X is not valid in CONNACK", byte(p.ReasonCode))
	}
	n := 2
	return n, propsFor(&n, p.Properties, cConnack, version)
}

func (p *Connack) appendBody(dst []byte, version byte) []byte {
	var flags byte
	if p.SessionPresent {
		flags = 1
	}
	if version == V311 {
		code, _ := connackToV311(p.ReasonCode)
		return append(dst, flags, code)
	}
	n, _ := p.Properties.encodedLen(cConnack)
	return appendProps(append(dst, flags, byte(p.ReasonCode)), p.Properties, n)
}

// connack decodes a CONNACK body (section 3.2).
func (d *decoder) connack(p *Connack, version byte) error {
	if version == V311 {
		if err := d.exactLength(2); err != nil {
			return err
		}
	}
	flags, err := d.byte1("connect acknowledge flags")
	if err != nil {
		return err
	}
	if flags&0xFE != 0 {
		return d.errAt(MalformedPacket, 0, "reserved connect acknowledge flags are set") // [MQTT-3.2.2-1]
	}
	p.SessionPresent = flags == 1
	if version == V311 {
		code, _ := d.byte1("return code") // present: the length is exactly 2
		if int(code) >= len(connackV311) {
			return d.errAt(ProtocolError, 1, "return code %d is not defined in MQTT 3.1.1", code)
		}
		p.ReasonCode = connackV311[code]
	} else {
		if p.ReasonCode, err = d.reasonCode(&connackCodes); err != nil {
			return err
		}
		if p.Properties, err = d.properties(cConnack); err != nil {
			return err
		}
	}
	if p.SessionPresent && p.ReasonCode != Success {
		return d.errAt(ProtocolError, 0, "session present with reason code %s", p.ReasonCode) // [MQTT-3.2.2-4] [MQTT-3.2.2-6]
	}
	return d.done()
}

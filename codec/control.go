package codec

// Pingreq is a PINGREQ packet (section 3.12): the client's keep-alive probe.
type Pingreq struct{}

// Pingresp is a PINGRESP packet (section 3.13): the server's answer to PINGREQ.
type Pingresp struct{}

// Type returns TypePingreq.
func (*Pingreq) Type() PacketType { return TypePingreq }

// Type returns TypePingresp.
func (*Pingresp) Type() PacketType { return TypePingresp }

// AppendTo appends the two-byte frame C0 00 to dst; see Packet.
func (p *Pingreq) AppendTo(dst []byte, version byte) ([]byte, error) {
	return appendFrame(dst, p, version)
}

// AppendTo appends the two-byte frame D0 00 to dst; see Packet.
func (p *Pingresp) AppendTo(dst []byte, version byte) ([]byte, error) {
	return appendFrame(dst, p, version)
}

func (*Pingreq) header() byte                          { return byte(TypePingreq) << 4 }
func (*Pingresp) header() byte                         { return byte(TypePingresp) << 4 }
func (*Pingreq) bodyLen(byte) (int, error)             { return 0, nil }
func (*Pingresp) bodyLen(byte) (int, error)            { return 0, nil }
func (*Pingreq) appendBody(dst []byte, _ byte) []byte  { return dst }
func (*Pingresp) appendBody(dst []byte, _ byte) []byte { return dst }

// Disconnect is a DISCONNECT packet (section 3.14). In MQTT 3.1.1 it is empty:
// ReasonCode must be NormalDisconnection and Properties nil. In MQTT 5.0 either side may
// send it, with a reason code and Session Expiry Interval, Reason String, Server
// Reference and user properties.
type Disconnect struct {
	ReasonCode ReasonCode
	Properties *Properties
}

// Type returns TypeDisconnect.
func (*Disconnect) Type() PacketType { return TypeDisconnect }

// AppendTo appends p's frame to dst; see Packet.
func (p *Disconnect) AppendTo(dst []byte, version byte) ([]byte, error) {
	return appendFrame(dst, p, version)
}

func (*Disconnect) header() byte { return byte(TypeDisconnect) << 4 }

func (p *Disconnect) bodyLen(version byte) (int, error) {
	if version == V311 {
		if p.ReasonCode != NormalDisconnection {
			return 0, errorf(MalformedPacket, TypeDisconnect, -1, "reason code %s cannot be sent in MQTT 3.1.1", p.ReasonCode)
		}
		if !p.Properties.isEmpty() {
			return 0, errV311Props(TypeDisconnect)
		}
		return 0, nil
	}
	return codeAndPropsLen(TypeDisconnect, &disconnectCodes, p.ReasonCode, p.Properties)
}

func (p *Disconnect) appendBody(dst []byte, version byte) []byte {
	if version == V311 {
		return dst
	}
	return appendCodeAndProps(dst, TypeDisconnect, p.ReasonCode, p.Properties)
}

// codeAndPropsLen validates the body of a v5 DISCONNECT or AUTH: a reason code and
// properties, both left out when the code is 0 and there are no properties (sections
// 3.14.2.1, 3.15.2.1), and in a DISCONNECT the properties left out when there are none.
func codeAndPropsLen(t PacketType, allowed *codeSet, code ReasonCode, props *Properties) (int, error) {
	if !allowed.permits(code) {
		return 0, errorf(ProtocolError, t, -1, "reason code 0x%02X is not valid in %s", byte(code), t)
	}
	n, err := props.encodedLen(propContext(t))
	switch {
	case err != nil:
		return 0, err
	case n > 0 || (code != 0 && t == TypeAuth):
		// AUTH, unlike DISCONNECT (3.14.2.2.1), has no rule that a missing Property
		// Length means 0, so it is written whenever the reason code is.
		return 1 + varintLen(n) + n, nil
	case code != 0:
		return 1, nil
	}
	return 0, nil
}

func appendCodeAndProps(dst []byte, t PacketType, code ReasonCode, props *Properties) []byte {
	n, _ := props.encodedLen(propContext(t))
	if n > 0 || (code != 0 && t == TypeAuth) {
		return appendProps(append(dst, byte(code)), props, n)
	}
	if code != 0 {
		dst = append(dst, byte(code))
	}
	return dst
}

// codeAndProps decodes the body of a v5 DISCONNECT or AUTH. It also accepts an AUTH of
// one byte, a reason code without Property Length, whose meaning is unambiguous.
func (d *decoder) codeAndProps(allowed *codeSet) (code ReasonCode, props *Properties, err error) {
	if d.left() > 0 {
		if code, err = d.reasonCode(allowed); err != nil {
			return 0, nil, err
		}
	}
	if d.left() > 0 {
		if props, err = d.properties(propContext(d.t)); err != nil {
			return 0, nil, err
		}
	}
	return code, props, d.done()
}

// disconnect decodes a DISCONNECT body (section 3.14).
func (d *decoder) disconnect(p *Disconnect, version byte) (err error) {
	if version == V311 {
		return d.exactLength(0)
	}
	p.ReasonCode, p.Properties, err = d.codeAndProps(&disconnectCodes)
	return err
}

// Auth is an AUTH packet (section 3.15), used for extended authentication in MQTT 5.0
// only: encoding it for V311 is an error, and type 15 in a 3.1.1 stream is malformed.
// ReasonCode is Success, ContinueAuthentication or ReAuthenticate.
type Auth struct {
	ReasonCode ReasonCode
	Properties *Properties
}

// Type returns TypeAuth.
func (*Auth) Type() PacketType { return TypeAuth }

// AppendTo appends p's frame to dst; see Packet.
func (p *Auth) AppendTo(dst []byte, version byte) ([]byte, error) {
	return appendFrame(dst, p, version)
}

func (*Auth) header() byte { return byte(TypeAuth) << 4 }

func (p *Auth) bodyLen(version byte) (int, error) {
	if version == V311 {
		return 0, errorf(MalformedPacket, TypeAuth, -1, "AUTH does not exist in MQTT 3.1.1")
	}
	return codeAndPropsLen(TypeAuth, &authCodes, p.ReasonCode, p.Properties)
}

func (p *Auth) appendBody(dst []byte, _ byte) []byte {
	return appendCodeAndProps(dst, TypeAuth, p.ReasonCode, p.Properties)
}

// auth decodes an AUTH body (section 3.15); checkFrame already refused it in 3.1.1.
func (d *decoder) auth(p *Auth) (err error) {
	p.ReasonCode, p.Properties, err = d.codeAndProps(&authCodes)
	return err
}

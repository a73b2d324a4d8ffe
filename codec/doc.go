// Package codec encodes, decodes and validates the control packets of MQTT 3.1.1 and
// MQTT 5.0. It is the wire format and nothing else: no goroutines, no timers, no I/O
// beyond reading the bufio.Reader it is given.
//
// # Packets
//
// Each of the fifteen control packets is a plain struct (*Connect, *Connack, *Publish,
// *Puback, *Pubrec, *Pubrel, *Pubcomp, *Subscribe, *Suback, *Unsubscribe, *Unsuback,
// *Pingreq, *Pingresp, *Disconnect, *Auth) behind the Packet interface. The same structs
// serve both protocol levels: fields that only MQTT 5.0 has (reason codes other than
// success, Properties, subscription options) must be left zero when encoding for V311, and
// are zero after decoding a 3.1.1 frame. MQTT 3.1.1 return codes are mapped onto the MQTT
// 5.0 ReasonCode names, so callers handle one vocabulary.
//
// # Encoding
//
// AppendTo appends a whole frame to a caller's buffer, so a writer can reuse one buffer
// and encode without allocating:
//
//	buf = buf[:0]
//	buf, err = pub.AppendTo(buf, codec.V5)
//
// It validates everything it writes (lengths against their field widths, QoS, packet
// identifiers, UTF-8 strings, topic names and filters, which properties the packet may
// carry) and appends nothing when the packet cannot be sent. Size reports a frame's length
// without encoding it, for checking against the peer's Maximum Packet Size.
//
// # Decoding
//
// ReadPacket reads one frame from a bufio.Reader, and Decode one frame from memory. Both
// enforce a maximum packet size from the fixed header, before allocating or reading
// anything else, and check every length against the frame before slicing. What they
// return belongs to the caller; a PUBLISH costs a single allocation that holds the struct,
// its topic and its payload.
//
// ReadPacketInto and DecodeInto decode a PUBLISH into a Publish the caller supplies and
// reuses, so a read loop that hands messages on by value pays one pointer-free
// allocation per message, the frame's body, and nothing else:
//
//	var pub codec.Publish
//	for {
//		p, err := codec.ReadPacketInto(r, &pub, codec.V311, 0)
//		...
//		if p == &pub {
//			deliver(pub) // a copy: it owns the message's memory, pub is reused
//		}
//	}
//
// # Errors
//
// A frame that breaks the protocol, and a packet that cannot be encoded, give an *Error:
// its Code is the reason code a receiver should answer with (MalformedPacket,
// ProtocolError, PacketTooLarge, ...), its Offset the byte of the frame at fault, and its
// message cites what is wrong. The checks name the specification's normative statements
// in comments ([MQTT-3.3.1-4]).
//
// # Validation
//
// ValidateTopicName, ValidateTopicFilter, ValidateString and ValidateClientID let a client
// reject bad input at the call, before anything is queued.
package codec

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
// # Memory
//
// What decoding a frame allocates is bounded by the frame, never by what a field claims:
// every length is checked against the frame before anything is allocated. Decoded values
// are larger than their wire form, though (an empty User Property, 5 bytes, becomes a
// 32-byte UserProperty), so the values a packet may repeat are bounded too:
//
//   - at most MaxUserProperties (1024) User Properties per property list, and
//     MaxSubscriptionIdentifiers (1024) Subscription Identifiers per PUBLISH. MQTT sets
//     no limit; without one, a 16 MiB PUBLISH holding nothing but empty User Properties
//     cost 646 MiB to decode. A frame beyond a limit is refused with
//     ImplementationSpecificError, and a packet beyond one is not encoded;
//   - each repeated value's slice is allocated once, at its final length.
//
// So a frame a client receives costs about its own size to decode (the copy a PUBLISH
// owns, or the strings and reason codes copied out of another packet), plus at most 36
// KiB per property list. A body over 1 MiB that ReadPacket reads from the stream grows
// its buffer by doubling as the bytes arrive, and the garbage of that adds under the
// body's size again (twice, just past a power of two). SUBSCRIBE and UNSUBSCRIBE, which
// only a server receives, have no limit on their topic filters, which cost up to 6 times
// their wire size decoded: a server should bound the frame's size.
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

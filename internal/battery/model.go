package battery

// The byte model: what one refused connection attempt puts on the air.
//
// When the broker is down, its host is usually still up and answers the
// device's SYN on the closed MQTT port with a reset (RFC 9293, section
// 3.10.7.1: a segment that arrives for a CLOSED connection elicits an RST).
// So a refused attempt is two segments without payload: the device's SYN
// and the host's RST+ACK; no SYN-ACK is ever sent. Each is counted at the
// minimal IPv4 and TCP headers. Real SYNs carry 20 bytes of TCP options more
// (MSS, SACK permitted, timestamps, window scale on Linux), and the link layer
// (Wi-Fi, LTE, Ethernet) adds its own framing, preamble and radio wake-up:
// the figures are a floor, and the number of attempts (radio wake-ups) is
// what dominates a battery budget.
//
// Not modelled: a broker behind a proxy or load balancer that accepts the
// connection and then resets it (mqtttest's Proxy.Refuse) costs
// AcceptResetAttemptBytes, plus the CONNECT if the client sends it before
// the reset arrives; a host that does not answer at all (the SYN is lost)
// costs the SYN and its retransmissions, and each attempt then lasts the
// client's ConnectTimeout, which also delays the schedule.
const (
	// IPv4HeaderBytes is the IPv4 header without options (RFC 791).
	IPv4HeaderBytes = 20
	// TCPHeaderBytes is the TCP header without options (RFC 9293).
	TCPHeaderBytes = 20
	// SegmentBytes is a TCP segment without payload: a SYN, SYN-ACK, ACK or
	// RST.
	SegmentBytes = IPv4HeaderBytes + TCPHeaderBytes
	// RefusedAttemptBytes is one attempt on a closed port: the device's SYN
	// (sent) and the RST+ACK (received). The model of [Figures.Bytes].
	RefusedAttemptBytes = 2 * SegmentBytes
	// AcceptResetAttemptBytes is one attempt at something that accepts and
	// then resets: SYN, SYN-ACK, ACK and RST, without the CONNECT.
	AcceptResetAttemptBytes = 4 * SegmentBytes
)

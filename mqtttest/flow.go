package mqtttest

import (
	"encoding/binary"
	"net"
	"sync"
)

// flowConn is a client connection as mochi sees it: it honours the MQTT 5
// client's Receive Maximum in mochi's place ([MQTT-4.9.0-2]).
//
// mochi v2.7.9's own flow control stalls (see brokerHook.OnConnect and
// TestMochiReceiveMaximumStalls), so the Broker turns it off and mochi
// writes every message at once. flowConn sits between mochi and the
// socket: it passes every frame through, except a QoS 1 or 2 PUBLISH that
// would exceed the client's Receive Maximum, which it keeps, in order, and
// writes once the client's PUBACK, PUBCOMP or failed PUBREC frees a place
// (completed, from brokerHook.OnPacketRead). Nothing is written twice, and
// no write of mochi's waits for quota, so none of mochi's locks is held
// while the client is behind.
//
// A kept message is still in mochi's session, which believes it sent it:
// if the connection ends first, the session resends it on the next one,
// with DUP set, as it does every message not acknowledged. So a connection
// keeps at most what its session holds (Capabilities.MaximumInflight,
// 8192 by default).
type flowConn struct {
	net.Conn

	mu    sync.Mutex
	limit int                 // the client's Receive Maximum; 0: no limit (MQTT 3.1.1, or none announced)
	sent  map[uint16]struct{} // packet identifiers of QoS 1/2 PUBLISHes written and not completed
	held  []heldFrame         // PUBLISHes kept for want of quota, oldest first
	tail  []byte              // an incomplete frame from the last Write (mochi writes whole frames)
	out   []byte              // scratch for the frames of one Write that go out
}

// heldFrame is a QoS 1 or 2 PUBLISH kept back: its packet identifier and
// its bytes, copied.
type heldFrame struct {
	id    uint16
	frame []byte
}

func newFlowConn(c net.Conn) *flowConn { return &flowConn{Conn: c} }

// setLimit sets the client's Receive Maximum, from its CONNECT, before
// mochi writes the CONNACK. 0 turns the limit off.
func (c *flowConn) setLimit(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limit = n
	if n > 0 && c.sent == nil {
		c.sent = make(map[uint16]struct{})
	}
}

// Write writes mochi's frames, except the QoS 1/2 PUBLISHes beyond the
// Receive Maximum, which it keeps. It reports all of p written.
func (c *flowConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.limit == 0 && len(c.held) == 0 && len(c.tail) == 0 {
		return c.Conn.Write(p)
	}
	buf := p
	if len(c.tail) > 0 {
		buf = append(c.tail, p...)
		c.tail = nil
	}
	out := c.out[:0]
	for len(buf) > 0 {
		n, ok := frameLen(buf)
		if !ok {
			c.tail = append([]byte(nil), buf...)
			break
		}
		frame := buf[:n]
		buf = buf[n:]
		if id, ok := publishID(frame); ok && !c.admit(id) {
			c.held = append(c.held, heldFrame{id: id, frame: append([]byte(nil), frame...)})
			continue
		}
		out = append(out, frame...)
	}
	c.out = out[:0]
	if len(out) == 0 {
		return len(p), nil
	}
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// admit reports whether a QoS 1/2 PUBLISH with this packet identifier may
// be written now, and if so counts it against the quota. A message may
// not overtake one kept before it ([MQTT-4.6.0-6]). Called with mu held.
func (c *flowConn) admit(id uint16) bool {
	if c.limit == 0 {
		return true
	}
	if _, ok := c.sent[id]; ok {
		return true // already counted
	}
	if len(c.held) > 0 || len(c.sent) >= c.limit {
		return false
	}
	c.sent[id] = struct{}{}
	return true
}

// completed is called when the client has ended the flow of the message
// with this packet identifier: PUBACK, PUBCOMP, or a PUBREC with a failure
// code. It frees its place and writes the messages kept for it. It runs
// on the goroutine reading the client's packets, before mochi processes
// that packet, so mochi cannot have reused the identifier yet.
func (c *flowConn) completed(id uint16) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.sent[id]; !ok {
		return nil
	}
	delete(c.sent, id)
	out := c.out[:0]
	for len(c.held) > 0 && len(c.sent) < c.limit {
		h := c.held[0]
		c.held[0] = heldFrame{}
		c.held = c.held[1:]
		c.sent[h.id] = struct{}{}
		out = append(out, h.frame...)
	}
	if len(c.held) == 0 {
		c.held = nil // let go of the array
	}
	c.out = out[:0]
	if len(out) == 0 {
		return nil
	}
	_, err := c.Conn.Write(out)
	return err
}

// frameLen returns the length of the MQTT frame at the start of b, or false
// if b does not hold all of it. A length field longer than four bytes,
// which mochi does not write, makes the rest of b one opaque frame.
func frameLen(b []byte) (int, bool) {
	remaining, mul := 0, 1
	for i := 1; i < len(b); i++ {
		if i > 4 {
			return len(b), true
		}
		remaining += int(b[i]&0x7f) * mul
		if b[i]&0x80 == 0 {
			n := i + 1 + remaining
			return n, n <= len(b)
		}
		mul *= 128
	}
	return 0, false
}

// publishID returns the packet identifier of a QoS 1 or 2 PUBLISH frame,
// or false for any other frame.
func publishID(frame []byte) (uint16, bool) {
	if frame[0]>>4 != 3 || frame[0]>>1&3 == 0 {
		return 0, false
	}
	h := 2 // fixed header: the first byte and the length field
	for h <= len(frame) && frame[h-1]&0x80 != 0 {
		h++
	}
	if h+2 > len(frame) {
		return 0, false
	}
	at := h + 2 + int(binary.BigEndian.Uint16(frame[h:])) // after the topic
	if at+2 > len(frame) {
		return 0, false
	}
	return binary.BigEndian.Uint16(frame[at:]), true
}

package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"

	"github.com/robustmqtt/mqtt/codec"
)

// The raw client is the ceiling: MQTT 3.1.1 frames encoded before the
// benchmark starts, on a bare TCP connection (raw-v5: the same in MQTT 5,
// which shows what MQTT 5 costs the broker alone). Pipelined (rawPub), written
// in batches, with a reader that only counts acknowledgements (and, for
// QoS 2, answers each PUBREC with a pre-encoded PUBREL); synchronous
// (rawSyncPub), one frame written and its acknowledgement read in the same
// goroutine. No client that encodes, tracks and reports each message can
// beat it.

// rawFrames is how many distinct PUBLISH frames are pre-encoded, with
// packet identifiers 1..rawFrames, used in turn. More than the window, so
// an identifier comes round again only after its flow has ended.
const rawFrames = 1000

// barrierID is the packet identifier of the QoS 1 publish that ends a QoS 0
// run, outside 1..rawFrames.
const barrierID = 65535

// rawVersion is the protocol level of a raw client kind.
func rawVersion(kind string) byte {
	if kind == raw5 {
		return codec.V5
	}
	return codec.V311
}

// rawConnect opens a connection and completes CONNECT/CONNACK (clean
// session, no keepalive) at protocol level v.
func rawConnect(ctx context.Context, addr string, v byte) (net.Conn, error) {
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	frame, err := (&codec.Connect{Version: v, CleanStart: true, ClientID: clientID(raw)}).AppendTo(nil, v)
	if err == nil {
		// CONNACK: flags, then reason code 0.
		err = rawAnswer(nc, frame, 0x20, func(body []byte) bool { return len(body) >= 2 && body[1] == 0 })
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("raw: connect: %w", err)
	}
	return nc, nil
}

// rawAnswer writes frame and reads the one frame that answers it, which
// must start with first and have a body ok accepts (MQTT 5 brokers add
// properties of their choosing).
func rawAnswer(nc net.Conn, frame []byte, first byte, ok func(body []byte) bool) error {
	if _, err := nc.Write(frame); err != nil {
		return err
	}
	var h [2]byte
	if _, err := io.ReadFull(nc, h[:]); err != nil {
		return err
	}
	n, shift := int(h[1]&0x7f), 7
	for c := h[1]; c&0x80 != 0; shift += 7 {
		var b [1]byte
		if _, err := io.ReadFull(nc, b[:]); err != nil {
			return err
		}
		c = b[0]
		n |= int(c&0x7f) << shift
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(nc, body); err != nil {
		return err
	}
	if h[0] != first || !ok(body) {
		return fmt.Errorf("got %#x % x, want %#x and another body", h[0], body, first)
	}
	return nil
}

// walkFrames calls fn for each complete frame at the front of buf, with
// its first byte and its body, and returns how many bytes those frames
// took.
func walkFrames(buf []byte, fn func(h byte, body []byte)) int {
	off := 0
	for len(buf)-off >= 2 {
		n, shift, i := 0, 0, off+1
		for {
			if i >= len(buf) || shift > 21 {
				return off
			}
			c := buf[i]
			i++
			n |= int(c&0x7f) << shift
			shift += 7
			if c&0x80 == 0 {
				break
			}
		}
		if len(buf)-i < n {
			return off
		}
		fn(buf[off], buf[i:i+n])
		off = i + n
	}
	return off
}

// rawReadLoop reads frames until the connection fails, hands each chunk's
// frames to fn, and writes whatever fn appended to out after each chunk.
func rawReadLoop(nc net.Conn, fn func(h byte, body []byte, out []byte) []byte) error {
	buf := make([]byte, 64<<10)
	var out []byte
	have := 0
	for {
		if have == len(buf) { // one frame larger than the buffer
			buf = append(buf, make([]byte, len(buf))...)
		}
		n, err := nc.Read(buf[have:])
		if err != nil {
			return err
		}
		have += n
		used := walkFrames(buf[:have], func(h byte, body []byte) { out = fn(h, body, out) })
		have = copy(buf, buf[used:have])
		if len(out) > 0 {
			if _, err := nc.Write(out); err != nil {
				return err
			}
			out = out[:0]
		}
	}
}

// rawPub is the raw publisher.
type rawPub struct {
	nc     net.Conn
	qos    byte
	v      byte // protocol level
	win    int
	frames []byte // rawFrames PUBLISH frames, back to back
	size   int    // bytes per frame
	rels   []byte // PUBREL frames for identifiers 1..rawFrames (QoS 2)
	next   int    // the first frame not yet written
	pend   int    // frames taken but not yet written, from next on
	sent   int64  // frames written that expect an acknowledgement

	acked  atomic.Int64  // PUBACKs (QoS 1), PUBCOMPs (QoS 2)
	signal chan struct{} // 1-buffered: acked grew
	stop   <-chan struct{}
	done   chan struct{} // the reader has exited
	err    error         // why the reader exited; read after done
}

// rawFrameSet pre-encodes rawFrames PUBLISH frames to topic at qos, back to
// back (packet identifiers 1..rawFrames when qos > 0), and the PUBREL of
// each identifier (4 bytes each: MQTT 5 leaves out Success), at protocol
// level v; size is the length of one PUBLISH frame.
func rawFrameSet(topic string, qos, v byte) (frames, rels []byte, size int, err error) {
	for id := uint16(1); id <= rawFrames; id++ {
		pkt := codec.Publish{Topic: topic, Payload: payload, QoS: codec.QoS(qos)}
		if qos > 0 {
			pkt.PacketID = id
		}
		if frames, err = pkt.AppendTo(frames, v); err != nil {
			return nil, nil, 0, err
		}
		if rels, err = (&codec.Pubrel{PacketID: id}).AppendTo(rels, v); err != nil {
			return nil, nil, 0, err
		}
	}
	if len(rels) != 4*rawFrames {
		return nil, nil, 0, fmt.Errorf("raw: PUBREL frames of %d bytes, want 4", len(rels)/rawFrames)
	}
	return frames, rels, len(frames) / rawFrames, nil
}

func dialRawPub(ctx context.Context, addr, topic string, qos byte, win int, v byte) (*rawPub, error) {
	p := &rawPub{qos: qos, win: win, v: v, signal: make(chan struct{}, 1), stop: ctx.Done(), done: make(chan struct{})}
	var err error
	if p.frames, p.rels, p.size, err = rawFrameSet(topic, qos, v); err != nil {
		return nil, err
	}
	nc, err := rawConnect(ctx, addr, v)
	if err != nil {
		return nil, err
	}
	p.nc = nc
	go func() {
		defer close(p.done)
		p.err = rawReadLoop(nc, p.onFrame)
	}()
	return p, nil
}

// onFrame runs on the reader goroutine.
func (p *rawPub) onFrame(h byte, body, out []byte) []byte {
	switch h {
	case 0x40, 0x70: // PUBACK, PUBCOMP
		p.acked.Add(1)
		select {
		case p.signal <- struct{}{}:
		default:
		}
	case 0x50: // PUBREC: answer with the pre-encoded PUBREL
		if id := int(binary.BigEndian.Uint16(body)); id >= 1 && id <= rawFrames {
			out = append(out, p.rels[(id-1)*4:id*4]...)
		}
	}
	return out
}

func (p *rawPub) publish() error {
	if p.qos > 0 {
		// Window full (the frames not yet written count): write what is
		// pending, then wait until a quarter of the window is free, so
		// that the next write carries a batch rather than one frame per
		// acknowledgement.
		if p.sent+int64(p.pend)-p.acked.Load() >= int64(p.win) {
			if err := p.flush(); err != nil {
				return err
			}
			for p.sent-p.acked.Load() > int64(p.win-max(1, p.win/4)) {
				if err := p.wait(); err != nil {
					return err
				}
			}
		}
	}
	p.pend++
	if p.next+p.pend == rawFrames || (p.qos == 0 && p.pend == window) {
		return p.flush()
	}
	return nil
}

func (p *rawPub) push() error { return p.flush() }

// flush writes the pending frames in one call.
func (p *rawPub) flush() error {
	if p.pend == 0 {
		return nil
	}
	if _, err := p.nc.Write(p.frames[p.next*p.size : (p.next+p.pend)*p.size]); err != nil {
		return err
	}
	if p.qos > 0 {
		p.sent += int64(p.pend)
	}
	p.next = (p.next + p.pend) % rawFrames
	p.pend = 0
	return nil
}

// wait blocks until acked grows.
func (p *rawPub) wait() error {
	select {
	case <-p.signal:
		return nil
	case <-p.done:
		return fmt.Errorf("raw: reader: %w", p.err)
	case <-p.stop:
		return errors.New("raw: timed out waiting for acknowledgements")
	}
}

func (p *rawPub) finish() error {
	if err := p.flush(); err != nil {
		return err
	}
	if p.qos == 0 {
		if err := writeBarrier(p.nc, p.v); err != nil {
			return err
		}
		p.sent++
	}
	for p.acked.Load() < p.sent {
		if err := p.wait(); err != nil {
			return err
		}
	}
	return nil
}

// writeBarrier writes the QoS 1 publish that ends a QoS 0 run.
func writeBarrier(nc net.Conn, v byte) error {
	b, err := (&codec.Publish{Topic: barrierT, Payload: payload, QoS: codec.QoS1, PacketID: barrierID}).AppendTo(nil, v)
	if err == nil {
		_, err = nc.Write(b)
	}
	return err
}

func (p *rawPub) close() {
	p.nc.Write([]byte{0xE0, 0x00}) // DISCONNECT
	p.nc.Close()
	<-p.done
}

// rawSyncPub is the raw client's synchronous loop: each publish writes one
// pre-encoded frame and, in the same goroutine, reads its acknowledgement
// (QoS 1: the PUBACK; QoS 2: the PUBREC, then writes the PUBREL and reads
// the PUBCOMP). No reader goroutine, no batching: one write per message
// and one read per acknowledgement, the least a synchronous call can do.
type rawSyncPub struct {
	nc     net.Conn
	qos    byte
	v      byte // protocol level
	frames []byte
	rels   []byte
	size   int
	next   int     // the next frame's index, 0..rawFrames-1
	ack    [4]byte // the acknowledgement read
}

func dialRawSyncPub(ctx context.Context, addr, topic string, qos, v byte) (*rawSyncPub, error) {
	p := &rawSyncPub{qos: qos, v: v}
	var err error
	if p.frames, p.rels, p.size, err = rawFrameSet(topic, qos, v); err != nil {
		return nil, err
	}
	if p.nc, err = rawConnect(ctx, addr, v); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *rawSyncPub) publish() error {
	i := p.next
	p.next = (p.next + 1) % rawFrames
	if _, err := p.nc.Write(p.frames[i*p.size : (i+1)*p.size]); err != nil {
		return err
	}
	id := uint16(i + 1)
	switch p.qos {
	case 1:
		return p.expect(0x40, id)
	case 2:
		if err := p.expect(0x50, id); err != nil {
			return err
		}
		if _, err := p.nc.Write(p.rels[i*4 : (i+1)*4]); err != nil {
			return err
		}
		return p.expect(0x70, id)
	}
	return nil
}

// expect reads one 4-byte acknowledgement and checks its type and packet
// identifier: nothing else arrives on this connection (no keepalive, no
// subscription).
func (p *rawSyncPub) expect(first byte, id uint16) error {
	if _, err := io.ReadFull(p.nc, p.ack[:]); err != nil {
		return fmt.Errorf("raw: reading the acknowledgement: %w", err)
	}
	if p.ack[0] != first || p.ack[1] != 2 || binary.BigEndian.Uint16(p.ack[2:]) != id {
		return fmt.Errorf("raw: got % x, want %#x for packet %d", p.ack, first, id)
	}
	return nil
}

func (p *rawSyncPub) finish() error {
	if p.qos > 0 {
		return nil // each publish read its own acknowledgement
	}
	if err := writeBarrier(p.nc, p.v); err != nil {
		return err
	}
	return p.expect(0x40, barrierID)
}

func (p *rawSyncPub) push() error { return nil }

func (p *rawSyncPub) close() {
	p.nc.Write([]byte{0xE0, 0x00}) // DISCONNECT
	p.nc.Close()
}

// rawSub is the raw subscriber: it acknowledges each QoS 1 PUBLISH with a
// PUBACK, all of a read's PUBACKs in one write.
type rawSub struct {
	nc   net.Conn
	done chan struct{}
}

func dialRawSub(ctx context.Context, addr, topic string, got func(int), v byte) (*rawSub, error) {
	nc, err := rawConnect(ctx, addr, v)
	if err != nil {
		return nil, err
	}
	frame, err := (&codec.Subscribe{PacketID: 1, Subscriptions: []codec.Subscription{{Filter: topic, QoS: codec.QoS1}}}).AppendTo(nil, v)
	if err == nil {
		// SUBACK: QoS 1 granted, the last byte (after any properties).
		err = rawAnswer(nc, frame, 0x90, func(body []byte) bool { return len(body) >= 3 && body[len(body)-1] == 1 })
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("raw: subscribe: %w", err)
	}
	s := &rawSub{nc: nc, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		rawReadLoop(nc, func(h byte, body, out []byte) []byte {
			if h>>4 != 3 {
				return out
			}
			got(1)
			if (h>>1)&3 == 0 || len(body) < 2 {
				return out
			}
			at := 2 + int(binary.BigEndian.Uint16(body))
			if len(body) < at+2 {
				return out
			}
			return append(out, 0x40, 0x02, body[at], body[at+1])
		})
	}()
	return s, nil
}

func (s *rawSub) close() {
	s.nc.Write([]byte{0xE0, 0x00})
	s.nc.Close()
	<-s.done
}

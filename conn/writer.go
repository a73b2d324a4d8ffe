package conn

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/robustmqtt/mqtt/codec"
)

// pingreq is the whole PINGREQ frame; it never changes.
var pingreq = []byte{0xC0, 0x00}

// maxKeptBuffer is the largest encode buffer the writer keeps between
// batches; a larger one (after a big payload) is dropped so that one large
// message does not pin its memory for the life of the connection.
const maxKeptBuffer = 1 << 20

// WriteLoop writes queued frames and keeps the connection alive until the
// connection fails, and returns the error it failed with. When ctx ends, the
// connection is closed with ErrClosed.
//
// Everything queued when the writer wakes is encoded into one buffer and
// written with one system call. Keepalive: a PINGREQ goes out when nothing
// was written, or not a byte was received, for the keepalive interval less
// a margin (a quarter of it, at most one second); if not a byte has been
// received half an interval after that PINGREQ, the connection fails with
// ErrKeepAliveTimeout. Any byte counts, also one in the middle of a frame:
// a large frame on a slow link is traffic, however long it takes whole. So
// a link that silently stopped passing data is declared dead at most 1.5
// keepalive intervals after its last byte arrived.
func (c *Conn) WriteLoop(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { c.Fail(ErrClosed) })
	defer stop()

	w := writer{c: c}
	if c.keepAlive > 0 {
		// The keepalive timer wakes the writer as a queued frame does
		// (keepalive, below, runs on every wake-up and re-arms it): no
		// timer channel and no second case to wait on, which cost every
		// idle connection 0.2 KiB.
		w.timer = time.AfterFunc(c.pingAfter(), c.wakeWriter)
		defer w.timer.Stop()
	}
	for {
		// Fail wakes the writer too: one case less to wait on (a parked
		// case costs every idle connection 0.1 KiB).
		<-c.kick
		if err := c.Err(); err != nil {
			return err
		}
		ping, err := w.keepalive()
		if err != nil {
			c.Fail(err)
			return c.err
		}
		if err := c.flush(ping); err != nil {
			c.Fail(err)
			return c.err
		}
	}
}

// writer is the state owned by the WriteLoop goroutine.
type writer struct {
	c        *Conn
	timer    *time.Timer
	pingSent int64 // when the outstanding PINGREQ was written; 0: none
}

// keepalive decides whether a PINGREQ is due, fails the connection when the
// last one went unanswered for too long, and re-arms the timer.
func (w *writer) keepalive() (ping bool, err error) {
	c := w.c
	if c.keepAlive <= 0 || c.saidGoodbye.Load() {
		return false, nil
	}
	k := int64(c.pingAfter())
	// Half an interval for the answer, or two round trips where the link
	// is slower than that (a short keepalive over NB-IoT or a satellite
	// hop would otherwise declare every connection dead).
	timeout := int64(max(c.keepAlive/2, 2*c.roundTrip))
	now := c.now()
	lastRead, lastWrite := c.lastRead.Load(), c.lastWrite.Load()
	if c.stalled.Load() {
		// The reader holds a frame the client is not ready for, and reads
		// nothing more on purpose: the link is not silent. PINGREQ still
		// goes out, so that the broker sees the client alive.
		lastRead = now
	}
	if w.pingSent != 0 {
		switch {
		case lastRead >= w.pingSent:
			w.pingSent = 0 // answered: any byte proves the link carries data
		case now-w.pingSent >= timeout:
			return false, fmt.Errorf("%w (%s: not a byte received for %s after PINGREQ, keepalive %s)",
				ErrKeepAliveTimeout, c.server, time.Duration(now-w.pingSent).Round(time.Millisecond), c.keepAlive)
		}
	}
	if w.pingSent == 0 && (now-lastWrite >= k || now-lastRead >= k) {
		ping = true
		w.pingSent = now
		if w.pingSent == 0 {
			w.pingSent = 1 // 0 means "none"
		}
	}
	next := min(lastRead, lastWrite) + k
	if w.pingSent != 0 {
		next = w.pingSent + timeout
	}
	w.timer.Reset(time.Duration(max(next-now, int64(time.Millisecond))))
	return ping, nil
}

// pingAfter is how long the link may be quiet before a PINGREQ: a little
// less than the keepalive. Brokers enforce 1.5 x the keepalive, but some
// round that down to whole seconds (mochi-mqtt v2.7 cuts a client with a
// 1 s keepalive after exactly 1 s of silence).
func (c *Conn) pingAfter() time.Duration {
	return c.keepAlive - min(c.keepAlive/4, time.Second)
}

// maxWriteBatch bounds the bytes one flush encodes and writes: what is
// queued beyond it goes back to the front of the queue for the next flush,
// right after. So a long queue (up to MaxQueuedBytes of publishes) never
// becomes one huge buffer that is encoded whole before its first byte
// leaves.
const maxWriteBatch = 64 << 10

// flushState is what a flush works with, guarded by Conn.flushMu: whoever
// holds it (the writer, or a caller in FlushNow) flushes.
type flushState struct {
	buf   []byte  // encode buffer, reused
	batch []Frame // frames taken from the queue, reused
	// aliases, with Config.TopicAliases, gives outbound topics their Topic
	// Aliases; nil: none.
	aliases *aliasTable
}

// flush takes what is queued, encodes it after an optional PINGREQ, up to
// maxWriteBatch bytes, and writes it in one call.
func (c *Conn) flush(ping bool) error {
	c.flushMu.Lock() // Drain waits for the frames a flush puts back
	defer c.flushMu.Unlock()
	return c.flushHeld(ping)
}

// FlushNow writes what is queued on the caller's goroutine when the writer
// is not writing (otherwise it wakes the writer, which then does): a caller
// that queued its frame with SendQuiet and waits for the answer anyway
// saves the writer's wake-up. A write that fails fails the connection.
func (c *Conn) FlushNow() {
	if !c.flushMu.TryLock() {
		c.wakeWriter()
		return
	}
	err := c.flushHeld(false)
	c.flushMu.Unlock()
	if err != nil {
		c.Fail(err)
	}
}

// flushHeld is flush with flushMu held.
func (c *Conn) flushHeld(ping bool) error {
	w := &c.fs
	if c.saidGoodbye.Load() {
		return nil
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.Err()
	}
	w.batch, c.queue = c.queue, w.batch[:0]
	c.queued.Store(0)
	drained := c.drained
	c.mu.Unlock()
	if drained != nil {
		select {
		case drained <- struct{}{}:
		default:
		}
	}

	buf := w.buf[:0]
	if ping {
		buf = append(buf, pingreq...)
	}
	claimed := w.batch[:0] // frames that will be written, in place
	for i, f := range w.batch {
		if len(buf) >= maxWriteBatch || c.saidGoodbye.Load() {
			c.putBack(w.batch[i:])
			break
		}
		if f.Track != nil && !f.Track.Claim() {
			continue // withdrawn before it was written
		}
		var err error
		if buf, err = c.encode(buf, f.Packet); err != nil {
			// The session validates before queueing, so this is a bug
			// or a limit that changed; fail the one packet, not the link.
			if f.Track != nil {
				f.Track.Written(fmt.Errorf("%w: %s: %w", ErrUnencodable, f.Packet.Type(), err))
			}
			continue
		}
		claimed = append(claimed, f)
		if _, ok := f.Packet.(*codec.Disconnect); ok {
			c.saidGoodbye.Store(true)
		}
	}
	var err error
	began := true
	if len(buf) > 0 {
		began, err = c.write(buf)
	}
	if !began {
		// The connection failed between the claims and the write: not a
		// byte of these frames left, and those whose claim can be taken
		// back go back to the queue, for Drain.
		claimed = c.unclaim(claimed)
	}
	for i, f := range claimed {
		if f.Track != nil {
			f.Track.Written(err)
		}
		claimed[i] = Frame{} // drop references for the collector
	}
	clear(w.batch)
	w.batch = w.batch[:0]
	if cap(buf) > maxKeptBuffer {
		buf = nil
	}
	w.buf = buf
	return err
}

// encode appends p's frame to buf: with a Topic Alias if the table gives
// it one, and whole if that frame fails to encode or, carrying topic and
// alias, exceeds the broker's Maximum Packet Size (which the session
// checked p against).
func (c *Conn) encode(buf []byte, p codec.Packet) ([]byte, error) {
	aliases := c.fs.aliases
	if aliases == nil {
		return p.AppendTo(buf, c.version)
	}
	pub, ok := p.(*codec.Publish)
	if !ok {
		return p.AppendTo(buf, c.version)
	}
	pkt, e, set := aliases.packet(pub)
	if e == nil {
		return p.AppendTo(buf, c.version)
	}
	start := len(buf)
	out, err := pkt.AppendTo(buf, c.version)
	if err == nil && !(set && aliases.tooLarge(len(out)-start)) {
		return out, nil
	}
	aliases.forget(e)
	return p.AppendTo(out[:start], c.version)
}

// unclaim takes back the claims of the frames in claimed whose Tracker is
// an Unclaimer, puts those frames back at the front of the queue, in
// order, and returns the others, whose claims stand.
func (c *Conn) unclaim(claimed []Frame) (stand []Frame) {
	var back []Frame
	stand = claimed[:0]
	for _, f := range claimed {
		if u, ok := f.Track.(Unclaimer); ok && u.Unclaim() {
			back = append(back, f)
			continue
		}
		stand = append(stand, f)
	}
	clear(claimed[len(stand):])
	if back != nil {
		c.putBack(back)
	}
	return stand
}

// write puts buf on the socket, bounded by a deadline derived from the
// keepalive so that a link whose send buffer never drains is declared dead.
// began is false when the connection had failed before the write began:
// then nothing was written.
func (c *Conn) write(buf []byte) (began bool, err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.Err(); err != nil {
		// Failed meanwhile (and maybe said DISCONNECT under this lock):
		// nothing more goes out [MQTT-3.14.4-1].
		return false, err
	}
	return true, c.writeHeld(buf)
}

// writeHeld is write with wmu held and the connection checked alive.
func (c *Conn) writeHeld(buf []byte) error {
	if c.keepAlive > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.keepAlive + c.keepAlive/2))
	}
	if _, err := c.nc.Write(buf); err != nil {
		if e := c.Err(); e != nil {
			return e // closed underneath us: report the first reason
		}
		return fmt.Errorf("conn: write to %s: %w", c.server, err)
	}
	c.lastWrite.Store(c.now())
	return nil
}

// WriteNow encodes the PUBLISH p and writes it on the caller's
// goroutine, without the writer: for a publish whose caller waits for it
// to be written, it saves two goroutine wake-ups (the writer's and the
// caller's own). It does so only when that keeps the order of the frames
// and the rules of the connection, and otherwise reports false, writing
// nothing, for the caller to Send p instead: when frames wait in the queue
// or the writer is writing (a socket that does not drain keeps its
// writer, not the caller, waiting), the connection has failed or said
// DISCONNECT, Topic Aliases are on (the writer owns their table), or p
// does not encode within the broker's Maximum Packet Size. When it wrote,
// err is nil or the write's error, with which the connection has then
// failed. The write is bounded like the writer's, by 1.5 keepalives.
func (c *Conn) WriteNow(p *codec.Publish) (written bool, err error) {
	if c.fs.aliases != nil || !c.flushMu.TryLock() {
		return false, nil
	}
	defer c.flushMu.Unlock()
	c.mu.Lock()
	free := !c.closed && len(c.queue) == 0
	c.mu.Unlock()
	if !free || c.saidGoodbye.Load() {
		return false, nil
	}
	buf, err := p.AppendTo(c.nowBuf[:0], c.version)
	if limit := c.brokerMaxPacket(); err != nil || limit > 0 && len(buf) > limit {
		return false, nil
	}
	if cap(buf) <= maxKeptBuffer {
		c.nowBuf = buf
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.Err() != nil {
		return false, nil // failed meanwhile: nothing written
	}
	if err := c.writeHeld(buf); err != nil {
		c.Fail(err)
		return true, err
	}
	return true, nil
}

// brokerMaxPacket is the broker's Maximum Packet Size, 0 when it announced
// none.
func (c *Conn) brokerMaxPacket() int {
	if p := c.connack.Properties; p != nil && p.MaximumPacketSize != nil {
		return int(min(*p.MaximumPacketSize, math.MaxInt32))
	}
	return 0
}

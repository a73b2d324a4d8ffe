package conn

import (
	"context"
	"errors"
	"fmt"

	"github.com/robustmqtt/mqtt/codec"
)

// ReadLoop decodes frames until the connection fails and hands each one to
// Config.Inbound. It returns the error the connection failed with. When ctx
// ends, the connection is closed with ErrClosed.
//
// It checks only what a connection can check on its own: that each frame
// decodes within the size limit and is a packet a server may send after
// CONNACK. Packet identifiers and acknowledgements are the session's.
func (c *Conn) ReadLoop(ctx context.Context) error {
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { c.Fail(ErrClosed) })
		defer stop()
	}
	for {
		if c.rs != nil && c.rs.wanted.Load() && !c.lend() {
			return c.err
		}
		ack, id, ok, err := c.plainAck()
		if err != nil {
			c.Fail(c.readError(err, "reading"))
			return c.err
		}
		if ok {
			if !c.handOffAcks(Ack{Type: ack, ID: id}) {
				return c.err
			}
			continue
		}
		p, err := codec.ReadPacket(c.br, c.version, c.maxPacket)
		var refused *codec.Error
		if errors.As(err, &refused) && refused.Packet == codec.TypePublish && refused.Code == codec.ImplementationSpecificError {
			if !c.handOff(Inbound{Conn: c, Refused: refused}) {
				return c.err
			}
			continue
		}
		if err != nil {
			c.Fail(c.readError(err, "reading"))
			return c.err
		}
		if err := c.screen(p); err != nil {
			c.Fail(err)
			return c.err
		}
		if _, ok := p.(*codec.Pingresp); ok {
			// Its only job was to arrive (its bytes moved lastRead).
			// Alone, it says the connection is idle.
			c.idle = c.br.Buffered() == 0
			continue
		}
		switch p.(type) {
		case *codec.Suback, *codec.Unsuback:
			// Alone, the end of a subscriber's setup: most then wait
			// quietly for messages (found by bench/fleet: 4 KiB more per
			// client until the first PINGRESP).
			c.idle = c.br.Buffered() == 0
		}
		if !c.handOff(Inbound{Conn: c, Packet: p}) {
			return c.err
		}
	}
}

// maxQueuedFrames is how many frames may wait in the send queue before the
// reader stops reading. Most of what a broker sends makes the session
// answer (PUBREL gets PUBCOMP, a re-sent QoS 2 PUBLISH its PUBREC again),
// so a broker that floods them and never reads would grow the queue
// without bound; like grpc-go's control-frame throttle, the reader waits
// for the writer to catch up, and TCP holds the broker back.
const maxQueuedFrames = 4096

// handOffAcks gives first, and the plain acknowledgements buffered right
// behind it (up to MaxAckBatch in all), to the session: to Config.Inline
// at once when nothing of this connection waits in the channel before
// them, one session turn for the lot, and what it leaves through the
// channel. It reports false once the connection has failed.
func (c *Conn) handOffAcks(first Ack) bool {
	if c.rs == nil {
		c.newReadState()
	}
	batch := append(c.rs.acks[:0], first)
	// With 4 bytes buffered plainAck cannot block: it takes an ack or
	// leaves the frame for the decoder.
	for len(batch) < MaxAckBatch && c.br.Buffered() >= 4 {
		t, id, ok, _ := c.plainAck()
		if !ok {
			break
		}
		batch = append(batch, Ack{Type: t, ID: id})
	}
	if !c.writerCaughtUp() {
		return false
	}
	n := 0
	if c.inline != nil && c.pendingIn.Load() == 0 {
		n = c.inline(c, batch)
	}
	for _, a := range batch[n:] {
		if !c.send(Inbound{Conn: c, Ack: a.Type, ID: a.ID}) {
			return false
		}
	}
	return true
}

// handOff gives in to the session through the channel, after
// writerCaughtUp. It reports false once the connection has failed.
func (c *Conn) handOff(in Inbound) bool {
	return c.writerCaughtUp() && c.send(in)
}

// writerCaughtUp waits while the send queue is over maxQueuedFrames. It
// reports false once the connection has failed.
func (c *Conn) writerCaughtUp() bool {
	if c.queueLen() > maxQueuedFrames {
		c.stalled.Store(true)
		c.mu.Lock()
		if c.drained == nil {
			c.drained = make(chan struct{}, 1)
		}
		drained := c.drained
		c.mu.Unlock()
		for c.queueLen() > maxQueuedFrames {
			select {
			case <-drained:
			case <-c.dead:
				return false
			}
		}
		c.stalled.Store(false)
	}
	return true
}

// send puts in into the channel, waiting while the session is not taking
// frames (its application is behind; see Stalled). It reports false once
// the connection has failed.
func (c *Conn) send(in Inbound) bool {
	c.pendingIn.Add(1)
	select {
	case c.inbound <- in:
		return true
	case <-c.dead:
		c.pendingIn.Add(-1)
		return false
	default:
	}
	// The session is not taking frames: its application is behind, and
	// flow control holds the broker back through TCP. Time spent so is
	// not silence on the link (see keepalive).
	c.stalled.Store(true)
	select {
	case c.inbound <- in:
		c.lastRead.Store(c.now())
		c.stalled.Store(false)
		return true
	case <-c.dead:
		// stalled stays set: the connection ended while the reader held
		// a frame, with whatever came after it unread (see Stalled).
		c.pendingIn.Add(-1)
		return false
	}
}

// Stalled reports whether the reader is holding a frame the receiver does
// not take (its application is behind, or the writer is), or was when the
// connection ended: what the broker sent after that frame has not been
// read, an answer to something the client sent among it maybe.
func (c *Conn) Stalled() bool { return c.stalled.Load() }

// Taken tells the connection that the receiver has handled a frame it got
// through Config.Inbound: once every frame handed over so is handled, the
// next acknowledgement may be offered to Config.Inline.
func (c *Conn) Taken() { c.pendingIn.Add(-1) }

// queueLen is how many frames wait in the send queue.
func (c *Conn) queueLen() int { return int(c.queued.Load()) }

// liveReader is the socket as the reader sees it. Any byte received is
// proof of life, so every read that returns bytes stamps lastRead: one
// clock read and one atomic store per read system call, not per frame or
// byte. Counting whole frames only, a frame that takes longer to arrive
// than the 1.5 keepalive intervals a link may be quiet would end the
// connection every time it was sent: at the default 30 s, 1 MiB on a link
// under about 190 kbit/s.
type liveReader struct{ c *Conn }

func (l liveReader) Read(b []byte) (int, error) {
	n, err := l.c.nc.Read(b)
	if n > 0 {
		l.c.lastRead.Store(l.c.now())
	}
	return n, err
}

// plainAck consumes a plain PUBACK, PUBREC or PUBCOMP (fixed header with
// the reserved flags clear, remaining length 2, a non-zero identifier) if
// one has arrived whole. Anything else, including a frame not fully
// buffered yet, is left for the decoder. A read error is returned: the
// buffered reader hands it out only once, and a transport whose errors do
// not repeat (a WebSocket reports a close frame's reason once, then "use of
// closed network connection") would otherwise lose the reason.
func (c *Conn) plainAck() (codec.PacketType, uint16, bool, error) {
	if c.br.Buffered() < 4 {
		if c.idle && c.br.Buffered() == 0 {
			if err := c.idleWait(); err != nil {
				return 0, 0, false, err
			}
		}
		// Wait for the next frame's first bytes (every frame has at least
		// two, so this cannot wait for more than the frame); an ack
		// usually arrives whole.
		if _, err := c.br.Peek(1); err != nil {
			return 0, 0, false, err
		}
		if c.br.Buffered() < 4 {
			return 0, 0, false, nil
		}
	}
	b, _ := c.br.Peek(4)
	var t codec.PacketType
	switch b[0] {
	case 0x40:
		t = codec.TypePuback
	case 0x50:
		t = codec.TypePubrec
	case 0x70:
		t = codec.TypePubcomp
	default:
		return 0, 0, false, nil
	}
	id := uint16(b[2])<<8 | uint16(b[3])
	if b[1] != 2 || id == 0 {
		return 0, 0, false, nil // longer forms and malformed ones: the decoder's job
	}
	c.br.Discard(4)
	return t, id, true, nil
}

// screen rejects packets that a server never sends to a client, and turns a
// broker's DISCONNECT into the error that ends the connection.
func (c *Conn) screen(p codec.Packet) error {
	switch p := p.(type) {
	case *codec.Connack:
		// [MQTT-3.2.0-2]: one CONNACK per connection.
		return &ProtocolError{Code: codec.ProtocolError, Packet: codec.TypeConnack,
			Reason: "a second CONNACK on an established connection"}
	case *codec.Connect, *codec.Subscribe, *codec.Unsubscribe, *codec.Pingreq:
		return &ProtocolError{Code: codec.ProtocolError, Packet: p.Type(),
			Reason: fmt.Sprintf("a server may not send %s to a client", p.Type())}
	case *codec.Auth:
		// After CONNACK, AUTH answers the client's re-authentication
		// (whether one is in progress is the session's to judge):
		// Continue authentication or Success, never Re-authenticate,
		// which only a client sends (section 3.15.2.1).
		if err := c.checkAuth(p); err != nil {
			return err
		}
		if p.ReasonCode == codec.ReAuthenticate {
			return &ProtocolError{Code: codec.ProtocolError, Packet: codec.TypeAuth,
				Reason: "AUTH with reason Re-authenticate (0x19), which only a client sends"}
		}
	case *codec.Disconnect:
		e := &DisconnectError{ReasonCode: p.ReasonCode}
		if p.Properties != nil {
			e.ReasonString = p.Properties.ReasonString
			e.ServerReference = p.Properties.ServerReference
		}
		return e
	}
	return nil
}

package conn

import (
	"sync/atomic"
	"time"
)

// Lending the socket to a caller that waits for an acknowledgement.
//
// A synchronous QoS 1 publish writes its PUBLISH on its own goroutine
// (FlushNow) and waits for the PUBACK. Read by the reader goroutine, the
// PUBACK reaches the caller through a channel, and that wake-up is what
// the call costs beyond a raw client's write and read: on a machine with an
// idle processor the Go runtime wakes a thread for the caller (a futex
// call), which finds nothing it may take and sleeps again. In bench's
// sync QoS 1 loop those wake-ups took about 40% of the client's CPU, and
// the call ran at 56-70% of a raw client's rate, where a goroutine that
// reads the socket itself is woken by the network poller, as a raw
// client's is.
//
// So the reader goroutine lends the socket. A caller that waits for an
// acknowledgement on a frame it wrote asks for it (Await). If the reader
// goroutine holds it, the caller waits as before, and the reader
// goroutine lends the socket once it has handed over the frame at hand,
// when nothing else waits for an answer from the broker (Config.MayLend)
// and nothing is buffered: it parks until the socket is given back. The
// caller's next Await then reads on its own goroutine: plain
// acknowledgements only, handed to Config.Inline as the reader would,
// until its own result is there. Anything else (a PUBLISH, a SUBACK, an
// acknowledgement with properties, an error) goes back to the reader
// goroutine, which handles it as always.
//
// Between two calls nobody reads. The reader goroutine takes the socket
// back as soon as a frame that expects an answer is queued for the writer
// (Send), and at the latest lendFor after the caller's last read (the
// lease): a PINGRESP, a message or a DISCONNECT waits at most that long.

// lendFor is how long a lent socket may go unread between two reads of a
// caller before the reader goroutine takes it back.
const lendFor = time.Millisecond

// Who reads the socket.
const (
	readerReads = iota // the reader goroutine (or it is about to)
	lent               // nobody: the reader goroutine waits for it back
	callerReads        // a caller in Await
)

// readState is what the reader keeps beyond the buffered reader: made on
// the first acknowledgement, so that an idle connection that never gets
// one holds none of it.
type readState struct {
	acks [MaxAckBatch]Ack // handOffAcks' batch

	// wanted: a caller asked for the socket; the reader goroutine lends
	// it after the frame at hand.
	wanted atomic.Bool
	// back receives when the socket is the reader goroutine's again
	// (1-buffered; one value per lending).
	back chan struct{}

	// byCaller: the goroutine that reads is a caller in Await (read and
	// written only by the goroutine that holds the socket).
	byCaller bool

	// Guarded by Conn.mu.
	baton int8 // readerReads, lent, callerReads
	// interrupted: Interrupt set a read deadline in the past to end the
	// caller's read; the caller clears it before it gives the socket back.
	interrupted bool
	lastUse     int64       // Conn.now when a caller last gave the socket back
	lease       *time.Timer // takes a lent socket back; see leaseEnded
	leaseArmed  bool        // lease will run
}

// newReadState makes the reader's state on its first acknowledgement.
func (c *Conn) newReadState() {
	rs := &readState{back: make(chan struct{}, 1)}
	c.mu.Lock()
	c.rs = rs
	c.mu.Unlock()
}

// lend gives the socket to the caller that asked for it, if it may, and
// waits until it comes back. Called by the reader goroutine between
// frames. It reports false once the connection has failed.
func (c *Conn) lend() bool {
	rs := c.rs
	rs.wanted.Store(false)
	if c.br.Buffered() > 0 {
		return true // frames wait: the reader handles them first
	}
	c.mu.Lock()
	// Decided under the lock Send takes: a frame queued after this finds
	// the socket lent and takes it back; one queued before has its flight
	// in place already, which MayLend sees.
	if c.closed || !c.mayLend() {
		c.mu.Unlock()
		return true
	}
	rs.baton = lent
	rs.lastUse = c.now()
	c.armLeaseLocked(lendFor)
	c.mu.Unlock()
	select {
	case <-rs.back:
		return true
	case <-c.dead:
		rs.lease.Stop()
		return false
	}
}

// Await reads the socket on the caller's goroutine while done reports
// false, if the reader goroutine has lent it (see lend.go): the caller
// wrote a frame and waits for its acknowledgement, which Config.Inline
// hands over. It returns when done reports true, or when what arrives is
// not for it to handle (anything but a plain acknowledgement, or one
// Inline does not take), when the connection fails, or at once when the
// socket is not lent; then the reader goroutine reads, and the caller
// waits for its result as it would have without Await. A read waits
// until something arrives, the connection fails, or Interrupt: a caller
// that may give up (a ctx that can end) reads only on an Interruptible
// connection, makes done report true once it gives up, and calls
// Interrupt then.
func (c *Conn) Await(done func() bool) {
	if c.mayLend == nil || c.inline == nil {
		return
	}
	c.mu.Lock()
	rs := c.rs
	if rs == nil || rs.baton != lent || c.closed {
		c.mu.Unlock()
		if rs != nil {
			rs.wanted.Store(true) // the next call may read itself
		}
		return
	}
	rs.baton = callerReads
	c.mu.Unlock()
	rs.byCaller = true
	for !done() && c.pendingIn.Load() == 0 {
		t, id, ok, err := c.plainAck()
		if err != nil {
			if !c.wasInterrupted() {
				c.Fail(c.readError(err, "reading"))
			}
			break
		}
		if !ok || !c.handOffAcks(Ack{Type: t, ID: id}) {
			break
		}
	}
	rs.byCaller = false
	c.giveBack()
}

// ReadByCaller reports whether the acknowledgements offered to
// Config.Inline come from a caller in Await, which waits for an answer
// anyway: frames the receiver queues meanwhile may be written on its
// goroutine (SendQuiet, then FlushNow) rather than by the writer. Call it
// only from Inline.
func (c *Conn) ReadByCaller() bool { return c.rs != nil && c.rs.byCaller }

// giveBack ends a caller's read: the socket stays lent when nothing waits
// for the reader goroutine (no frame buffered, nothing else awaiting an
// answer), otherwise it goes back to the reader goroutine.
func (c *Conn) giveBack() {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.rs
	if rs.interrupted {
		// Interrupted after its last read: the deadline goes with it.
		rs.interrupted = false
		c.nc.SetReadDeadline(time.Time{})
	}
	if !c.closed && c.br.Buffered() == 0 && c.mayLend() {
		rs.baton = lent
		rs.lastUse = c.now()
		if !rs.leaseArmed {
			c.armLeaseLocked(lendFor)
		}
		return
	}
	c.takeBackLocked()
}

// Interruptible reports whether a caller whose wait may end can read with
// Await: Interrupt ends its read with a read deadline, which on a TCP or
// TLS connection interrupts the read and nothing else. (A WebSocket
// connection closes when a deadline passes; other transports are not
// known.)
func (c *Conn) Interruptible() bool { return c.interruptible }

// Interrupt ends the read of a caller in Await: it sets a read deadline in
// the past, which the caller clears before it gives the socket back. The
// read it ends is not a failure of the connection, nor is anything read
// lost: what arrived stays buffered for the reader goroutine. It does
// nothing unless a caller reads, and may end the read of another caller
// than the one that calls it, which then waits for its result as if the
// socket had not been lent.
func (c *Conn) Interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rs := c.rs; rs != nil && rs.baton == callerReads && !rs.interrupted && c.interruptible {
		rs.interrupted = true
		c.nc.SetReadDeadline(time.Unix(1, 0))
	}
}

// wasInterrupted reports whether Interrupt ended the caller's read: the
// read's error then is the deadline's, not the connection's (a broken TCP
// or TLS connection reports its error again to the next read).
func (c *Conn) wasInterrupted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rs.interrupted
}

// Reclaim gives a lent socket back to the reader goroutine when an answer
// is awaited (Config.MayLend reports false): the caller queued frames with
// SendQuiet and flushed them, and will not read their answers itself.
func (c *Conn) Reclaim() {
	c.mu.Lock()
	if c.rs != nil && c.rs.baton == lent && !c.mayLend() {
		c.takeBackLocked()
	}
	c.mu.Unlock()
}

// takeBackLocked makes the socket the reader goroutine's again and wakes
// it. Called with c.mu held, by whoever holds the socket or finds it lent.
func (c *Conn) takeBackLocked() {
	c.rs.baton = readerReads
	select {
	case c.rs.back <- struct{}{}:
	default:
	}
}

// leaseEnded runs lendFor after the socket was lent, and lendFor after the
// last read of a caller while it stays lent: it takes back a socket that
// no caller has read for lendFor. While a caller reads, it is not armed
// (a read may wait long for a distant broker); giveBack arms it again.
func (c *Conn) leaseEnded() {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.rs
	rs.leaseArmed = false
	if c.closed || rs.baton != lent {
		return
	}
	if left := lendFor - time.Duration(c.now()-rs.lastUse); left > 0 {
		c.armLeaseLocked(left)
		return
	}
	c.takeBackLocked()
}

// armLeaseLocked arms the lease to end after d. Called with c.mu held.
func (c *Conn) armLeaseLocked(d time.Duration) {
	rs := c.rs
	rs.leaseArmed = true
	if rs.lease == nil {
		rs.lease = time.AfterFunc(d, c.leaseEnded)
		return
	}
	rs.lease.Reset(d)
}

package conn_test

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
)

// lendFor is conn's lendFor: how long a lent socket may go unread.
const lendFor = time.Millisecond

// lender is a connection whose Inline records, for every acknowledgement,
// whether a caller in Await handed it over (conn.ReadByCaller), and whose
// MayLend says what the test sets.
type lender struct {
	c       *conn.Conn
	p       *peer
	inbound chan conn.Inbound
	errs    <-chan error

	mu       sync.Mutex
	byCaller map[uint16]bool // acknowledged identifiers: read by a caller?
	mayLend  bool
	handed   chan uint16 // every identifier Inline was handed, in order
}

func newLender(t *testing.T) *lender {
	t.Helper()
	client, server := net.Pipe()
	return newLenderOn(t, client, server)
}

// newLenderOn is newLender on the given ends of a connection.
func newLenderOn(t *testing.T, client, server net.Conn) *lender {
	t.Helper()
	l := &lender{inbound: make(chan conn.Inbound, 16), byCaller: map[uint16]bool{}, mayLend: true, handed: make(chan uint16, 64)}
	l.p = &peer{t: t, nc: server, br: bufio.NewReader(server), v: codec.V311}
	go func() {
		l.p.read()
		l.p.write(&codec.Connack{})
	}()
	var c *conn.Conn
	c, err := conn.Establish(t.Context(), client, "pipe", conn.Config{
		Connect: &codec.Connect{Version: codec.V311, ClientID: "c", CleanStart: true},
		Inbound: l.inbound,
		Inline: func(cn *conn.Conn, acks []conn.Ack) int {
			l.mu.Lock()
			defer l.mu.Unlock()
			for _, a := range acks {
				l.byCaller[a.ID] = cn.ReadByCaller()
				l.handed <- a.ID
			}
			return len(acks)
		},
		MayLend: func() bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			return l.mayLend
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	l.c = c
	t.Cleanup(func() { server.Close() })
	l.errs = run(c)
	return l
}

// acked reports whether the acknowledgement of id was handed over, and
// whether a caller read it.
func (l *lender) acked(id uint16) (acked, byCaller bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	byCaller, acked = l.byCaller[id]
	return acked, byCaller
}

// setMayLend sets what MayLend reports.
func (l *lender) setMayLend(may bool) {
	l.mu.Lock()
	l.mayLend = may
	l.mu.Unlock()
}

// puback makes the peer acknowledge id.
func (l *lender) puback(id uint16) { l.p.write(&codec.Puback{PacketID: id}) }

// lend takes the connection to where the reader goroutine has lent the
// socket: a caller asked (its Await found the socket with the reader
// goroutine), and the reader handed over an acknowledgement after that.
func (l *lender) lend(t *testing.T) {
	t.Helper()
	l.puback(1) // the reader's state is made on the first acknowledgement
	synctest.Wait()
	l.c.Await(func() bool { return false }) // asks, and returns at once
	l.puback(2)
	synctest.Wait()
	for _, id := range []uint16{1, 2} {
		if acked, byCaller := l.acked(id); !acked || byCaller {
			t.Fatalf("PUBACK %d: handed over %v, by a caller %v; want by the reader goroutine", id, acked, byCaller)
		}
	}
}

// newLent is newLender, lent (see lend), and the time it was.
func newLent(t *testing.T) (*lender, time.Time) {
	t.Helper()
	l := newLender(t)
	l.lend(t)
	return l, time.Now()
}

// awaitInBackground runs Await(done) on a goroutine of its own; the
// channel is closed once it returns.
func (l *lender) awaitInBackground(done func() bool) <-chan struct{} {
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		l.c.Await(done)
	}()
	return returned
}

// delivered waits for the next frame through the channel, reports it
// taken, and checks that it came after this long from start (synctest's
// clock: 0 is at once).
func (l *lender) delivered(t *testing.T, start time.Time, after time.Duration) codec.Packet {
	t.Helper()
	in := <-l.inbound
	l.c.Taken()
	if took := time.Since(start); took != after {
		t.Fatalf("%T delivered after %v, want %v", in.Packet, took, after)
	}
	return in.Packet
}

// stop closes the connection and waits for its loops.
func (l *lender) stop() {
	l.c.Close()
	<-l.errs
	<-l.errs
}

// Once a caller asked for the socket, the reader goroutine lends it after
// the acknowledgement at hand, and the caller's next Await reads its own
// acknowledgement on its goroutine: no hand-over, no wake-up.
func TestAwaitReadsTheAcknowledgementItselfOnceLent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLender(t)
		l.lend(t)
		returned := l.awaitInBackground(func() bool { acked, _ := l.acked(3); return acked })
		synctest.Wait()
		select {
		case <-returned:
			t.Fatal("Await returned before its acknowledgement arrived")
		default:
		}
		l.puback(3)
		<-returned
		if acked, byCaller := l.acked(3); !acked || !byCaller {
			t.Fatalf("PUBACK 3: handed over %v, by the caller %v; want by the caller", acked, byCaller)
		}
		// Still lent: the next one is the caller's too.
		go l.puback(4)
		l.c.Await(func() bool { acked, _ := l.acked(4); return acked })
		if _, byCaller := l.acked(4); !byCaller {
			t.Fatal("PUBACK 4 was not read by the caller")
		}
		l.stop()
	})
}

// A socket lent and not read goes back to the reader goroutine lendFor
// after the caller's last read: a message that arrives meanwhile is
// delivered that late at the latest.
func TestALentSocketComesBackAfterTheLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, start := newLent(t)
		go l.p.write(&codec.Publish{Topic: "in", Payload: []byte("m")}) // a pipe's write waits for the read
		synctest.Wait()
		select {
		case in := <-l.inbound:
			t.Fatalf("%v delivered while the socket was lent", in.Packet)
		default:
		}
		if p, ok := l.delivered(t, start, lendFor).(*codec.Publish); !ok {
			t.Fatalf("delivered %T, want the PUBLISH", p)
		}
		l.stop()
	})
}

// A frame queued for the writer (Send) while the socket is lent takes it
// back at once: its answer is read without waiting for the lease.
func TestSendTakesALentSocketBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, start := newLent(t)
		l.c.Send(conn.Frame{Packet: &codec.Subscribe{PacketID: 9, Subscriptions: []codec.Subscription{{Filter: "a"}}}})
		if _, ok := l.p.read().(*codec.Subscribe); !ok {
			t.Fatal("the peer did not get the SUBSCRIBE")
		}
		l.p.write(&codec.Suback{PacketID: 9, ReasonCodes: []codec.ReasonCode{0}})
		if p, ok := l.delivered(t, start, 0).(*codec.Suback); !ok {
			t.Fatalf("delivered %T, want the SUBACK", p)
		}
		// Reclaim does the same for frames the caller flushed itself,
		// when an answer is awaited.
		l.lend(t)
		l.setMayLend(false)
		l.c.Reclaim()
		l.setMayLend(true)
		l.p.write(&codec.Publish{Topic: "in"})
		l.delivered(t, start, 0)
		// Nothing awaited: the socket stays lent.
		l.lend(t)
		l.c.Reclaim()
		go l.p.write(&codec.Publish{Topic: "in"})
		l.delivered(t, start, lendFor) // the lease
		l.stop()
	})
}

// A caller that meets anything but a plain acknowledgement gives the
// socket back at once: the reader goroutine delivers it.
func TestAwaitLeavesOtherFramesToTheReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, start := newLent(t)
		returned := l.awaitInBackground(func() bool { return false })
		synctest.Wait()
		l.p.write(&codec.Publish{Topic: "in", Payload: []byte("m")})
		<-returned
		if p, ok := l.delivered(t, start, 0).(*codec.Publish); !ok {
			t.Fatalf("delivered %T, want the PUBLISH", p)
		}
		// An acknowledgement after it is the reader's: nobody asked.
		l.puback(5)
		synctest.Wait()
		if acked, byCaller := l.acked(5); !acked || byCaller {
			t.Fatalf("PUBACK 5: handed over %v, by a caller %v; want by the reader goroutine", acked, byCaller)
		}
		l.stop()
	})
}

// Nothing is lent while MayLend says an answer is awaited (another
// request in flight would wait for the lease), nor while frames are
// buffered.
func TestNoLendingWhileAnAnswerIsAwaited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLender(t)
		l.setMayLend(false)
		l.lend(t) // asks; the reader may not lend
		start := time.Now()
		l.p.write(&codec.Publish{Topic: "in"})
		l.delivered(t, start, 0) // not lent: at once
		l.stop()
	})
}

// A connection that fails while a caller reads fails as it would in the
// reader goroutine, and both return; one closed while the socket is lent
// ends its reader at once.
func TestLendingAndTheEndOfTheConnection(t *testing.T) {
	t.Run("while a caller reads", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := newLender(t)
			l.lend(t)
			returned := l.awaitInBackground(func() bool { return false })
			synctest.Wait()
			l.p.nc.Close()
			<-returned
			for range 2 {
				if err := <-l.errs; err == nil {
					t.Fatal("a loop ended without an error")
				}
			}
			if err := l.c.Err(); err == nil || !strings.Contains(err.Error(), "closed the connection") {
				t.Fatalf("the connection failed with %v, want the broker's close", err)
			}
		})
	})
	t.Run("while lent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := newLender(t)
			l.lend(t)
			start := time.Now()
			l.c.Close()
			<-l.errs
			<-l.errs
			if took := time.Since(start); took != 0 {
				t.Fatalf("the loops ended %v after Close, want at once", took)
			}
			l.c.Await(func() bool { return false }) // on a closed connection: returns
		})
	})
}

// Interrupt ends a caller's read on a TCP connection without failing it
// or losing what arrived: a frame half read when it came is delivered
// whole by the reader goroutine, which has the socket back at once.
func TestInterruptEndsACallersReadAndLosesNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			t.Error(err)
			close(accepted)
			return
		}
		accepted <- nc
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server := <-accepted
	if server == nil {
		t.FailNow()
	}
	l := newLenderOn(t, client, server)
	if !l.c.Interruptible() {
		t.Fatal("a TCP connection is not Interruptible")
	}
	deadline := time.After(10 * time.Second)
	handed := func(want uint16) {
		t.Helper()
		select {
		case id := <-l.handed:
			if id != want {
				t.Fatalf("Inline was handed %d, want %d", id, want)
			}
		case <-deadline:
			t.Fatalf("Inline was not handed %d", want)
		}
	}
	// Lent: a caller asked, then the reader handed over an ack.
	l.puback(1)
	handed(1)
	l.c.Await(func() bool { return false })
	l.puback(2)
	handed(2)
	// The caller reads; half a PUBLISH arrives; Interrupt.
	frame, err := (&codec.Publish{Topic: "in", Payload: []byte("whole")}).AppendTo(nil, codec.V311)
	if err != nil {
		t.Fatal(err)
	}
	reading := make(chan struct{})
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		// The reader lends the socket just after it handed PUBACK 2
		// over: until then Await returns at once, without reading.
		started := false
		for !started {
			l.c.Await(func() bool {
				if !started {
					started = true
					close(reading)
				}
				return false
			})
		}
	}()
	// The lease takes the socket back 1 ms after it was lent if the
	// caller has not read by then (a slow machine, -race): another
	// acknowledgement then makes the reader goroutine lend it again.
	nudge := time.NewTicker(20 * time.Millisecond)
	defer nudge.Stop()
	for id, lent := uint16(3), false; !lent; {
		select {
		case <-reading:
			lent = true
		case <-l.handed:
		case <-nudge.C:
			l.puback(id)
			id++
		case <-deadline:
			t.Fatal("the socket was not lent")
		}
	}
	if _, err := server.Write(frame[:3]); err != nil {
		t.Fatal(err)
	}
	l.c.Interrupt()
	select {
	case <-returned:
	case <-deadline:
		t.Fatal("Await did not return after Interrupt")
	}
	if err := l.c.Err(); err != nil {
		t.Fatalf("the connection failed: %v", err)
	}
	if _, err := server.Write(frame[3:]); err != nil {
		t.Fatal(err)
	}
	select {
	case in := <-l.inbound:
		l.c.Taken()
		if p, ok := in.Packet.(*codec.Publish); !ok || string(p.Payload) != "whole" {
			t.Fatalf("delivered %+v, want the PUBLISH whole", in.Packet)
		}
	case <-deadline:
		t.Fatal("the PUBLISH was not delivered")
	}
	l.puback(3)
	handed(3)
	if _, byCaller := l.acked(3); byCaller {
		t.Fatal("PUBACK 3 was read by a caller; want the reader goroutine")
	}
	l.stop()
}

package conn_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
)

// sizeConn records the size of every write.
type sizeConn struct {
	net.Conn
	mu    sync.Mutex
	sizes []int
}

func (c *sizeConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.sizes = append(c.sizes, len(b))
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// One write carries at most about 64 KiB: a long queue goes out in
// batches, in order, rather than as one buffer encoded whole before its
// first byte leaves.
func TestWriteBatchIsCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, server := net.Pipe()
		sc := &sizeConn{Conn: client}
		p := &peer{t: t, nc: server, br: bufio.NewReader(server), v: codec.V311}
		go func() {
			p.read()
			p.write(&codec.Connack{})
		}()
		c, err := conn.Establish(t.Context(), sc, "pipe", conn.Config{
			Connect: &codec.Connect{Version: codec.V311, ClientID: "c", CleanStart: true},
			Inbound: make(chan conn.Inbound),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { server.Close() })
		const n = 1000 // 1000 frames of about 1 KiB: 1 MiB queued
		for i := range n {
			c.Send(conn.Frame{Packet: &codec.Publish{Topic: "t", Payload: make([]byte, 1024), QoS: 1, PacketID: uint16(i + 1)}})
		}
		errs := run(c)
		for i := range n {
			pk, ok := p.read().(*codec.Publish)
			if !ok || pk.PacketID != uint16(i+1) {
				t.Fatalf("frame %d: %+v", i, pk)
			}
		}
		c.Close()
		<-errs
		<-errs
		sc.mu.Lock()
		defer sc.mu.Unlock()
		sizes := sc.sizes[1:] // the first is CONNECT
		if len(sizes) < 16 {
			t.Fatalf("%d writes for 1 MiB: %v", len(sizes), sizes)
		}
		for _, s := range sizes {
			if s > 64<<10+2048 {
				t.Fatalf("a write of %d bytes; want at most 64 KiB and one frame", s)
			}
		}
	})
}

// Frames a flush put back because of the cap, on a connection that then
// failed, come back from Drain: nothing the writer took and did not write
// is lost.
func TestDrainReturnsPutBackFrames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, p, _ := establish(t, codec.V311, 0, &codec.Connack{}, make(chan conn.Inbound))
		const n = 200 // 200 KiB: more than one batch
		for i := range n {
			c.Send(conn.Frame{Packet: &codec.Publish{Topic: "t", Payload: make([]byte, 1024), QoS: 1, PacketID: uint16(i + 1)}})
		}
		errs := run(c)
		got := 0
		for range 10 { // the first batch is under way; then the peer goes
			if _, ok := p.read().(*codec.Publish); ok {
				got++
			}
		}
		p.nc.Close()
		<-errs
		<-errs
		left := c.Drain()
		// Every frame is either one the peer may have received (written
		// in a batch) or handed back by Drain, and Drain's are the last.
		if len(left) == 0 || len(left) > n-got {
			t.Fatalf("Drain returned %d frames after %d of %d were read", len(left), got, n)
		}
		last := left[len(left)-1].Packet.(*codec.Publish).PacketID
		if last != n {
			t.Fatalf("Drain's last frame is %d, want %d", last, n)
		}
		for i := 1; i < len(left); i++ {
			a, b := left[i-1].Packet.(*codec.Publish).PacketID, left[i].Packet.(*codec.Publish).PacketID
			if b != a+1 {
				t.Fatalf("Drain out of order: %d then %d", a, b)
			}
		}
	})
}

// The acknowledgements one read brings are offered to Config.Inline
// together, up to MaxAckBatch at a time, in order; what Inline leaves
// goes through the channel, in order, and Inline is offered nothing more
// until the channel's frames were reported taken.
func TestAcksOfOneReadAreOfferedTogether(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var batches [][]uint16
		leave := 3 // the first offer: handle all but the last 3
		client, server := net.Pipe()
		p := &peer{t: t, nc: server, br: bufio.NewReader(server), v: codec.V311}
		go func() {
			p.read()
			p.write(&codec.Connack{})
		}()
		inbound := make(chan conn.Inbound, 64)
		c, err := conn.Establish(t.Context(), client, "pipe", conn.Config{
			Connect: &codec.Connect{Version: codec.V311, ClientID: "c", CleanStart: true},
			Inbound: inbound,
			Inline: func(_ *conn.Conn, acks []conn.Ack) int {
				mu.Lock()
				defer mu.Unlock()
				var ids []uint16
				for _, a := range acks {
					if a.Type != codec.TypePuback {
						t.Errorf("ack of type %v, want PUBACK", a.Type)
					}
					ids = append(ids, a.ID)
				}
				batches = append(batches, ids)
				n := len(acks) - leave
				leave = 0
				return n
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { server.Close() })
		errs := run(c)
		pubacks := func(from, to int) {
			var b []byte
			for id := from; id <= to; id++ {
				b = append(b, 0x40, 0x02, byte(id>>8), byte(id))
			}
			if _, err := server.Write(b); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		pubacks(1, 5)
		for want := uint16(3); want <= 5; want++ {
			in := <-inbound
			if in.Ack != codec.TypePuback || in.ID != want {
				t.Fatalf("through the channel: %v %d, want PUBACK %d", in.Ack, in.ID, want)
			}
		}
		pubacks(6, 6) // the channel's three are not reported taken yet
		if in := <-inbound; in.ID != 6 {
			t.Fatalf("through the channel: %d, want 6", in.ID)
		}
		for range 4 {
			c.Taken()
		}
		pubacks(7, 7+conn.MaxAckBatch+3)
		mu.Lock()
		got := fmt.Sprint(batches)
		mu.Unlock()
		want := fmt.Sprint([][]uint16{{1, 2, 3, 4, 5}, seq(7, 6+conn.MaxAckBatch), seq(7+conn.MaxAckBatch, 10+conn.MaxAckBatch)})
		if got != want {
			t.Fatalf("offered to Inline: %s\nwant %s", got, want)
		}
		c.Close()
		<-errs
		<-errs
	})
}

// seq is from..to.
func seq(from, to int) []uint16 {
	var s []uint16
	for i := from; i <= to; i++ {
		s = append(s, uint16(i))
	}
	return s
}

// unclaimer is a Tracker whose claim can be taken back; the first to be
// claimed fails the connection, as a cut found by the reader would, in
// the instant between the writer's claims and its write.
type unclaimer struct {
	topic   string
	fail    func()       // called by Claim; nil: nothing
	back    bool         // what Unclaim reports
	unclaim atomic.Int32 // calls of Unclaim
	written chan error
}

func (u *unclaimer) Claim() bool {
	if u.fail != nil {
		u.fail()
	}
	return true
}

func (u *unclaimer) Unclaim() bool {
	u.unclaim.Add(1)
	return u.back
}

func (u *unclaimer) Written(err error) { u.written <- err }

// A batch the writer claimed and then did not write, because the
// connection failed before the write began, is not counted as sent: the
// frames whose claims can be taken back come back from Drain, in order
// and before those still queued, with no Written; the others (a claim
// that stands, a Tracker that cannot unclaim) are reported Written with
// the connection's error. Without this a publish that never left the
// client was sent again with DUP, and a 3 s expiry (found by the model
// test, seed 6931921093822328724) could not withdraw it.
func TestAClaimTheWriteNeverCarriedIsTakenBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _, _ := establish(t, codec.V311, 0, &codec.Connack{}, make(chan conn.Inbound))
		cut := errors.New("cut")
		first := &unclaimer{topic: "first", back: true, written: make(chan error, 1), fail: func() { c.Fail(cut) }}
		stands := &unclaimer{topic: "stands", back: false, written: make(chan error, 1)}
		plain := &tracker{allow: true, written: make(chan error, 1)}
		second := &unclaimer{topic: "second", back: true, written: make(chan error, 1)}
		for _, f := range []conn.Frame{
			{Packet: &codec.Publish{Topic: "first", QoS: 1, PacketID: 1}, Track: first},
			{Packet: &codec.Publish{Topic: "stands", QoS: 1, PacketID: 2}, Track: stands},
			{Packet: &codec.Publish{Topic: "plain", QoS: 1, PacketID: 3}, Track: plain},
			{Packet: &codec.Publish{Topic: "second", QoS: 1, PacketID: 4}, Track: second},
		} {
			c.Send(f)
		}
		if err := c.WriteLoop(t.Context()); !errors.Is(err, cut) {
			t.Fatalf("WriteLoop: %v, want the cut", err)
		}
		c.Send(conn.Frame{Packet: &codec.Publish{Topic: "late"}}) // refused: the connection ended
		var got []string
		for _, f := range c.Drain() {
			got = append(got, f.Packet.(*codec.Publish).Topic)
		}
		if strings.Join(got, ",") != "first,second" {
			t.Fatalf("Drain = %v, want first,second", got)
		}
		for _, u := range []*unclaimer{first, stands, second} {
			if n := u.unclaim.Load(); n != 1 {
				t.Errorf("%s: Unclaim called %d times, want once", u.topic, n)
			}
		}
		for _, u := range []*unclaimer{first, second} {
			if len(u.written) != 0 {
				t.Errorf("%s: reported Written after its claim was taken back", u.topic)
			}
		}
		for name, ch := range map[string]chan error{"stands": stands.written, "plain": plain.written} {
			select {
			case err := <-ch:
				if !errors.Is(err, cut) {
					t.Errorf("%s: Written(%v), want the cut", name, err)
				}
			default:
				t.Errorf("%s: not reported Written", name)
			}
		}
	})
}

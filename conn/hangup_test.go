package conn_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// SaidGoodbye is false until the DISCONNECT is written, true after; the
// connection then stays open, its reader reading, until the broker closes
// it (over TCP and TLS).
func TestSaidGoodbye(t *testing.T) {
	ca := mqtttest.NewCA(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1")}}
	for _, scheme := range []string{"tcp", "tls"} {
		t.Run(scheme, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if scheme == "tls" {
				ln = tls.NewListener(ln, serverTLS)
			}
			accepted := make(chan *peer, 1)
			go func() {
				nc, err := ln.Accept()
				if err != nil {
					t.Error(err)
					close(accepted)
					return
				}
				p := &peer{t: t, nc: nc, br: bufio.NewReader(nc), v: codec.V311}
				p.read() // CONNECT
				p.write(&codec.Connack{})
				accepted <- p
			}()
			c, err := conn.Open(t.Context(), scheme+"://"+ln.Addr().String(), conn.Config{
				Connect:        &codec.Connect{Version: codec.V311, ClientID: "bye", CleanStart: true},
				ConnectTimeout: 10 * time.Second,
				TLS:            &tls.Config{RootCAs: ca.Pool()},
				Inbound:        make(chan conn.Inbound),
				Counters:       new(conn.Counters),
			})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			p := <-accepted
			if p == nil {
				t.FailNow()
			}
			defer p.nc.Close()
			var loops sync.WaitGroup
			loops.Go(func() { c.ReadLoop(t.Context()) })
			loops.Go(func() { c.WriteLoop(t.Context()) })
			defer loops.Wait()
			defer c.Close()

			if c.SaidGoodbye() {
				t.Fatal("SaidGoodbye reported true before any DISCONNECT")
			}
			written := make(chan error, 1)
			c.Send(conn.Frame{Packet: &codec.Disconnect{}, Track: trackFunc(func(err error) { written <- err })})
			if err := <-written; err != nil {
				t.Fatalf("DISCONNECT: %v", err)
			}
			if !c.SaidGoodbye() {
				t.Fatal("SaidGoodbye reported false after the DISCONNECT was written")
			}
			if got := p.read(); got.Type() != codec.TypeDisconnect {
				t.Fatalf("the broker read %s, want DISCONNECT", got.Type())
			}
			// The broker still writes: its answer is read, not left to reset
			// the connection.
			p.write(&codec.Pingresp{})
			select {
			case <-c.Done():
				t.Fatal("the connection ended before the broker closed it")
			default:
			}
			p.nc.Close()
			select {
			case <-c.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("the broker closed, and the connection did not end")
			}
			if !errors.Is(c.Err(), conn.ErrServerClosed) {
				t.Fatalf("Err() = %v, want ErrServerClosed", c.Err())
			}
		})
	}
}

// lingerPeer is a broker for the Linger and Leave tests: it takes one
// connection, reads the CONNECT, waits for answer and writes what it gets
// (nothing for nil), then reports what the client sent next (nil for
// nothing: the connection ended) and, after writing a PUBLISH the client
// must read and drop, closes the connection. closing is closed just before
// that close.
type lingerPeer struct {
	ln      net.Listener
	v       byte
	connect chan struct{} // closed once the CONNECT is read
	answer  chan codec.Packet
	next    chan codec.Packet // what came after the CONNECT
	closing chan struct{}
	conn    chan net.Conn // the connection, for a test that must end it
}

func newLingerPeer(t *testing.T, v byte) *lingerPeer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &lingerPeer{ln: ln, v: v, connect: make(chan struct{}), answer: make(chan codec.Packet, 1),
		next: make(chan codec.Packet, 1), closing: make(chan struct{}), conn: make(chan net.Conn, 1)}
	done := make(chan struct{})
	t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			close(p.next)
			return
		}
		defer nc.Close()
		p.conn <- nc
		br := bufio.NewReader(nc)
		if _, err := codec.ReadPacket(br, v, 0); err != nil {
			close(p.next)
			return
		}
		close(p.connect)
		if a := <-p.answer; a != nil {
			b, err := a.AppendTo(nil, v)
			if err != nil {
				panic(fmt.Sprintf("the test's own %s does not encode: %v", a.Type(), err))
			}
			nc.Write(b)
		}
		pk, err := codec.ReadPacket(br, v, 0)
		if err != nil {
			pk = nil
		}
		p.next <- pk
		if pk != nil {
			b, _ := (&codec.Publish{Topic: "late", Payload: []byte("dropped")}).AppendTo(nil, v)
			nc.Write(b)
		}
		close(p.closing)
	}()
	return p
}

func (p *lingerPeer) url() string { return "tcp://" + p.ln.Addr().String() }

// An exchange whose ctx ends once the CONNECT is out goes on for Linger:
// a CONNACK that accepts the connection is answered with DISCONNECT
// (Normal disconnection), and Open returns, with ctx's error, only once
// the broker has closed the connection. A refusal gets no DISCONNECT.
func TestLingerEndsAStoppedHandshakePolitely(t *testing.T) {
	for _, v := range []byte{codec.V311, codec.V5} {
		for _, accept := range []bool{true, false} {
			t.Run(fmt.Sprintf("v%d/accept=%v", v, accept), func(t *testing.T) {
				p := newLingerPeer(t, v)
				ctx, cancel := context.WithCancel(t.Context())
				opened := make(chan error, 1)
				go func() {
					c, err := conn.Open(ctx, p.url(), conn.Config{
						Connect: &codec.Connect{Version: v, ClientID: "linger", CleanStart: true},
						Inbound: make(chan conn.Inbound),
						Linger:  time.Minute, // bounds the test: it waits for the broker's close
					})
					if c != nil {
						c.Close()
					}
					opened <- err
				}()
				<-p.connect
				cancel() // the client stops with the CONNACK still to come
				ack := &codec.Connack{}
				if !accept {
					ack.ReasonCode = codec.NotAuthorized // 3.1.1: return code 5
				}
				p.answer <- ack
				err := <-opened
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("Open: %v, want context.Canceled", err)
				}
				next := <-p.next
				switch {
				case accept && next == nil:
					t.Fatal("the client cut the connection the broker accepted, without DISCONNECT")
				case accept:
					d, ok := next.(*codec.Disconnect)
					if !ok || d.ReasonCode != codec.NormalDisconnection {
						t.Fatalf("the client sent %v after the CONNACK, want DISCONNECT (Normal disconnection)", next)
					}
					select {
					case <-p.closing:
					default:
						t.Fatal("Open returned before the broker closed the connection")
					}
				case next != nil:
					t.Fatalf("the client sent %v after a refusal", next.Type())
				}
			})
		}
	}
}

// LingerFor, when set, decides the linger as ctx ends, over Linger: with
// Linger 0 alone the exchange would be cut at once; LingerFor asks it to
// go on, and the connection ends with DISCONNECT.
func TestLingerForDecidesAsCtxEnds(t *testing.T) {
	p := newLingerPeer(t, codec.V5)
	ctx, cancel := context.WithCancel(t.Context())
	var asked atomic.Bool
	opened := make(chan error, 1)
	go func() {
		_, err := conn.Open(ctx, p.url(), conn.Config{
			Connect: &codec.Connect{Version: codec.V5, ClientID: "linger", CleanStart: true},
			Inbound: make(chan conn.Inbound),
			LingerFor: func() time.Duration {
				asked.Store(true)
				return time.Minute // bounds the test: it waits for the broker's close
			},
		})
		opened <- err
	}()
	<-p.connect
	cancel()
	p.answer <- &codec.Connack{}
	if err := <-opened; !errors.Is(err, context.Canceled) {
		t.Fatalf("Open: %v, want context.Canceled", err)
	}
	if d, ok := (<-p.next).(*codec.Disconnect); !ok || d.ReasonCode != codec.NormalDisconnection || !asked.Load() {
		t.Fatalf("after the CONNACK: %v (LingerFor asked: %v), want DISCONNECT (Normal disconnection)", d, asked.Load())
	}
}

// Open's own connect timeout is no stop by the caller: it cuts the
// exchange at once, whatever Linger says.
func TestLingerNotOnConnectTimeout(t *testing.T) {
	p := newLingerPeer(t, codec.V311)
	opened := make(chan error, 1)
	go func() {
		_, err := conn.Open(t.Context(), p.url(), conn.Config{
			Connect:        &codec.Connect{Version: codec.V311, ClientID: "linger", CleanStart: true},
			Inbound:        make(chan conn.Inbound),
			ConnectTimeout: 50 * time.Millisecond,
			Linger:         time.Hour,
		})
		opened <- err
	}()
	var err error
	select {
	case err = <-opened:
	case <-time.After(10 * time.Second): // 200 times the connect timeout
		(<-p.conn).Close()
		p.answer <- nil
		t.Fatalf("Open lingered after its connect timeout: %v", <-opened)
	}
	if err == nil || !strings.Contains(err.Error(), "connect timeout") {
		t.Fatalf("Open: %v, want the connect timeout", err)
	}
	p.answer <- nil
	if next := <-p.next; next != nil {
		t.Fatalf("the client sent %v after its connect timeout", next.Type())
	}
}

// Leave says goodbye on a connection whose loops never ran, and closes it
// once the broker has.
func TestLeave(t *testing.T) {
	for _, v := range []byte{codec.V311, codec.V5} {
		t.Run(fmt.Sprint("v", v), func(t *testing.T) {
			p := newLingerPeer(t, v)
			p.answer <- &codec.Connack{}
			c, err := conn.Open(t.Context(), p.url(), conn.Config{
				Connect: &codec.Connect{Version: v, ClientID: "leave", CleanStart: true},
				Inbound: make(chan conn.Inbound),
			})
			if err != nil {
				t.Fatal(err)
			}
			c.Leave(time.Minute)
			d, ok := (<-p.next).(*codec.Disconnect)
			if !ok || d.ReasonCode != codec.NormalDisconnection {
				t.Fatalf("the broker read %v, want DISCONNECT (Normal disconnection)", d)
			}
			select {
			case <-p.closing:
			default:
				t.Fatal("Leave returned before the broker closed the connection")
			}
			if c.Err() == nil {
				t.Fatal("the connection is still open after Leave")
			}
		})
	}
}

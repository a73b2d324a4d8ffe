package conn_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"sync"
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

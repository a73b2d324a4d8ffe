package conn_test

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"testing"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
)

// BenchmarkReadLoop measures the reader on a stream of small frames, 64 KiB
// per operation: the per-frame and per-read costs (decode, liveness clock,
// hand-off on Inbound) without a network.
func BenchmarkReadLoop(b *testing.B) {
	pub, err := (&codec.Publish{Topic: "bench/topic", Payload: make([]byte, 64), QoS: 1, PacketID: 1}).AppendTo(nil, codec.V311)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		frame []byte
	}{
		{"puback", []byte{0x40, 0x02, 0x00, 0x01}},
		{"publish64", pub},
	} {
		b.Run(bc.name, func(b *testing.B) {
			client, server := net.Pipe()
			defer server.Close()
			go func() {
				if _, err := codec.ReadPacket(bufio.NewReader(server), codec.V311, 0); err == nil {
					server.Write([]byte{0x20, 0x02, 0x00, 0x00})
				}
			}()
			inbound := make(chan conn.Inbound, 256)
			c, err := conn.Establish(b.Context(), client, "pipe", conn.Config{
				Connect: &codec.Connect{Version: codec.V311, ClientID: "c", CleanStart: true},
				Inbound: inbound,
			})
			if err != nil {
				b.Fatal(err)
			}
			n := 64 << 10 / len(bc.frame)
			block := bytes.Repeat(bc.frame, n)
			writes, wrote := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(wrote)
				for range writes {
					server.Write(block)
				}
			}()
			done := make(chan error, 1)
			go func() { done <- c.ReadLoop(context.Background()) }()
			b.SetBytes(int64(len(block)))
			b.ReportAllocs()
			for b.Loop() {
				writes <- struct{}{}
				for range n {
					<-inbound
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/frame")
			close(writes)
			c.Close()
			<-done
			<-wrote
		})
	}
}

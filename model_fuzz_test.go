package mqtt_test

// FuzzInboundFrames: whatever a broker sends (any bytes, in any pieces,
// with time passing and the application reading in between), the client
// ends with a clear error or keeps working: no panic, no hang, no
// goroutine left behind. It runs the whole client in a synctest bubble
// over net.Pipe; the first connection is the fuzzer's, every later one a
// well-behaved broker, with which a QoS 1 publish must then succeed.

import (
	"bufio"
	"context"
	"errors"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/codec"
)

// The script ops of FuzzInboundFrames: the input is one config byte, then
// ops, each an op byte and its operands.
const (
	fzWrite   = iota // n, then n bytes: written in one Write
	fzTrickle        // n, then n bytes: written one byte per Write
	fzSleep          // let s seconds (the next byte, mod 8) pass
	fzRead           // the application reads what is waiting (and acks it)
	fzPublish        // the application publishes at QoS (next byte) mod 3
	fzOps
)

func FuzzInboundFrames(f *testing.F) {
	for _, s := range inboundSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > 1<<14 {
			return
		}
		synctest.Test(t, func(t *testing.T) { inboundFrames(t, data) })
	})
}

// inboundSeeds builds the seed corpus in code too (testdata/fuzz holds the
// same and more): valid flows, duplicates, protocol violations, garbage.
func inboundSeeds(f *testing.F) [][]byte {
	enc := func(v byte, ps ...codec.Packet) []byte {
		var b []byte
		for _, p := range ps {
			var err error
			if b, err = p.AppendTo(b, v); err != nil {
				f.Fatal(err)
			}
		}
		return b
	}
	script := func(cfg byte, ops ...[]byte) []byte {
		out := []byte{cfg}
		for _, o := range ops {
			out = append(out, o...)
		}
		return out
	}
	write := func(op byte, frame []byte) []byte {
		var out []byte
		for len(frame) > 0 {
			n := min(len(frame), 255)
			out = append(out, op, byte(n))
			out = append(out, frame[:n]...)
			frame = frame[n:]
		}
		return out
	}
	var seeds [][]byte
	for _, v := range []byte{codec.V311, codec.V5} {
		cfg := byte(0)
		if v == codec.V5 {
			cfg = 1
		}
		unsuback := &codec.Unsuback{PacketID: 4}
		if v == codec.V5 {
			unsuback.ReasonCodes = []codec.ReasonCode{0}
		}
		pub := func(q codec.QoS, id uint16, dup bool) *codec.Publish {
			return &codec.Publish{Topic: "in/a", Payload: []byte("x"), QoS: q, PacketID: id, Dup: dup}
		}
		seeds = append(seeds,
			script(cfg, write(fzWrite, enc(v, pub(0, 0, false), pub(1, 1, false), pub(2, 2, false))), []byte{fzRead}, write(fzWrite, enc(v, &codec.Pubrel{PacketID: 2}))),
			script(cfg|2, write(fzTrickle, enc(v, pub(2, 7, false), pub(2, 7, true))), []byte{fzRead, fzSleep, 3}, write(fzWrite, enc(v, &codec.Pubrel{PacketID: 7}, &codec.Pubrel{PacketID: 7}))),
			script(cfg, []byte{fzPublish, 1}, write(fzWrite, enc(v, &codec.Puback{PacketID: 9}))),
			script(cfg, []byte{fzPublish, 2, fzSleep, 1}, write(fzWrite, enc(v, &codec.Pubrec{PacketID: 1}, &codec.Pubcomp{PacketID: 1}, &codec.Pubcomp{PacketID: 1}))),
			script(cfg, write(fzWrite, enc(v, &codec.Suback{PacketID: 3, ReasonCodes: []codec.ReasonCode{0}}, unsuback))),
			script(cfg, write(fzWrite, enc(v, &codec.Pingresp{}, &codec.Connack{}))),
			script(cfg, write(fzWrite, []byte{0x30, 0xff, 0xff, 0xff, 0x7f})), // absurd length
			script(cfg, write(fzWrite, []byte{0x00, 0x00})),                   // reserved type
			script(cfg, write(fzWrite, []byte{0x62, 0x02, 0x00})),             // PUBREL cut short
			script(cfg|4, write(fzWrite, enc(v, pub(1, 1, false), pub(1, 2, false), pub(1, 3, false), pub(1, 4, false), pub(2, 5, false), pub(0, 0, false))), []byte{fzSleep, 7, fzRead}),
		)
		if v == codec.V5 {
			alias := uint16(1)
			seeds = append(seeds,
				script(cfg, write(fzWrite, enc(v, &codec.Disconnect{ReasonCode: codec.ServerShuttingDown}))),
				script(cfg, write(fzWrite, enc(v, &codec.Publish{Topic: "", Payload: []byte("y"), Properties: &codec.Properties{TopicAlias: &alias}}))),
				script(cfg, write(fzWrite, enc(v, &codec.Auth{ReasonCode: codec.ContinueAuthentication}))),
			)
		}
	}
	return seeds
}

// inboundFrames plays one script; see FuzzInboundFrames.
func inboundFrames(t *testing.T, data []byte) {
	cfgByte, script := data[0], data[1:]
	ver := codec.V311
	if cfgByte&1 != 0 {
		ver = codec.V5
	}
	conns := make(chan net.Conn, 64)
	cfg := mqtt.Config{
		Servers:    []string{"tcp://fuzz:1883"},
		ClientID:   "fuzz",
		Version:    ver,
		ManualAck:  cfgByte&2 != 0,
		MaxPending: 1 + int(cfgByte>>2&3),
		KeepAlive:  time.Minute,
		Backoff:    backoff.Constant(100 * time.Millisecond),
		Dial: func(ctx context.Context, server string) (net.Conn, error) {
			cl, sv := net.Pipe()
			select {
			case conns <- sv:
			default:
				sv.Close()
				return nil, errors.New("fuzz broker: too many connections")
			}
			return cl, nil
		},
	}
	dialed := make(chan *mqtt.Client, 1)
	go func() {
		c, err := mqtt.Dial(context.Background(), cfg)
		if err != nil {
			t.Errorf("Dial: %v", err)
		}
		dialed <- c
	}()
	// The fuzzer's connection: answer CONNECT, then play the script.
	first := <-conns
	br := bufio.NewReader(first)
	if _, err := readRawFrame(br); err != nil {
		t.Fatalf("no CONNECT: %v", err)
	}
	ack, _ := (&codec.Connack{SessionPresent: cfgByte&16 != 0}).AppendTo(nil, ver)
	if _, err := first.Write(ack); err != nil {
		t.Fatalf("CONNACK: %v", err)
	}
	c := <-dialed
	if c == nil {
		return
	}
	defer c.Close()
	// The client's frames are drained (its writes on a pipe wait for a
	// reader); ours are written by a goroutine (the client may not read).
	go func() {
		for {
			if _, err := readRawFrame(br); err != nil {
				return
			}
		}
	}()
	writes := make(chan []byte, len(script)+1)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for b := range writes {
			if _, err := first.Write(b); err != nil {
				for range writes {
				}
				return
			}
		}
	}()
	var unacked []mqtt.Message
	read := func() {
		for {
			synctest.Wait()
			select {
			case m, ok := <-c.Messages():
				if !ok {
					return
				}
				if m.QoS > 0 {
					unacked = append(unacked, m)
				}
				continue
			default:
			}
			break
		}
		for _, m := range unacked {
			if err := m.Ack(); err != nil && !errors.Is(err, mqtt.ErrClosed) {
				t.Errorf("Ack: %v", err)
			}
		}
		unacked = nil
	}
	results := make(chan error, len(script)+1)
	pending := 0
	i := 0
	operand := func() int {
		if i < len(script) {
			i++
			return int(script[i-1])
		}
		return 0
	}
	for i < len(script) {
		op := script[i] % fzOps
		i++
		switch op {
		case fzWrite, fzTrickle:
			n := min(operand(), len(script)-i)
			chunk := script[i : i+n]
			i += n
			if op == fzWrite {
				writes <- chunk
				break
			}
			for j := range chunk {
				writes <- chunk[j : j+1]
			}
		case fzSleep:
			time.Sleep(time.Duration(operand()%8) * time.Second)
		case fzRead:
			read()
		case fzPublish:
			q := mqtt.QoS(operand() % 3)
			pending++
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				results <- c.Publish(ctx, mqtt.Message{Topic: "out/a", Payload: []byte("p"), QoS: q})
			}()
		}
		synctest.Wait()
	}
	close(writes)
	<-writerDone
	// The fuzzer's connection ends; from now on the broker behaves.
	first.Close()
	go goodBroker(conns, ver)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		done <- c.Publish(ctx, mqtt.Message{Topic: "out/after", Payload: []byte("q"), QoS: 1})
	}()
	deadline := time.After(11 * time.Minute)
	for waiting := true; waiting; {
		read()
		select {
		case err := <-done:
			waiting = false
			if err != nil {
				select {
				case <-c.Done():
					if c.Err() == nil {
						t.Errorf("the client stopped by itself with no error")
					}
				default:
					t.Errorf("a QoS 1 publish to a well-behaved broker after the script: %v", err)
				}
			}
		case <-deadline:
			t.Fatalf("a QoS 1 publish to a well-behaved broker did not end")
		case <-time.After(time.Second):
		}
	}
	for range pending {
		<-results // each has a deadline; each must end
	}
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(time.Hour):
		t.Fatalf("Close did not return")
	}
	close(conns)
	for nc := range conns {
		nc.Close()
	}
	synctest.Wait()
	if left := bubbleGoroutines(); left != "" {
		t.Fatalf("goroutines left after Close:\n%s", left)
	}
}

// goodBroker answers every later connection correctly: CONNACK, acks for
// every publish, SUBACK, UNSUBACK, PINGRESP.
func goodBroker(conns chan net.Conn, ver byte) {
	for nc := range conns {
		go func() {
			defer nc.Close()
			out := make(chan codec.Packet, 64)
			defer close(out)
			go func() {
				for p := range out {
					b, err := p.AppendTo(nil, ver)
					if err == nil {
						_, err = nc.Write(b)
					}
					if err != nil {
						nc.Close()
						for range out {
						}
						return
					}
				}
			}()
			br := bufio.NewReader(nc)
			for {
				raw, err := readRawFrame(br)
				if err != nil {
					return
				}
				p, _, err := codec.Decode(raw, ver, 0)
				if err != nil {
					return
				}
				var answer codec.Packet
				switch p := p.(type) {
				case *codec.Connect:
					answer = &codec.Connack{}
				case *codec.Publish:
					switch p.QoS {
					case 1:
						answer = &codec.Puback{PacketID: p.PacketID}
					case 2:
						answer = &codec.Pubrec{PacketID: p.PacketID}
					}
				case *codec.Pubrel:
					answer = &codec.Pubcomp{PacketID: p.PacketID}
				case *codec.Subscribe:
					codes := make([]codec.ReasonCode, len(p.Subscriptions))
					answer = &codec.Suback{PacketID: p.PacketID, ReasonCodes: codes}
				case *codec.Unsubscribe:
					a := &codec.Unsuback{PacketID: p.PacketID}
					if ver == codec.V5 {
						a.ReasonCodes = make([]codec.ReasonCode, len(p.Filters))
					}
					answer = a
				case *codec.Pingreq:
					answer = &codec.Pingresp{}
				case *codec.Disconnect:
					return
				}
				if answer != nil {
					select {
					case out <- answer:
					default:
						return // the client does not read: cut
					}
				}
			}
		}()
	}
}

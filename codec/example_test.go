package codec_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"

	"github.com/robustmqtt/mqtt/codec"
)

// A writer encodes into one reused buffer; a reader decodes frame by frame.
func Example() {
	var buf []byte
	var err error
	for _, p := range []codec.Packet{
		&codec.Connect{Version: codec.V5, CleanStart: true, KeepAlive: 30, ClientID: "sensor-7"},
		&codec.Publish{Topic: "sensors/7/temp", Payload: []byte("21.5"), QoS: codec.QoS1, PacketID: 1},
		&codec.Disconnect{},
	} {
		if buf, err = p.AppendTo(buf, codec.V5); err != nil {
			fmt.Println(err)
			return
		}
	}
	r := bufio.NewReader(bytes.NewReader(buf))
	for {
		p, err := codec.ReadPacket(r, codec.V5, 0)
		if err != nil {
			break // io.EOF
		}
		switch p := p.(type) {
		case *codec.Connect:
			fmt.Println("CONNECT", p.ClientID)
		case *codec.Publish:
			fmt.Printf("PUBLISH %s %q %s id=%d\n", p.Topic, p.Payload, p.QoS, p.PacketID)
		default:
			fmt.Println(p.Type())
		}
	}
	// Output:
	// CONNECT sensor-7
	// PUBLISH sensors/7/temp "21.5" QoS1 id=1
	// DISCONNECT
}

// A read loop that hands each message on by value decodes into one reused Publish: a
// message then costs one allocation, its frame's body, which the copy owns.
func ExampleReadPacketInto() {
	var stream []byte
	for i, text := range []string{"21.5", "21.7"} {
		p := &codec.Publish{Topic: "sensors/7/temp", Payload: []byte(text), QoS: codec.QoS1, PacketID: uint16(i + 1)}
		stream, _ = p.AppendTo(stream, codec.V311)
	}
	stream, _ = (&codec.Pingresp{}).AppendTo(stream, codec.V311)
	r := bufio.NewReader(bytes.NewReader(stream))
	var pub codec.Publish
	var kept []codec.Publish
	for {
		p, err := codec.ReadPacketInto(r, &pub, codec.V311, 0)
		if err != nil {
			break // io.EOF
		}
		if p == &pub {
			kept = append(kept, pub) // pub is overwritten by the next PUBLISH; the copy stays
			continue
		}
		fmt.Println(p.Type())
	}
	for _, m := range kept {
		fmt.Printf("%s %q id=%d\n", m.Topic, m.Payload, m.PacketID)
	}
	// Output:
	// PINGRESP
	// sensors/7/temp "21.5" id=1
	// sensors/7/temp "21.7" id=2
}

// A malformed frame yields an *Error that says what to answer and where the fault is.
func ExampleError() {
	frame := []byte{0x30, 0x0A, 0x01, 0x2C, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}
	_, _, err := codec.Decode(frame, codec.V5, 0)
	var e *codec.Error
	if errors.As(err, &e) {
		fmt.Printf("answer 0x%02X\n", byte(e.Code))
	}
	fmt.Println(err)
	// Output:
	// answer 0x81
	// codec: malformed packet: PUBLISH: topic name length 300 runs past the end of the 12-byte frame at byte 2
}

// Size checks a message against the server's Maximum Packet Size before it is queued.
func ExampleSize() {
	p := &codec.Publish{Topic: "logs", Payload: make([]byte, 2000), QoS: codec.QoS1, PacketID: 5}
	n, _ := codec.Size(p, codec.V311)
	fmt.Println(n, n <= 1024)
	// Output: 2011 false
}

// Validation lets a client refuse bad input at the call, before anything is sent.
func ExampleValidateTopicFilter() {
	for _, f := range []string{"sensors/+/temp", "sensors/#", "sensors/#/temp", "$share/workers/jobs/#"} {
		fmt.Println(f, codec.ValidateTopicFilter(f) == nil)
	}
	fmt.Println(codec.ValidateTopicName("sensors/+"))
	// Output:
	// sensors/+/temp true
	// sensors/# true
	// sensors/#/temp false
	// $share/workers/jobs/# true
	// codec: topic name invalid: topic name contains the wildcard '+' at byte 8
}

package mqtttest

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt/codec"
)

func mustEncode(t *testing.T, p codec.Packet, v byte) []byte {
	t.Helper()
	b, err := p.AppendTo(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The splitter hands on the same frames however the stream is cut: one
// byte at a time, in chunks of every size, or all at once; of a frame
// longer than it keeps, the start and the length.
func TestSplitter(t *testing.T) {
	big := mustEncode(t, &codec.Publish{Topic: "big", Payload: make([]byte, 300)}, codec.V5)
	frames := [][]byte{
		mustEncode(t, &codec.Connect{Version: codec.V5, ClientID: "c"}, codec.V5),
		{0xC0, 0x00},
		mustEncode(t, &codec.Publish{Topic: "a/b", Payload: []byte("x"), QoS: 1, PacketID: 7}, codec.V5),
		big,
		mustEncode(t, &codec.Puback{PacketID: 7}, codec.V5),
	}
	stream := bytes.Join(frames, nil)
	const keep = 100
	for chunk := 1; chunk <= len(stream); chunk++ {
		s := splitter{keep: keep}
		var got [][]byte
		var totals []int
		for p := stream; len(p) > 0; {
			n := min(chunk, len(p))
			if !s.feed(p[:n], func(frame []byte, total int) {
				got = append(got, slices.Clone(frame))
				totals = append(totals, total)
			}) {
				t.Fatalf("chunks of %d: stream broken", chunk)
			}
			p = p[n:]
		}
		if !s.idle() || len(got) != len(frames) {
			t.Fatalf("chunks of %d: %d frames, idle %t; want %d", chunk, len(got), s.idle(), len(frames))
		}
		for i, f := range frames {
			want := f[:min(len(f), keep)]
			if !bytes.Equal(got[i], want) || totals[i] != len(f) {
				t.Fatalf("chunks of %d: frame %d is % x (%d bytes), want % x (%d bytes)", chunk, i, got[i], totals[i], want, len(f))
			}
		}
	}

	s := splitter{keep: keep}
	if s.feed([]byte{0x30, 0x80, 0x80}, func([]byte, int) {}) && s.feed([]byte{0x80, 0x80, 0x01}, func([]byte, int) {}) {
		t.Error("a five-byte remaining length did not break the stream")
	}
}

// A Monitor made by NewMonitor checks the frames it is given, for a
// transport of one's own.
func TestNewMonitor(t *testing.T) {
	m := NewMonitor("test connection")
	m.Client(mustEncode(t, &codec.Connect{Version: codec.V5, ClientID: "own", CleanStart: true}, codec.V5))
	m.Server(mustEncode(t, &codec.Connack{Properties: &codec.Properties{MaximumQoS: new(byte)}}, codec.V5))
	m.Client(mustEncode(t, &codec.Publish{Topic: "t", QoS: 1, PacketID: 1}, codec.V5))
	m.Client([]byte{0xC0, 0x00, 0xC0}) // not one frame
	m.Close()
	m.Client([]byte{0xC0, 0x00}) // after Close: ignored
	vs := m.Violations()
	if len(vs) != 2 || vs[0].Rule != "MQTT-3.2.2-11" || vs[1].Rule != "malformed" {
		t.Fatalf("violations: %v", vs)
	}
	v := vs[0]
	if v.Conn != `test connection (client "own", MQTT 5.0)` {
		t.Errorf("Conn = %q", v.Conn)
	}
	want := []string{
		`  → CONNECT v5 client="own" keepalive=0 clean (18 bytes)`,
		`  ← CONNACK code=0x00 maximum-qos=0 (7 bytes)`,
		`! → PUBLISH qos=1 topic="t" id=1 (8 bytes)`,
	}
	if !slices.Equal(v.Frames, want) {
		t.Errorf("Frames:\n%s\nwant:\n%s", strings.Join(v.Frames, "\n"), strings.Join(want, "\n"))
	}
	if s := v.String(); !strings.HasPrefix(s, "[MQTT-3.2.2-11] PUBLISH at QoS 1; the server's Maximum QoS is 0\n") {
		t.Errorf("String() = %s", s)
	}
}

// A frame too long to keep whole is described from its start.
func TestDescribeCutShort(t *testing.T) {
	f := mustEncode(t, &codec.Publish{Topic: "some/topic", Payload: make([]byte, 200), QoS: 2, PacketID: 9, Dup: true}, codec.V311)
	if got, want := describe(f[:headLen], len(f), codec.V311), `PUBLISH qos=2 dup topic="some/topic" id=9 (217 bytes)`; got != want {
		t.Errorf("describe = %q, want %q", got, want)
	}
}

// The cost of monitoring one QoS 1 message each way, as a tap feeds it.
func BenchmarkMonitor(b *testing.B) {
	enc := func(p codec.Packet) []byte {
		f, err := p.AppendTo(nil, codec.V5)
		if err != nil {
			b.Fatal(err)
		}
		return f
	}
	m := newMonitor("bench", nil, &sessionBook{})
	m.tapped = true
	now := time.Now()
	m.clientBytes(enc(&codec.Connect{Version: codec.V5, ClientID: "b", CleanStart: true}), now, now)
	m.serverBytes(enc(&codec.Connack{}))
	pub := enc(&codec.Publish{Topic: "bench/topic", Payload: make([]byte, 64), QoS: 1, PacketID: 1})
	ack := enc(&codec.Puback{PacketID: 1})
	b.ReportAllocs()
	b.SetBytes(int64(2 * (len(pub) + len(ack))))
	for b.Loop() {
		m.clientBytes(pub, now, now) // the client publishes
		m.serverBytes(ack)
		m.serverBytes(pub) // the server delivers
		m.clientBytes(ack, now, now)
	}
	if vs := m.Violations(); len(vs) > 0 {
		b.Fatal(vs)
	}
}

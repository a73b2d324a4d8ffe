package mqtt_test

// The fake broker's connections (see model_broker_test.go): a reader and a
// writer goroutine per net.Pipe, and how the history prints packets.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/robustmqtt/mqtt/codec"
)

// rxFrame is one frame the broker read from the client.
type rxFrame struct {
	p    codec.Packet
	size int   // bytes on the wire
	err  error // the frame did not decode
	at   time.Time
}

// bconn is one connection as the fake broker sees it.
type bconn struct {
	n      int
	inst   *instance // the client instance that dialed it
	nc     net.Conn
	ver    byte
	splitW bool // write byte by byte
	splitR bool // read byte by byte
	ping   []byte
	hole   atomic.Bool // black-holed: the broker reads but answers nothing, not even PINGREQ

	mu    sync.Mutex // guards rx and ended, shared with the reader
	rx    []rxFrame
	ended error // why reading stopped; nil while it goes on

	wmu        sync.Mutex // guards wq and closeAfter, shared with the writer
	wq         [][]byte
	closeAfter bool // close once the queue is written
	kick       chan struct{}
	done       chan struct{}
	closeOnce  sync.Once

	// The model's state of the connection; test goroutine only.
	// brokerEnd is when the broker cut it or sent DISCONNECT; zero if
	// it did not.
	brokerEnd time.Time
	connect   *codec.Connect
	up        bool // a successful CONNACK went out
	dead      bool // the model has seen it end (or ended it)
	lim       limits
	quotaIn   int // PUBLISHes QoS>0 the client may still send; -1: no limit
	quotaOut  int // PUBLISHes QoS>0 the broker may still send; -1: no limit
	sawDisc   bool
	ctl       map[uint16]*ctlFlow
	compOwed  []uint16 // PUBREL for identifiers without a flow: PUBCOMP owed
	ord       [3]ackOrder
	resendQ   []uint16          // broker flows whose PUBLISH waits for send quota
	aliases   map[string]uint16 // MQTT 5 topic aliases the broker set on this connection
	// On a connection that resumed the session: the client's flows it
	// took over (identifier -> message), whether a new message came
	// yet, and the original order of the latest re-sent PUBLISH and PUBREL.
	pre              map[uint16]string
	preRel           map[uint16]bool // of those, the ones the broker had sent PUBREC for: PUBREL owed again
	newSeen          bool
	lastPub, lastRel uint64
}

// limits are what a CONNACK announced.
type limits struct {
	recvMax   int // 0: none
	maxPacket int // 0: none
	maxQoS    codec.QoS
	noRetain  bool
}

func (l limits) String() string {
	var b []string
	if l.recvMax > 0 {
		b = append(b, fmt.Sprint("RM=", l.recvMax))
	}
	if l.maxPacket > 0 {
		b = append(b, fmt.Sprint("MPS=", l.maxPacket))
	}
	if l.maxQoS < 2 {
		b = append(b, fmt.Sprint("MaxQoS=", l.maxQoS))
	}
	if l.noRetain {
		b = append(b, "noRetain")
	}
	return strings.Join(b, " ")
}

// ackOrder checks that the client acknowledges in the order of arrival.
type ackOrder struct {
	idx  map[string]int // tag -> position of its first arrival on the connection
	next int
	last int // position of the latest acknowledged; -1 none
}

func (o *ackOrder) arrived(tag string) {
	if o.idx == nil {
		o.idx, o.last = map[string]int{}, -1
	}
	if _, ok := o.idx[tag]; !ok {
		o.idx[tag] = o.next
		o.next++
	}
}

// acked reports the tag acknowledged out of order before it, if any.
func (o *ackOrder) acked(tag string) (bool, int) {
	i, ok := o.idx[tag]
	if !ok {
		return true, 0
	}
	if i < o.last {
		return false, o.last
	}
	o.last = i
	return true, 0
}

// ctlFlow is a SUBSCRIBE or UNSUBSCRIBE the broker has not answered.
type ctlFlow struct {
	sub     *codec.Subscribe
	unsub   *codec.Unsubscribe
	filters []string
}

// byteReader reads one byte per Read: the client's writes arrive in pieces.
type byteReader struct{ r io.Reader }

func (b byteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return b.r.Read(p)
}

func (bc *bconn) start() {
	go bc.readLoop()
	go bc.writeLoop()
}

func (bc *bconn) readLoop() {
	defer bc.close()
	var r io.Reader = bc.nc
	if bc.splitR {
		r = byteReader{bc.nc}
	}
	br := bufio.NewReader(r)
	for {
		raw, err := readRawFrame(br)
		if err != nil {
			bc.mu.Lock()
			bc.ended = err
			bc.mu.Unlock()
			return
		}
		p, _, derr := codec.Decode(raw, bc.ver, 0)
		bc.mu.Lock()
		bc.rx = append(bc.rx, rxFrame{p: p, size: len(raw), err: derr, at: time.Now()})
		bc.mu.Unlock()
		if derr == nil && p.Type() == codec.TypePingreq && !bc.hole.Load() {
			bc.write(bc.ping)
		}
	}
}

// readRawFrame reads one whole frame, fixed header included.
func readRawFrame(br *bufio.Reader) ([]byte, error) {
	first, err := br.ReadByte()
	if err != nil {
		return nil, err
	}
	frame := []byte{first}
	n, mult := 0, 1
	for i := 0; ; i++ {
		b, err := br.ReadByte()
		if err != nil {
			return nil, io.ErrUnexpectedEOF
		}
		frame = append(frame, b)
		n += int(b&0x7f) * mult
		if b&0x80 == 0 {
			break
		}
		mult *= 128
		if i == 3 {
			return nil, errors.New("model broker: remaining length longer than 4 bytes")
		}
	}
	if n > 1<<22 {
		return nil, fmt.Errorf("model broker: a frame of %d bytes", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, io.ErrUnexpectedEOF
	}
	return append(frame, body...), nil
}

// write queues b for the writer.
func (bc *bconn) write(b []byte) {
	bc.wmu.Lock()
	bc.wq = append(bc.wq, b)
	bc.wmu.Unlock()
	select {
	case bc.kick <- struct{}{}:
	default:
	}
}

// finish closes the connection once what is queued is written.
func (bc *bconn) finish() {
	bc.wmu.Lock()
	bc.closeAfter = true
	bc.wmu.Unlock()
	select {
	case bc.kick <- struct{}{}:
	default:
	}
}

func (bc *bconn) writeLoop() {
	for {
		select {
		case <-bc.kick:
		case <-bc.done:
			return
		}
		bc.wmu.Lock()
		q, closeAfter := bc.wq, bc.closeAfter
		bc.wq = nil
		bc.wmu.Unlock()
		for _, b := range q {
			var err error
			if bc.splitW {
				for i := range b {
					if _, err = bc.nc.Write(b[i : i+1]); err != nil {
						break
					}
				}
			} else {
				_, err = bc.nc.Write(b)
			}
			if err != nil {
				bc.close()
				return
			}
		}
		if closeAfter {
			bc.close()
			return
		}
	}
}

// close cuts the connection now.
func (bc *bconn) close() {
	bc.closeOnce.Do(func() {
		close(bc.done)
		bc.nc.Close()
	})
}

// take returns the frames read since the last call, and whether reading
// has ended.
func (bc *bconn) take() ([]rxFrame, error) {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	rx := bc.rx
	bc.rx = nil
	return rx, bc.ended
}

// describe renders a packet for the history.
func describe(p codec.Packet) string {
	switch p := p.(type) {
	case *codec.Publish:
		s := fmt.Sprintf("PUBLISH %s q%d id=%d", tagOf(p.Payload), p.QoS, p.PacketID)
		if p.Dup {
			s += " dup"
		}
		if p.Retain {
			s += " retain"
		}
		if p.Properties != nil && p.Properties.MessageExpiry != nil {
			s += fmt.Sprintf(" expiry=%d", *p.Properties.MessageExpiry)
		}
		return s
	case *codec.Puback:
		return fmt.Sprintf("PUBACK %d %s", p.PacketID, rc(p.ReasonCode))
	case *codec.Pubrec:
		return fmt.Sprintf("PUBREC %d %s", p.PacketID, rc(p.ReasonCode))
	case *codec.Pubrel:
		return fmt.Sprintf("PUBREL %d %s", p.PacketID, rc(p.ReasonCode))
	case *codec.Pubcomp:
		return fmt.Sprintf("PUBCOMP %d %s", p.PacketID, rc(p.ReasonCode))
	case *codec.Subscribe:
		fs := make([]string, len(p.Subscriptions))
		for i, s := range p.Subscriptions {
			fs[i] = s.Filter
		}
		return fmt.Sprintf("SUBSCRIBE %d %v", p.PacketID, fs)
	case *codec.Suback:
		return fmt.Sprintf("SUBACK %d %v", p.PacketID, p.ReasonCodes)
	case *codec.Unsubscribe:
		return fmt.Sprintf("UNSUBSCRIBE %d %v", p.PacketID, p.Filters)
	case *codec.Unsuback:
		return fmt.Sprintf("UNSUBACK %d %v", p.PacketID, p.ReasonCodes)
	case *codec.Connect:
		return fmt.Sprintf("CONNECT clean=%v", p.CleanStart)
	case *codec.Connack:
		return fmt.Sprintf("CONNACK present=%v %s", p.SessionPresent, rc(p.ReasonCode))
	case *codec.Disconnect:
		return fmt.Sprintf("DISCONNECT %s", rc(p.ReasonCode))
	}
	return p.Type().String()
}

func rc(c codec.ReasonCode) string {
	if c == 0 {
		return ""
	}
	return fmt.Sprintf("rc=0x%02X", byte(c))
}

// tagOf is the tag at the front of a model payload ("p12|xxx" -> "p12").
func tagOf(payload []byte) string {
	s, _, _ := strings.Cut(string(payload), "|")
	return s
}

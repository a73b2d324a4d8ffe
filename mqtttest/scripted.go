package mqtttest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
)

// ScriptedBroker is a fake MQTT server for tests that feed a client hostile
// or unusual input. It accepts connections on a loopback port, reads one
// CONNECT frame from each, answers with a CONNACK, and hands the connection
// to the test (Accept), which then reads the client's frames and writes raw
// bytes of its choosing: malformed frames, absurd lengths, protocol
// violations, or nothing at all.
//
// The default CONNACK accepts the connection without a session, in the
// protocol version the CONNECT asked for: 20 02 00 00 for MQTT 3.1 and
// 3.1.1, 20 03 00 00 00 for MQTT 5. SetConnack replaces it.
//
// A connection whose first frame is not a CONNECT, or is malformed, is
// closed and never handed to the test. A connection on which the client
// sends DISCONNECT is closed after it, as brokers do: ReadFrame returns the
// DISCONNECT, then the end (unless KeepOpenAfterDisconnect). Its methods
// are safe for concurrent use.
type ScriptedBroker struct {
	acc     *acceptor
	wg      sync.WaitGroup // connection goroutines
	changed signal         // a connection is ready, or the broker closed
	watch   *watch         // the protocol monitor of the clients' connections

	mu      sync.Mutex // guards the fields below
	connack []byte     // nil: default
	// keepAfterBye: connections stay open after the client's DISCONNECT
	// (see KeepOpenAfterDisconnect).
	keepAfterBye bool
	// arrived holds the connections not yet handed to Accept, in the
	// order the listener accepted them; each is handed out once its
	// CONNACK is written (answered), or skipped if it ended before
	// (dropped). Queued in the order CONNACKs were written, a client that
	// reconnects at once after a refused CONNACK could overtake the
	// refused connection, and a test would take one for the other.
	arrived []*ScriptedConn
	all     map[*ScriptedConn]struct{}
	closed  bool
}

// StartScriptedBroker starts a ScriptedBroker on a free loopback port, for
// use outside tests. The caller must Close it.
func StartScriptedBroker() (*ScriptedBroker, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("mqtttest: start scripted broker: %w", err)
	}
	s := &ScriptedBroker{all: make(map[*ScriptedConn]struct{})}
	s.watch = newWatch("scripted broker", s.Addr)
	s.acc = startAcceptor(ln, s.handle)
	return s, nil
}

// NewScriptedBroker starts a ScriptedBroker and closes it, with every
// connection it accepted, when the test and its subtests have finished
// (t.Cleanup). It calls t.Fatal if it cannot start.
func NewScriptedBroker(t testing.TB) *ScriptedBroker {
	t.Helper()
	s, err := StartScriptedBroker()
	if err == nil {
		s.watch.attach(t)
	}
	return closeAtCleanup(t, s, err)
}

// URL returns the broker's address as a server URL, "tcp://127.0.0.1:port".
func (s *ScriptedBroker) URL() string { return "tcp://" + s.Addr() }

// Addr returns the broker's address, "127.0.0.1:port".
func (s *ScriptedBroker) Addr() string { return s.acc.addr() }

// SetConnack sets the raw bytes answered to the CONNECT of the connections
// that arrive from now on, written as given: a CONNACK with a refusal code,
// session present set, v5 properties, or no valid CONNACK at all. nil
// restores the default. An empty, non-nil frame answers nothing, so the
// client waits for a CONNACK that never comes (the connection is still
// handed to Accept).
func (s *ScriptedBroker) SetConnack(frame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if frame == nil {
		s.connack = nil
		return
	}
	s.connack = append([]byte{}, frame...)
}

// KeepOpenAfterDisconnect, on, keeps the connections that arrive from now
// on open after the client's DISCONNECT, which brokers do not, so that a
// test sees whatever the client sends after it (a client that keeps the
// protocol sends nothing, and closes the connection at the latest when
// it gives up waiting for the broker to). Off (the default), such a
// connection is closed after its DISCONNECT.
func (s *ScriptedBroker) KeepOpenAfterDisconnect(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keepAfterBye = on
}

// Accept returns the next client connection, after its CONNECT was read and
// the CONNACK written, in the order the connections arrived: one whose
// CONNECT has not come yet holds back those after it, and one that ended
// before its CONNACK is skipped. Connections are queued until accepted.
// It returns an error wrapping ctx's error if ctx ends first, or ErrClosed
// once Close has been called.
func (s *ScriptedBroker) Accept(ctx context.Context) (*ScriptedConn, error) {
	var c *ScriptedConn
	err := s.changed.until(ctx, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return true
		}
		for len(s.arrived) > 0 && s.arrived[0].stage == stageDropped {
			s.arrived = s.arrived[1:]
		}
		if len(s.arrived) > 0 && s.arrived[0].stage == stageAnswered {
			c = s.arrived[0]
			s.arrived = s.arrived[1:]
			return true
		}
		return false
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("mqtttest: wait for a client to connect to the scripted broker: %w", err)
	case c == nil:
		return nil, fmt.Errorf("%w: the scripted broker accepts no more connections", ErrClosed)
	}
	return c, nil
}

// Close stops accepting, closes every connection, accepted or not, and
// returns once every goroutine of the broker has exited. Close is
// idempotent.
func (s *ScriptedBroker) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.changed.broadcast()
	err := s.acc.stop() // no connection is added from here on
	s.mu.Lock()
	all := make([]*ScriptedConn, 0, len(s.all))
	for c := range s.all {
		all = append(all, c)
	}
	s.mu.Unlock()
	for _, c := range all {
		_ = c.conn.Close()
	}
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("mqtttest: close scripted broker: %w", err)
	}
	return nil
}

// handle starts serving a connection the broker accepted.
func (s *ScriptedBroker) handle(nc net.Conn) {
	// The CONNACK and whatever the test writes go through the tap, and so
	// does what the client sends: the monitor sees both.
	c := &ScriptedConn{conn: s.watch.tap(nc), done: make(chan struct{})}
	s.mu.Lock()
	c.keepAfterBye = s.keepAfterBye
	s.all[c] = struct{}{}
	if !s.closed {
		s.arrived = append(s.arrived, c)
	}
	s.mu.Unlock()
	s.wg.Go(func() { s.serve(c) })
}

// setStage moves c, not yet handed out, to stage, and tells Accept.
func (s *ScriptedBroker) setStage(c *ScriptedConn, stage int) {
	s.mu.Lock()
	c.stage = stage
	s.mu.Unlock()
	s.changed.broadcast()
}

// serve answers the CONNECT, queues c for Accept, then reads the client's
// frames until the connection ends.
func (s *ScriptedBroker) serve(c *ScriptedConn) {
	answered := false
	defer func() {
		if !answered {
			s.setStage(c, stageDropped)
		}
		_ = c.conn.Close()
		c.conn.(*tapConn).end()
		s.mu.Lock()
		delete(s.all, c)
		s.mu.Unlock()
	}()
	r := bufio.NewReader(c.conn)
	connect, err := readFrame(r)
	if err != nil {
		c.finish(fmt.Errorf("mqtttest: scripted broker: read CONNECT: %w", err))
		return
	}
	if connect[0]>>4 != 1 {
		c.finish(fmt.Errorf("mqtttest: scripted broker: first frame is of type %d, not a CONNECT", connect[0]>>4))
		return
	}
	c.connect = connect
	s.mu.Lock()
	connack := s.connack
	s.mu.Unlock()
	if connack == nil {
		connack = defaultConnack(connect)
	}
	if len(connack) > 0 {
		if _, err := c.conn.Write(connack); err != nil {
			c.finish(fmt.Errorf("mqtttest: scripted broker: write CONNACK: %w", err))
			return
		}
	}
	answered = true
	s.setStage(c, stageAnswered)
	c.readLoop(r)
}

// defaultConnack returns a successful CONNACK, without session, in the
// protocol version of connect. The version is the byte after the protocol
// name, which starts the variable header.
func defaultConnack(connect []byte) []byte {
	vh := connect[1:]
	for len(vh) > 0 && vh[0]&0x80 != 0 { // skip the remaining length
		vh = vh[1:]
	}
	if len(vh) > 0 {
		vh = vh[1:]
	}
	if len(vh) >= 2 {
		if n := int(vh[0])<<8 | int(vh[1]); len(vh) > 2+n && vh[2+n] == 5 {
			return []byte{0x20, 0x03, 0x00, 0x00, 0x00}
		}
	}
	return []byte{0x20, 0x02, 0x00, 0x00}
}

// maxRemaining is the largest remaining length MQTT can express.
const maxRemaining = 268_435_455

var errMalformedLength = errors.New("mqtttest: malformed remaining length: more than 4 bytes")

// readFrame reads one whole MQTT frame: the first byte, the remaining length
// (a variable byte integer of at most 4 bytes) and that many bytes. Memory
// grows with the bytes that actually arrive, not with the declared length.
func readFrame(r *bufio.Reader) ([]byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	frame := []byte{first}
	length, shift := 0, 0
	for i := 0; ; i++ {
		if i == 4 {
			return nil, errMalformedLength
		}
		b, err := r.ReadByte()
		if err != nil {
			return nil, noEOF(err)
		}
		frame = append(frame, b)
		length |= int(b&0x7f) << shift
		shift += 7
		if b&0x80 == 0 {
			break
		}
	}
	buf := bytes.NewBuffer(frame)
	if _, err := io.CopyN(buf, r, int64(length)); err != nil {
		return nil, noEOF(err)
	}
	return buf.Bytes(), nil
}

// noEOF turns an end of file inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ScriptedConn is one client connection to a ScriptedBroker, after its
// CONNECT and CONNACK. The broker reads the client's frames in the
// background and queues them for ReadFrame, so Done reports the client's
// disconnection even while the test is not reading.
type ScriptedConn struct {
	conn    net.Conn
	connect []byte        // set before the conn is handed out
	done    chan struct{} // closed by finish
	changed signal
	stage   int // stagePending, stageAnswered or stageDropped; guarded by ScriptedBroker.mu
	// keepAfterBye: read on after the client's DISCONNECT (set before
	// the connection is served).
	keepAfterBye bool

	mu     sync.Mutex // guards frames and err
	frames [][]byte
	err    error // why the connection ended; set before done is closed
}

// Where a connection is on its way to Accept.
const (
	stagePending  = iota // its CONNECT not yet answered
	stageAnswered        // its CONNACK written: Accept may hand it out
	stageDropped         // it ended before: Accept skips it
)

// Connect returns the raw CONNECT frame the client sent, fixed header
// included.
func (c *ScriptedConn) Connect() []byte { return c.connect }

// Write writes raw bytes to the client. It blocks while the client does not
// read and its socket buffer is full, until Close.
func (c *ScriptedConn) Write(b []byte) error {
	if _, err := c.conn.Write(b); err != nil {
		return fmt.Errorf("mqtttest: write to scripted client: %w", err)
	}
	return nil
}

// ReadFrame returns the next whole frame the client sent, fixed header
// included. Once the connection has ended and every frame before the end
// was read, it returns an error that wraps ErrClosed and the reason (io.EOF
// if the client closed the connection). If ctx ends first it returns an
// error wrapping ctx's error.
func (c *ScriptedConn) ReadFrame(ctx context.Context) ([]byte, error) {
	var frame []byte
	var ended error
	err := c.changed.until(ctx, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.frames) > 0 {
			frame = c.frames[0]
			c.frames = c.frames[1:]
			return true
		}
		ended = c.err
		return ended != nil
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("mqtttest: wait for a frame from the scripted client: %w", err)
	case frame == nil:
		return nil, fmt.Errorf("%w: the scripted connection ended: %w", ErrClosed, ended)
	}
	return frame, nil
}

// Close closes the connection and returns once the broker has stopped
// reading it. Idempotent.
func (c *ScriptedConn) Close() error {
	err := c.conn.Close()
	<-c.done
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("mqtttest: close scripted connection: %w", err)
	}
	return nil
}

// Done returns a channel that is closed when the connection has ended: the
// client closed or dropped it, it sent a malformed frame, or Close was
// called.
func (c *ScriptedConn) Done() <-chan struct{} { return c.done }

// readLoop queues the client's frames until the connection fails, or
// until the client's DISCONNECT, after which the broker closes the
// connection, as brokers do.
func (c *ScriptedConn) readLoop(r *bufio.Reader) {
	for {
		frame, err := readFrame(r)
		if err != nil {
			c.finish(err)
			return
		}
		c.mu.Lock()
		c.frames = append(c.frames, frame)
		c.mu.Unlock()
		c.changed.broadcast()
		if frame[0]>>4 == 14 && !c.keepAfterBye {
			c.finish(errSaidGoodbye)
			return
		}
	}
}

// errSaidGoodbye is why a scripted connection ends after the client's
// DISCONNECT: the broker closed it. It wraps io.EOF: the client's stream
// ended there.
var errSaidGoodbye = fmt.Errorf("the client sent DISCONNECT, and the scripted broker closed the connection, as brokers do: %w", io.EOF)

// finish records why the connection ended and closes done.
func (c *ScriptedConn) finish(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	close(c.done)
	c.changed.broadcast()
}

package conn

import (
	"bufio"
	"io"
	"sync"
)

// An idle connection holds no read buffer. Most of a client's connections
// are idle most of the time (a sensor that reports once a minute, a
// subscriber to a quiet topic): they receive a PINGRESP now and then and
// nothing else. While the reader waits on such a connection, it waits for
// one byte on the socket with its buffer back in a pool, and takes a
// buffer again when the next frame begins. A connection counts as idle
// from its CONNACK until the first frame, and after a PINGRESP, SUBACK or
// UNSUBACK that came alone: a busy connection rarely sends PINGREQ (it pings only after a
// keepalive interval without sending), so its reader keeps its buffer and
// pays nothing.

// readers recycles the buffered readers of idle connections.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}

// newReader returns a pooled buffered reader on r.
func newReader(r io.Reader) *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

// prefixReader reads b first, then r. It gives the byte an idle wait read
// back to the buffered reader.
type prefixReader struct {
	b []byte
	r io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.b) == 0 {
		return p.r.Read(b)
	}
	n := copy(b, p.b)
	p.b = p.b[n:]
	if n == len(b) {
		return n, nil
	}
	// Every frame has at least two bytes, so the rest of the one that
	// began is on its way: this read does not wait for anything else.
	m, err := p.r.Read(b[n:])
	return n + m, err
}

// idleWait waits for the next byte with the read buffer in the pool.
// Called by the reader when nothing is buffered and the connection is
// idle.
func (c *Conn) idleWait() error {
	c.br.Reset(nil)
	readers.Put(c.br)
	n, err := liveReader{c}.Read(c.first[:])
	c.pre = prefixReader{b: c.first[:n], r: liveReader{c}}
	c.br = newReader(&c.pre)
	c.idle = false
	if n > 0 {
		return nil // data first; an error comes back on the next read
	}
	return err
}

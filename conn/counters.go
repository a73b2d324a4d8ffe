package conn

import (
	"net"
	"sync/atomic"
)

// Counters count the bytes a connection reads and writes on its byte
// stream: MQTT frames, and for ws:// and wss:// the WebSocket framing is
// below the count (it counts what the MQTT layer exchanged). One Counters
// may serve many connections, one after the other or at once.
type Counters struct {
	Read, Written atomic.Int64
}

// countingConn adds what passes through a net.Conn to Counters.
type countingConn struct {
	net.Conn
	n *Counters
}

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n.Read.Add(int64(n))
	return n, err
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Written.Add(int64(n))
	return n, err
}

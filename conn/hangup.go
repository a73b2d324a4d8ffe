package conn

import (
	"io"
	"time"

	"github.com/robustmqtt/mqtt/codec"
)

// SaidGoodbye reports whether the DISCONNECT a flush encoded has been
// written and the connection is still alive.
//
// A client that stops waits, after that, for the broker to close the
// connection (Done), reading and dropping what arrives, before it closes
// the connection itself. Closed at once, a socket with bytes received and
// not read is reset by the operating system, which then discards what it
// had not yet sent: to a broker slow to read, or over a slow link, the last
// messages and the DISCONNECT itself. And a broker still writing to the
// client (PUBACKs for the last publishes, messages for its subscriptions)
// meets a closed or reset socket, drops the client before it reads the
// DISCONNECT, and publishes the Will: against mochi-mqtt, a Close right
// after five QoS 1 publishes did so 49 times in 50. The client does not end
// its side of the stream (a FIN) first either: a proxy or load balancer in
// between that does not keep half-closed connections (nginx's stream
// proxy by default, mqtttest.Proxy) then closes both sides at once, with
// the same result.
func (c *Conn) SaidGoodbye() bool {
	// flushMu: the flush that encoded the DISCONNECT holds it through the
	// write; after it, that write is done.
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	return c.saidGoodbye.Load() && c.Err() == nil
}

// Leave ends a connection that Open returned and whose loops never ran,
// which its owner no longer wants: it writes DISCONNECT (Normal
// disconnection), then waits at most d for the broker to close the
// connection, reading and dropping what arrives, and closes it. Closed
// without a word, the connection would make the broker, which holds the
// client connected since the CONNECT, publish the Will (see SaidGoodbye
// for why the client waits for the broker's close).
func (c *Conn) Leave(d time.Duration) {
	c.nc.SetDeadline(time.Now().Add(d))
	c.leave()
	c.Close()
}

// leave writes DISCONNECT (Normal disconnection) on a connection whose
// loops are not running and reads what arrives until the broker closes the
// connection or the deadline already set on the socket passes.
func (c *Conn) leave() {
	frame, err := (&codec.Disconnect{ReasonCode: codec.NormalDisconnection}).AppendTo(nil, c.version)
	if err != nil {
		return
	}
	if _, err := c.nc.Write(frame); err != nil {
		return
	}
	io.Copy(io.Discard, c.br) // until EOF or the deadline: either ends it
}

package conn

import (
	"crypto/tls"
	"net"
)

// CloseWrite ends the client's side of the byte stream after its
// DISCONNECT: the broker reads every frame up to the DISCONNECT, then the
// end of the stream, and closes its side, which the reader sees as the end
// of file and which closes Done. It reports whether the DISCONNECT a flush
// encoded has been written and the connection is still alive; when it
// reports false it did nothing. TCP and TLS connections (and a
// Config.Dial's that has a CloseWrite method) get their end of stream now
// (TLS: close_notify, then TCP's FIN); a WebSocket's cannot, and the
// broker, which closes on DISCONNECT, ends it all the same.
//
// A graceful stop waits for that end (Done) before it closes the
// connection. Closed at once, a socket with bytes received and not read
// is reset by the operating system, which then discards what it had not
// yet sent: over a slow link, or to a broker slow to read, the last
// messages and the DISCONNECT itself, and the broker, seeing the
// connection fail, publishes the Will.
func (c *Conn) CloseWrite() bool {
	// flushMu: the flush that encoded the DISCONNECT holds it through the
	// write; after it, that write is done.
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	if !c.saidGoodbye.Load() {
		return false
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.Err() != nil {
		return false
	}
	_ = closeWrite(c.nc) // a failure shows as the reader's error
	return true
}

// closeWrite ends the sending side of nc where its transport can.
func closeWrite(nc net.Conn) error {
	if cc, ok := nc.(countingConn); ok {
		nc = cc.Conn
	}
	if tc, ok := nc.(*tls.Conn); ok {
		if err := tc.CloseWrite(); err != nil {
			return err
		}
		nc = tc.NetConn()
	}
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

package mqtttest

import "net"

// acceptor runs an accept loop on a listener, on a goroutine of its own, and
// hands each connection to a function, until stop.
type acceptor struct {
	ln   net.Listener
	done chan struct{} // closed when the accept loop has returned
}

// startAcceptor starts accepting on ln. handle runs on the accept loop, so
// it must not block; it may register the connection and start a goroutine
// for it.
func startAcceptor(ln net.Listener, handle func(net.Conn)) *acceptor {
	a := &acceptor{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by stop
			}
			handle(c)
		}
	}()
	return a
}

// stop closes the listener and returns once the loop has returned: from
// then on handle is not called again.
func (a *acceptor) stop() error {
	err := a.ln.Close()
	<-a.done
	return err
}

// addr returns the listener's address, "127.0.0.1:port".
func (a *acceptor) addr() string { return a.ln.Addr().String() }

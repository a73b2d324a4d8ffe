package conn

import (
	"context"
	"net"
	"sync"
	"syscall"
	"time"
)

// linkTimer notes how long the TCP handshake of a transport's dial took:
// from just before connect(2), after any name lookup, to the established
// connection. That is one round trip of the link, and nothing else: the
// kernel answers a SYN, however busy the broker's process is.
type linkTimer struct {
	mu     sync.Mutex
	starts map[string]time.Time // by the address dialed; several with Happy Eyeballs
	link   linkTime
}

// linkTime is a dial's measurement: how long it took; timed is false when
// nothing was measured.
type linkTime struct {
	took  time.Duration
	timed bool
}

// result is t's measurement.
func (t *linkTimer) result() linkTime {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.link
}

type linkTimerKey struct{}

// withLinkTimer returns ctx carrying t, for the transports' dialers.
func withLinkTimer(ctx context.Context, t *linkTimer) context.Context {
	return context.WithValue(ctx, linkTimerKey{}, t)
}

// tcpDialer returns the dialer a transport uses for its TCP connection:
// when ctx carries a linkTimer, the dialer notes in it when each connect
// began, and connected notes how long the one that won took.
func tcpDialer(ctx context.Context) *net.Dialer {
	t, _ := ctx.Value(linkTimerKey{}).(*linkTimer)
	if t == nil {
		return &net.Dialer{}
	}
	return &net.Dialer{ControlContext: func(_ context.Context, _, address string, _ syscall.RawConn) error {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.starts == nil {
			t.starts = map[string]time.Time{}
		}
		t.starts[address] = time.Now()
		return nil
	}}
}

// connected notes the TCP handshake of nc, which a dialer of tcpDialer's
// made under ctx, as ctx's linkTimer's measurement.
func connected(ctx context.Context, nc net.Conn) {
	t, _ := ctx.Value(linkTimerKey{}).(*linkTimer)
	if t == nil || nc == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if start, ok := t.starts[nc.RemoteAddr().String()]; ok {
		t.link = linkTime{took: time.Since(start), timed: true}
	}
}

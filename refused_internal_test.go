package mqtt

import (
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
)

// Which ends of a connection are the broker's, and which of those may be
// its refusal of a message (refused.go): a DISCONNECT about the broker's
// own state (shutdown, keepalive, takeover, redirect, quota, rate) is not.
func TestWhichEndsMayBeARefusal(t *testing.T) {
	wrap := func(err error) error {
		return fmt.Errorf("conn: read from tcp://127.0.0.1:1883 while reading: %w", err)
	}
	disconnect := func(code codec.ReasonCode) error { return wrap(&DisconnectError{ReasonCode: code}) }
	for _, tc := range []struct {
		name             string
		err              error
		byBroker, refuse bool
	}{
		{"closed", fmt.Errorf("%w (tcp://127.0.0.1:1883, while reading)", conn.ErrServerClosed), true, true},
		{"reset", wrap(syscall.ECONNRESET), true, true},
		{"broken pipe", wrap(syscall.EPIPE), true, true},
		{"pipe closed", wrap(io.ErrClosedPipe), true, true},
		{"not authorized", disconnect(codec.NotAuthorized), true, true},
		{"QoS not supported", disconnect(codec.QoSNotSupported), true, true},
		{"packet too large", disconnect(codec.PacketTooLarge), true, true},
		{"unspecified", disconnect(codec.UnspecifiedError), true, true},
		{"shutting down", disconnect(codec.ServerShuttingDown), true, false},
		{"keepalive", disconnect(codec.KeepAliveTimeout), true, false},
		{"taken over", disconnect(codec.SessionTakenOver), true, false},
		{"use another server", disconnect(codec.UseAnotherServer), true, false},
		{"quota exceeded", disconnect(codec.QuotaExceeded), true, false},
		{"server busy", disconnect(codec.ServerBusy), true, false},
		{"rate", disconnect(codec.MessageRateTooHigh), true, false},
		{"keepalive timeout of the client's", conn.ErrKeepAliveTimeout, false, false},
		{"closed by the client", conn.ErrClosed, false, false},
	} {
		if got := brokerEnded(tc.err); got != tc.byBroker {
			t.Errorf("%s: brokerEnded %v, want %v", tc.name, got, tc.byBroker)
		}
		if !tc.byBroker {
			continue
		}
		if got := refusalEnd(tc.err); got != tc.refuse {
			t.Errorf("%s: refusalEnd %v, want %v", tc.name, got, tc.refuse)
		}
	}
}

package mosquitto

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The trap the helper exists to avoid: as root without `user root`,
// mosquitto runs as user mosquitto, cannot write the test's directory and
// persists nothing. Stop must say so.
func TestStopFailsWithoutDatabase(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can make mosquitto change user")
	}
	b := newBroker(t, &Broker{asMosquittoUser: true})
	err := b.Stop()
	if err == nil || !strings.Contains(err.Error(), "no database") {
		t.Fatalf("Stop = %v, want an error saying the database is missing", err)
	}
	t.Logf("Stop: %v", err)
}

// A mosquitto built without WebSocket support refuses the configuration;
// Start says so, and New skips the test.
func TestNoWebSocketSupport(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "mosquitto")
	script := "#!/bin/sh\necho 'Error: Websockets support not available.' >&2\nexit 3\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	b := &Broker{bin: fake, dir: dir, webSockets: true}
	if err := b.Start(); !errors.Is(err, errNoWebSockets) {
		t.Fatalf("Start = %v, want errNoWebSockets", err)
	}
	if b.Addr() != "" || b.WSURL() != "" {
		t.Fatalf("after a failed start: %q, %q; want no addresses", b.Addr(), b.WSURL())
	}
}

// A WebSocket port taken by someone else is a taken port, which Start
// answers by trying other ports, not a failure.
func TestWebSocketPortTaken(t *testing.T) {
	bin := Require(t, "mosquitto")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addrs, err := freeAddrs(1)
	if err != nil {
		t.Fatal(err)
	}
	b := &Broker{bin: bin, dir: t.TempDir(), webSockets: true, addr: addrs[0], wsAddr: ln.Addr().String()}
	if err := b.startLocked(); !errors.Is(err, errPortTaken) {
		b.stopLocked()
		t.Fatalf("startLocked = %v, want errPortTaken", err)
	}
}

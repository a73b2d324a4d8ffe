package mosquitto_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/conn"
	"github.com/robustmqtt/mqtt/internal/mosquitto"
)

// A restart is graceful, keeps the port and leaves the database behind.
func TestRestartKeepsPortAndDatabase(t *testing.T) {
	b := mosquitto.New(t, "")
	addr := b.Addr()
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	if b.Addr() != addr || b.Starts() != 2 {
		t.Fatalf("after Restart: %s, %d starts; want %s, 2 starts", b.Addr(), b.Starts(), addr)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("the restarted broker does not answer: %v", err)
	}
	c.Close()
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b.Dir(), mosquitto.DBFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("the stopped broker still answers")
	}
	if n := strings.Count(b.Log(), "mosquitto version"); n < 4 {
		t.Fatalf("the log has %d start and stop lines, want 4:\n%s", n, b.Log())
	}
}

// With WebSockets, a second listener speaks MQTT over WebSocket, on a port
// that survives a restart.
func TestWebSockets(t *testing.T) {
	b := mosquitto.NewWith(t, mosquitto.Config{WebSockets: true})
	ws := b.WSURL()
	if !strings.HasPrefix(ws, "ws://127.0.0.1:") || strings.Contains(ws, b.Addr()) {
		t.Fatalf("WSURL() = %q, want ws://127.0.0.1:port on a port of its own", ws)
	}
	connect := func() {
		t.Helper()
		c, err := conn.Open(t.Context(), ws, conn.Config{
			Connect:        &codec.Connect{Version: codec.V5, ClientID: "ws", CleanStart: true},
			ConnectTimeout: 10 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	connect()
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	if b.WSURL() != ws {
		t.Fatalf("after Restart: %s, want %s", b.WSURL(), ws)
	}
	connect()
	if !strings.Contains(b.Log(), "Opening websockets listen socket") {
		t.Fatalf("the log says nothing of the websockets listener:\n%s", b.Log())
	}
	if mosquitto.New(t, "").WSURL() != "" {
		t.Fatal("WSURL() is not empty without WebSockets")
	}
}

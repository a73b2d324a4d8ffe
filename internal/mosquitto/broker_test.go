package mosquitto_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

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

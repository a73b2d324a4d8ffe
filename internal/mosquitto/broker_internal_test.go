package mosquitto

import (
	"os"
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

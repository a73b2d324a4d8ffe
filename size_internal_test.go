package mqtt

import (
	"testing"
	"unsafe"

	"github.com/robustmqtt/mqtt/conn"
)

// Every connected client holds one Client, one session and one conn.Conn,
// and the heap rounds each up to its size class: a field that pushes one
// of them into the next class costs every idle client 64-128 bytes
// (issue 17 keeps an idle client's heap small; bench IdleClient measures
// it). Reorder fields to pack small ones together, or raise the limit
// here knowingly.
func TestPerClientStructsFitTheirSizeClass(t *testing.T) {
	for _, s := range []struct {
		name        string
		size, class uintptr
	}{
		{"Client", unsafe.Sizeof(Client{}), 576},
		{"session", unsafe.Sizeof(session{}), 768},
		{"conn.Conn", unsafe.Sizeof(conn.Conn{}), 416},
	} {
		if s.size > s.class {
			t.Errorf("%s is %d bytes, over its %d-byte size class", s.name, s.size, s.class)
		}
	}
}

package mqtt

import (
	"runtime"
	"testing"

	"github.com/robustmqtt/mqtt/conn"
)

// Every connected client holds one Client, one session, one conn.Conn,
// one settings and one counters, and the heap rounds each up to its size
// class. An object with pointers larger than 512 bytes also carries an
// 8-byte header, so a 576-byte Client took 640 bytes and a 768-byte
// session 896 until this test measured what the heap gives each rather
// than comparing unsafe.Sizeof with the class. A field that pushes one of
// them into the next class costs every idle client 32-128 bytes (issue 17
// keeps an idle client's heap within 8 KiB; bench IdleClient measures
// it). Reorder fields to pack small ones together, or raise the limit
// here knowingly.
func TestPerClientStructsFitTheirSizeClass(t *testing.T) {
	for _, s := range []struct {
		name  string
		new   func() any
		limit uint64
	}{
		{"Client", func() any { return new(Client) }, 576},
		{"session", func() any { return new(session) }, 768},
		{"conn.Conn", func() any { return new(conn.Conn) }, 416},
		{"settings", func() any { return new(settings) }, 384},
		{"counters", func() any { return new(counters) }, 416},
	} {
		if got := heapBytesOf(s.new); got > s.limit {
			t.Errorf("a %s takes %d bytes of heap, over its limit of %d", s.name, got, s.limit)
		}
	}
}

// heapBytesOf says how many bytes of heap one object that newOne
// allocates takes: its size class, with the header if it has one. It
// allocates a batch and reads the runtime's count of bytes allocated
// around it, the least of a few tries (nothing else in the test binary
// allocates meanwhile, but a try may meet a background allocation).
func heapBytesOf(newOne func() any) uint64 {
	const batch = 64
	keep := make([]any, batch)
	least := ^uint64(0)
	for range 5 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := range keep {
			keep[i] = newOne()
		}
		runtime.ReadMemStats(&after)
		least = min(least, (after.TotalAlloc-before.TotalAlloc)/batch)
	}
	runtime.KeepAlive(keep)
	return least
}

package mqtt

import (
	"testing"

	"github.com/robustmqtt/mqtt/conn"
)

// A publish's record is used again (zeroed, into pubOps) only once the
// session and every writer that held a frame of it are done with it, and
// never when something else may still look at it. The record is zeroed as
// it goes back to the pool, so a cleared topic tells that it went.
func TestPublishRecordIsUsedAgainOnlyWhenNobodyHoldsIt(t *testing.T) {
	var s session // letGo uses nothing of the session
	for _, tc := range []struct {
		name string
		// run takes o, acknowledged and recyclable with quiet watchers
		// unless it changes that, through the frames' and the session's
		// steps, and reports whether o may be used again at the end.
		run func(o *pubOp) (want bool)
	}{
		{"acknowledged after the write", func(o *pubOp) bool {
			o.hold()
			o.Written(nil)
			s.letGo(o)
			return true
		}},
		{"acknowledged before the writer said written", func(o *pubOp) bool {
			o.hold()
			s.letGo(o)
			if o.pkt.Topic == "" {
				t.Error("used again while a writer still held its frame")
			}
			o.Written(nil)
			return true
		}},
		{"a PUBREL still queued", func(o *pubOp) bool {
			o.hold()
			o.Written(nil)
			o.hold()
			s.letGo(o)
			if o.pkt.Topic == "" {
				t.Error("used again while its PUBREL was queued")
			}
			(*pubrelTracker)(o).Written(nil)
			return true
		}},
		{"a frame drained from a dead connection", func(o *pubOp) bool {
			o.hold() // queued, never written: nobody lets it go
			s.letGo(o)
			return false
		}},
		{"a frame the writer could not encode", func(o *pubOp) bool {
			o.hold()
			o.c = &Client{ctrl: make(chan any, 1)}
			o.Written(conn.ErrUnencodable) // the session hears of it through o
			s.letGo(o)
			return false
		}},
		{"a watcher fired", func(o *pubOp) bool {
			o.quiet = false
			s.letGo(o)
			return false
		}},
		{"not recyclable (store, Flush, sent again)", func(o *pubOp) bool {
			o.recyclable = false
			s.letGo(o)
			return false
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newPubOp()
			o.qos = int8(AtLeastOnce)
			o.pkt.Topic = "t"
			o.recyclable, o.quiet = true, true
			want := tc.run(o)
			if got := o.pkt.Topic == ""; got != want {
				t.Errorf("used again: %v, want %v (references left %d)", got, want, o.refs.Load())
			}
		})
	}
}

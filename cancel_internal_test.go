package mqtt

import (
	"context"
	"errors"
	"testing"

	"github.com/robustmqtt/mqtt/store"
)

// A publish withdrawn in a turn (superseded, dropped, expired) has, with a
// Store, its result held until the sync that makes its removal durable.
// Its ctx ending later in the same turn (the session takes every request
// waiting on its channel in one turn) must not turn that into "outcome
// unknown: the packet was sent": found by the model test (seed
// 5151932106214612854, 4 runs in 30 before the fix, 0 in 30 after), where
// a message whose expiry and ctx deadline ended at the same instant was
// reported sent, and never was. The turn is played here directly: the
// session takes both requests in one turn whenever they are waiting
// together, which a test outside cannot arrange at will.
func TestCancelAfterWithdrawalInOneTurn(t *testing.T) {
	st := store.NewMemory()
	c := &Client{cfg: &settings{Config: Config{Store: st}, version: 4}, stats: newCounters()}
	s := newSession(c)
	ctx, cancel := context.WithCancel(context.Background())
	o := newPubOp()
	o.init(c, ctx, make(chan error, 1))
	o.qos = int8(AtLeastOnce)
	o.pkt.Topic = "t"
	if err := s.storePublish(o); err != nil {
		t.Fatal(err)
	}
	if err := s.endTurn(); err != nil {
		t.Fatal(err)
	}
	s.queue.push(o)

	superseded := errors.New("superseded")
	s.dropQueued(o, superseded) // held: the removal is not durable yet
	cancel()
	s.cancel(&o.op) // the same turn
	if err := s.endTurn(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-o.result:
		if err != superseded {
			t.Fatalf("result %v, want the withdrawal's (%v)", err, superseded)
		}
	default:
		t.Fatal("no result after the turn's sync")
	}
}

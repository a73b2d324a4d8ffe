package supervisor

import (
	"context"
	"sync"
	"time"
)

// A Group is one run's set of goroutines, its members. Run creates a Group
// for every run and hands it to [Config.Start]; the Group dies with its run.
// It is safe for concurrent use.
//
// One for all: when a member returns, the run ends; the run's ctx is
// cancelled, so every other member should return too, and Run awaits them
// all before it restarts the run or returns.
type Group struct {
	ctx    context.Context         // the run's ctx, cancelled when a member fails or Run's ctx ends
	cancel context.CancelCauseFunc // cancels ctx with the run's error as its cause
	wg     sync.WaitGroup          // the members running on their own goroutines
	// errOnce records err, the run's error: the first one a member (or
	// Start) failed with.
	errOnce sync.Once
	err     error

	upOnce sync.Once
	up     chan struct{} // closed by Up, then read by Run's goroutine
	upAt   time.Time     // written before up is closed

	mu      sync.Mutex // guards members, inline and ended
	members int
	inline  func(ctx context.Context) error // the member Run runs itself, set by GoInline
	ended   bool                            // the run's members have all returned; Go may no longer be called
}

// newGroup makes a run's Group, with its ctx a child of ctx: one context
// per run (errgroup.WithContext and a ctx to cancel on return were two,
// and 0.6 KiB of the heap of every idle MQTT client).
func newGroup(ctx context.Context) *Group {
	ctx, cancel := context.WithCancelCause(ctx)
	return &Group{ctx: ctx, cancel: cancel, up: make(chan struct{})}
}

// Go starts f as a member of the run, in a new goroutine, passing it the
// run's ctx. f should return when that ctx is done.
//
// When f returns, the run ends: an error cancels the run's ctx and becomes
// the run's error, unless another member failed first. A nil return while
// the run's ctx is still live ends the run too, with [ErrRunEnded]: a member
// that leaves without a reason is as broken as one that fails. After the
// run's ctx is done the return value is ignored, nil is the usual answer.
//
// Go may be called by Start, or by a member of the same run while it runs
// (before it returns). Calling it after the run ended, or with a nil f, is a
// programming error and panics. A panic in f is not recovered: like in any
// goroutine, it crashes the program.
func (g *Group) Go(f func(ctx context.Context) error) {
	if f == nil {
		panic("supervisor: Group.Go called with a nil function")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ended {
		panic("supervisor: Group.Go called after its run ended: call it from Start or from a running member")
	}
	g.members++
	g.wg.Go(func() {
		err := f(g.ctx)
		if err == nil && g.ctx.Err() == nil {
			err = ErrRunEnded
		}
		g.fail(err)
	})
}

// GoInline is Go without the goroutine: f becomes a member that Run runs
// on its own goroutine once Start has returned, saving one goroutine per
// run (the MQTT client runs its connection's writer so). Only Start may
// call it, at most once per run. While f runs, Run reports an [Up] that
// Start or a member calls only when f returns; call Up before Start
// returns to have it reported at once.
func (g *Group) GoInline(f func(ctx context.Context) error) {
	if f == nil {
		panic("supervisor: Group.GoInline called with a nil function")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inline != nil || g.ended {
		panic("supervisor: Group.GoInline called twice, or after its run ended: call it once, from Start")
	}
	g.members++
	g.inline = f
}

// runInline runs the inline member, if any, on the caller's goroutine.
func (g *Group) runInline() {
	g.mu.Lock()
	f := g.inline
	g.mu.Unlock()
	if f == nil {
		return
	}
	err := f(g.ctx)
	if err == nil && g.ctx.Err() == nil {
		err = ErrRunEnded
	}
	if err != nil {
		g.fail(err)
	}
}

// Up reports that the run is established (for an MQTT client: CONNACK
// received). Start or any member may call it, from any goroutine; calls
// after the first, and calls once the run's ctx is done, do nothing. Run
// reports it with an [Up] event, and the run counts as stable once it has
// been up for [Config.StableAfter].
func (g *Group) Up() {
	g.upOnce.Do(func() {
		if g.ctx.Err() != nil {
			return // a run that is already failing is not coming up
		}
		g.upAt = time.Now()
		close(g.up)
	})
}

// count returns the number of members started so far.
func (g *Group) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.members
}

// wait awaits every member and returns the run's error (the first member's),
// then forbids further calls to Go.
func (g *Group) wait() error {
	g.wg.Wait()
	g.cancel(g.err) // nil (context.Canceled) if every member returned nil
	g.mu.Lock()
	g.ended = true
	g.mu.Unlock()
	return g.err
}

// fail ends the run with err unless a member has already failed, whose error
// then stays the run's error: it is the cause, and err (Start's error, most
// likely the run's ctx's) the consequence. The first error is recorded
// before the run's ctx is cancelled, so the order is reliable. A nil err
// does nothing.
func (g *Group) fail(err error) {
	if err == nil {
		return
	}
	g.errOnce.Do(func() {
		g.err = err
		g.cancel(err)
	})
}

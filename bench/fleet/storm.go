package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
)

// BucketWidth is the resolution of a storm's timeline.
const BucketWidth = 10 * time.Millisecond

// StormResult is what one broker restart under the fleet showed.
type StormResult struct {
	Strategy string
	Broker   string
	Clients  int
	Down     Duration // asked: between the old broker's exit and the new one's start
	Outage   Duration // measured: from the stop to the new broker listening
	// KeepsSessions says whether the broker keeps persistent sessions
	// across the restart (Mosquitto with persistence) or loses them
	// (mochi: in memory).
	KeepsSessions bool
	// LoadAvg is /proc/loadavg when the broker was stopped and when the
	// storm's accounting ended: the machine is shared.
	LoadAvg [2]string

	// The timeline, as the kernel saw them at the broker's port (the counter): connection
	// attempts, and those refused because no broker listened, per
	// BucketWidth, bucket 0 starting at Start (relative to the stop).
	Start    Duration
	Attempts []int
	Refused  []int

	AttemptsTotal   int // SYNs in the timeline (from Start), each once
	RefusedTotal    int // answered RST: no broker listened
	RetransmitTotal int // SYNs sent again: the first got no answer (a full listen backlog drops them)
	AcceptedTotal   int // answered SYN-ACK
	ResetTotal      int // established connections the broker's side reset
	PeakPerSecond   int // the most attempts within any 1 s
	// The most attempts within any 1 s that a listening broker took (not
	// refused): the load of the reconnections themselves.
	PeakTakenPerSecond int
	Peak100ms          int // the most attempts within one 100 ms bucket

	// The clients' own counts over the storm (Stats): attempts, and those
	// that failed (dial error, reset, timeout) or were refused in CONNACK.
	ClientAttempts, ClientFailed, ClientRefused uint64

	// Back: clients connected again with their session, as of the
	// stop: either the broker had kept it (SessionPresent) or, when it had
	// not, the client subscribed again (the time is when a probe it
	// published to its own topic right after the CONNACK came back).
	Back           int
	SessionPresent int
	SessionLost    int
	T50, T99, T100 Duration
	Relapses       int // connections lost again after being back
	// LostReasons counts the connections lost over the storm (the one each
	// client lost to the stop, and the relapses) by reason (Stats).
	LostReasons map[string]uint64 `json:",omitempty"`
	// AttemptFailures counts the attempts that failed after the stop, by
	// cause (from the Reconnecting events), with an example of each.
	AttemptFailures map[string]int    `json:",omitempty"`
	FailureExamples map[string]string `json:",omitempty"`
	// When the fleet's connections ended, as of the stop (a broker that
	// shuts down gracefully takes a while to close them).
	DroppedFirst, DroppedP50, DroppedLast Duration

	// The publisher's QoS 1 messages to the clients' topics, from Lead
	// before the stop to Tail after the last client was back.
	Published int
	Acked     int
	PubFailed int
	// Owed: acknowledged messages whose target had a session at the broker
	// that took them: every one must arrive. That is all of them when the
	// broker keeps sessions; otherwise those issued after the target
	// subscribed again.
	Owed       int
	Lost       int // owed and never received
	Duplicates int // received more than once (QoS 1 allows it)
	// NotOwed: acknowledged while the target had no session at the broker
	// (published before it subscribed again, or before a stop that lost
	// the session); Arrived: of those, how many came anyway.
	NotOwed, NotOwedArrived int
	Strays                  int // payloads that were not the receiver's
	// LostClients: the clients that missed an owed message; of those,
	// LostClientsPresent had come back with SessionPresent set.
	LostClients, LostClientsPresent int
}

// watcher reads one client's events and messages during the storm.
type watcher struct {
	idx int
	m   *robustMember
}

// backReport is a watcher telling the storm that its client is back.
type backReport struct {
	idx         int
	at          int64 // Unix ns
	present     bool
	resubErrors int
}

// storm restarts the broker under the connected fleet and measures how it
// comes back.
func storm(ctx context.Context, opt Options, s Strategy, b broker, g *counterProc, members []*robustMember) (*StormResult, error) {
	n := len(members)
	r := &StormResult{Strategy: s.Name, Broker: opt.Broker, Clients: n, Down: Duration(opt.Down), KeepsSessions: b.keepsSessions()}
	l := newLedger()

	// The publisher dials from 127.0.0.2, which the counter leaves out:
	// its attempts are not the fleet's. A fixed 100 ms keeps it close
	// behind the restart.
	from := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	pub, err := mqtt.Dial(ctx, mqtt.Config{
		Servers: []string{"tcp://" + b.addr()},
		Dial: func(ctx context.Context, server string) (net.Conn, error) {
			return from.DialContext(ctx, "tcp", strings.TrimPrefix(server, "tcp://"))
		},
		ClientID:  "fleet-publisher",
		KeepAlive: opt.KeepAlive,
		Backoff:   backoff.Constant(100 * time.Millisecond),
		MaxQueued: 1 << 20,
	})
	if err != nil {
		return r, fmt.Errorf("fleet: the publisher: %w", err)
	}
	defer pub.Close()

	// The watchers: one goroutine per client, from now on.
	var stopAt atomic.Int64 // Unix ns; 0 until the broker is stopped
	backs := make(chan backReport, n)
	quit := make(chan struct{})
	qctx, qcancel := context.WithCancel(ctx)
	defer qcancel()
	var ready, done sync.WaitGroup
	watched := make([]watchResult, n)
	for i, m := range members {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			watched[i] = watch(qctx, i, m, l, &stopAt, backs, quit, ready.Done)
		}()
	}
	ready.Wait()
	stats0 := make([]mqtt.ConnectionStats, n)
	for i, m := range members {
		stats0[i] = m.c.Stats().Connections
	}

	// Publish from Lead before the stop until stopPub.
	stopPub := make(chan struct{})
	published := make(chan struct{})
	collected := make(chan struct{})
	pending := make(chan pendingPub, 1<<16)
	go func() {
		defer close(published)
		defer close(pending)
		publish(qctx, pub, l, n, opt.Rate, pending, stopPub)
	}()
	go func() {
		defer close(collected)
		for p := range pending {
			l.result(p.seq, <-p.res)
		}
	}()
	waitFor(opt.Lead)

	r.LoadAvg[0] = loadAvg()
	stopped := time.Now()
	stopAt.Store(stopped.UnixNano())
	fmt.Fprintf(opt.Log, "fleet: stopping the broker under %d clients\n", n)
	_, upAt, err := b.restart(opt.Down)
	if err != nil {
		close(stopPub)
		<-published
		pub.Close()
		<-collected
		close(quit)
		done.Wait()
		return r, fmt.Errorf("fleet: restarting the broker: %w", err)
	}
	r.Outage = Duration(upAt.Sub(stopped))
	fmt.Fprintf(opt.Log, "fleet: the broker listens again after %v\n", r.Outage)

	// Wait for the fleet to come back.
	deadline := time.NewTimer(opt.Wait)
	defer deadline.Stop()
	backAt := make([]int64, n)
	present := make([]bool, n)
	var times []time.Duration
	dumps := time.NewTicker(3 * time.Second)
	defer dumps.Stop()
	ndump := 0
wait:
	for len(times) < n {
		select {
		case <-dumps.C:
			if opt.DumpDir != "" {
				ndump++
				dumpGoroutines(filepath.Join(opt.DumpDir, fmt.Sprintf("fleet-%d.txt", ndump)))
				if opt.Broker == Mochi { // (SIGUSR1 makes Mosquitto save its database)
					syscall.Kill(b.pid(), syscall.SIGUSR1)
				}
			}
		case br := <-backs:
			backAt[br.idx] = br.at
			present[br.idx] = br.present
			times = append(times, time.Duration(br.at-stopped.UnixNano()))
			if br.present {
				r.SessionPresent++
			} else {
				r.SessionLost++
			}
		case <-deadline.C:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	r.Back = len(times)
	slices.Sort(times)
	if len(times) > 0 {
		r.T50 = Duration(times[len(times)/2])
		if k := percentileIndex(n, 0.99); len(times) > k {
			r.T99 = Duration(times[k])
		}
		if len(times) == n {
			r.T100 = Duration(times[n-1])
		}
	}
	fmt.Fprintf(opt.Log, "fleet: %d of %d back (99%% at %v, all at %v)\n", r.Back, n, r.T99, r.T100)

	// Publish a while longer, then account for every message.
	waitFor(opt.Tail)
	close(stopPub)
	<-published
	select {
	case <-collected:
	case <-time.After(opt.Wait):
		fmt.Fprintf(opt.Log, "fleet: some publishes have no result after %v\n", opt.Wait)
	}
	msgs, _ := l.snapshot()
	var owed []int
	for seq, m := range msgs {
		r.Published++
		switch m.state {
		case msgAcked:
			r.Acked++
		case msgFailed:
			r.PubFailed++
			continue
		default:
			continue
		}
		t := m.target
		switch {
		case present[t]:
			owed = append(owed, seq) // the broker kept the session
		case backAt[t] == 0:
			// Not back: what it is owed waits at the broker, if the
			// broker keeps sessions; then it counts as lost.
			if b.keepsSessions() {
				owed = append(owed, seq)
			} else {
				r.NotOwed++
			}
		case m.issued > backAt[t]:
			owed = append(owed, seq) // after the client subscribed again
		default:
			r.NotOwed++ // while the target had no session
		}
	}
	r.Owed = len(owed)
	fmt.Fprintf(opt.Log, "fleet: %d published, %d acknowledged, %d owed; waiting for them\n", r.Published, r.Acked, r.Owed)
	dl := time.NewTimer(opt.Wait)
	r.Lost = l.waitReceived(owed, dl.C)
	dl.Stop()
	close(quit)
	qcancel()
	done.Wait()

	msgs, r.Strays = l.snapshot()
	owedSet := make(map[int]bool, len(owed))
	for _, seq := range owed {
		owedSet[seq] = true
	}
	lostTo := map[int32]bool{}
	for _, seq := range owed {
		if msgs[seq].got == 0 {
			lostTo[msgs[seq].target] = true
		}
	}
	r.LostClients = len(lostTo)
	for t := range lostTo {
		if present[t] {
			r.LostClientsPresent++
		}
	}
	for seq, m := range msgs {
		if m.got > 1 {
			r.Duplicates += int(m.got) - 1
		}
		if m.state == msgAcked && !owedSet[seq] && m.got > 0 {
			r.NotOwedArrived++
		}
	}
	r.AttemptFailures = map[string]int{}
	r.FailureExamples = map[string]string{}
	r.LostReasons = map[string]uint64{}
	for i, m := range members {
		s := m.c.Stats().Connections
		r.ClientAttempts += s.Attempts - stats0[i].Attempts
		r.ClientFailed += s.Failed - stats0[i].Failed
		r.ClientRefused += s.Refused - stats0[i].Refused
		l, l0 := s.Lost, stats0[i].Lost
		for k, v := range map[string]uint64{
			"taken over": l.TakenOver - l0.TakenOver, "keepalive": l.KeepAlive - l0.KeepAlive,
			"server closed": l.ServerClosed - l0.ServerClosed, "disconnected": l.Disconnected - l0.Disconnected,
			"protocol": l.Protocol - l0.Protocol, "network": l.Network - l0.Network,
		} {
			if v > 0 {
				r.LostReasons[k] += v
			}
		}
		w := watched[i]
		r.Relapses += w.relapses
		for k, v := range w.fails {
			r.AttemptFailures[k] += v
			if r.FailureExamples[k] == "" {
				r.FailureExamples[k] = w.examples[k]
			}
		}
	}
	var drops []time.Duration
	for _, w := range watched {
		if w.lostAt != 0 {
			drops = append(drops, time.Duration(w.lostAt-stopped.UnixNano()))
		}
	}
	if len(drops) > 0 {
		slices.Sort(drops)
		r.DroppedFirst, r.DroppedP50, r.DroppedLast = Duration(drops[0]), Duration(drops[len(drops)/2]), Duration(drops[len(drops)-1])
	}
	r.LoadAvg[1] = loadAvg()
	timeline(r, g.since(stopped.Add(-opt.Lead)), stopped, times)
	fmt.Fprintf(opt.Log, "fleet: storm %s: peak %d attempts/s, %d refused, lost %d of %d owed\n", s.Name, r.PeakPerSecond, r.RefusedTotal, r.Lost, r.Owed)
	return r, nil
}

// watchResult is what a watcher saw of its client.
type watchResult struct {
	relapses int               // connections lost after being back
	lostAt   int64             // Unix ns: the first loss after the stop
	fails    map[string]int    // failed attempts after the stop, by cause
	examples map[string]string // one error of each cause
}

// watch is the watcher of client idx until quit. It reports the client
// back once after the stop: on a Connected event with the session present,
// or, without it, once the client has subscribed again (its probe came
// back).
func watch(ctx context.Context, idx int, m *robustMember, l *ledger, stopAt *atomic.Int64, backs chan<- backReport, quit <-chan struct{}, ready func()) (w watchResult) {
	c := m.c
	// Events from before the storm (the first Connected) are stale.
	for len(c.Events()) > 0 {
		<-c.Events()
	}
	ready()
	back := false
	probing := false   // a probe is on its way
	afterLoss := false // the next Reconnecting's error is the loss's, not an attempt's
	for {
		select {
		case <-quit:
			return w
		case msg := <-c.Messages():
			if string(msg.Payload) != probe {
				l.received(idx, msg.Payload)
				continue
			}
			if probing && !back {
				back = true
				backs <- backReport{idx: idx, at: time.Now().UnixNano(), present: false}
			}
			probing = false
		case e := <-c.Events():
			if stopAt.Load() == 0 {
				continue
			}
			switch e.Kind {
			case mqtt.ConnectionLost:
				afterLoss = true
				if back {
					w.relapses++
				} else if w.lostAt == 0 {
					w.lostAt = time.Now().UnixNano()
				}
			case mqtt.Reconnecting:
				if afterLoss {
					afterLoss = false
					continue
				}
				if w.fails == nil {
					w.fails, w.examples = map[string]int{}, map[string]string{}
				}
				k := failureCause(e.Err)
				w.fails[k]++
				if w.examples[k] == "" && e.Err != nil {
					w.examples[k] = e.Err.Error()
				}
			case mqtt.Connected:
				afterLoss = false
				if e.SessionPresent {
					if !back {
						back = true
						backs <- backReport{idx: idx, at: time.Now().UnixNano(), present: true}
					}
					continue
				}
				// The broker lost the session, and the client subscribes
				// again by itself, before anything new goes out. A probe
				// to its own topic, published now, reaches the broker
				// after that SUBSCRIBE: when it comes back, the
				// subscription is in place. (A SUBSCRIBE of our own
				// would double the broker's busiest work in the storm.)
				c.PublishAsync(ctx, mqtt.Message{Topic: m.topic, Payload: []byte(probe), QoS: 1})
				probing = true
			}
		}
	}
}

// probe is the payload of a watcher's probe.
const probe = "fleet-probe"

// failureCause sorts why a connection attempt failed.
func failureCause(err error) string {
	var ce *mqtt.ConnectError
	var ne net.Error
	switch {
	case err == nil:
		return "none"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused (RST)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no local port"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "no descriptor"
	case errors.As(err, &ce):
		return "refused in CONNACK"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
		return "reset or closed"
	}
	return "other"
}

type pendingPub struct {
	seq int
	res <-chan error
}

// publish sends QoS 1 messages at rate per second, round robin over the n
// clients' topics, until stop.
func publish(ctx context.Context, pub *mqtt.Client, l *ledger, n, rate int, pending chan<- pendingPub, stop <-chan struct{}) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	sent := 0
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		due := int(float64(rate) * time.Since(start).Seconds())
		for ; sent < due; sent++ {
			target := sent % n
			seq, payload := l.issue(target)
			res := pub.PublishAsync(ctx, mqtt.Message{Topic: topicOf(target), Payload: payload, QoS: 1})
			pending <- pendingPub{seq, res}
		}
	}
}

// timeline fills r's timeline from the counter's events.
func timeline(r *StormResult, events []tcpEvent, stopped time.Time, backTimes []time.Duration) {
	if len(events) == 0 {
		return
	}
	from := events[0].at
	r.Start = Duration(time.Duration(from - stopped.UnixNano()))
	// Up to the last client back and a second more, or the last event.
	end := events[len(events)-1].at
	if len(backTimes) > 0 {
		end = min(end, stopped.Add(backTimes[len(backTimes)-1]+time.Second).UnixNano())
	}
	nb := int((end-from)/int64(BucketWidth)) + 1
	r.Attempts = make([]int, nb)
	r.Refused = make([]int, nb)
	for _, e := range events {
		i := int((e.at - from) / int64(BucketWidth))
		switch e.kind {
		case evAttempt:
			if i < nb {
				r.Attempts[i]++
			}
			r.AttemptsTotal++
		case evRefused:
			if i < nb {
				r.Refused[i]++
			}
			r.RefusedTotal++
		case evRetransmit:
			r.RetransmitTotal++
		case evAccepted:
			r.AcceptedTotal++
		case evReset:
			r.ResetTotal++
		}
	}
	per := int(time.Second / BucketWidth)
	sum, taken := 0, 0
	for i, a := range r.Attempts {
		sum += a
		taken += a - r.Refused[i]
		if i >= per {
			sum -= r.Attempts[i-per]
			taken -= r.Attempts[i-per] - r.Refused[i-per]
		}
		r.PeakPerSecond = max(r.PeakPerSecond, sum)
		r.PeakTakenPerSecond = max(r.PeakTakenPerSecond, taken)
	}
	per100 := int(100 * time.Millisecond / BucketWidth)
	for i := 0; i < nb; i += per100 {
		s := 0
		for _, a := range r.Attempts[i:min(i+per100, nb)] {
			s += a
		}
		r.Peak100ms = max(r.Peak100ms, s)
	}
}

package fleet

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"testing"
	"time"

	"github.com/robustmqtt/mqtt/backoff"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The brokers and the counter are this test binary again.
	if IsChild() {
		os.Exit(ServeChild())
	}
	goleak.VerifyTestMain(m)
}

// quick are the storm's three strategies at a tenth of their delays, so a
// storm takes a second, not tens.
var quick = []Strategy{
	{Name: "full jitter", Backoff: backoff.Exponential{Initial: 100 * time.Millisecond, Max: time.Second}},
	{Name: "fixed 200 ms", Backoff: backoff.Constant(200 * time.Millisecond)},
	{Name: "no jitter", Backoff: backoff.Exponential{Initial: 100 * time.Millisecond, Max: time.Second, Jitter: backoff.NoJitter}},
}

func quickOptions(broker string) Options {
	return Options{
		Clients:   50,
		Broker:    broker,
		Client:    Robust,
		KeepAlive: 2 * time.Second,
		Storms:    quick,
		Down:      150 * time.Millisecond,
		Rate:      500,
		Lead:      200 * time.Millisecond,
		Tail:      200 * time.Millisecond,
		Wait:      30 * time.Second,
		Log:       testLog{t: nil},
	}
}

// TestStormMochi runs the harness end to end, small: 50 clients, the
// broker killed under them three times, every owed message accounted for.
func TestStormMochi(t *testing.T) {
	opt := quickOptions(Mochi)
	opt.Log = testLog{t}
	r, err := Run(t.Context(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if r.Fleet.Connected != opt.Clients || r.Fleet.GoroutinesPerClient <= 0 {
		t.Errorf("fleet: %+v", r.Fleet)
	}
	if len(r.Storms) != len(quick) {
		t.Fatalf("%d storms, want %d", len(r.Storms), len(quick))
	}
	for _, s := range r.Storms {
		checkStorm(t, s, opt.Clients)
		// mochi keeps sessions in memory: the restart loses every one, and
		// the clients subscribe again.
		if s.SessionLost != opt.Clients {
			t.Errorf("%s: %d sessions lost, want all %d", s.Strategy, s.SessionLost, opt.Clients)
		}
	}
	var png1 bytes.Buffer
	if err := Plot(&png1, r); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&png1); err != nil {
		t.Fatal(err)
	}
}

// TestStormMosquitto restarts Mosquitto, with persistence, under the
// fleet once: every session survives.
func TestStormMosquitto(t *testing.T) {
	opt := quickOptions(Mosquitto)
	if _, err := os.Stat("/usr/sbin/mosquitto"); err != nil {
		t.Skip("no /usr/sbin/mosquitto")
	}
	opt.Log = testLog{t}
	opt.Storms = quick[1:2]
	r, err := Run(t.Context(), opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.Storms {
		checkStorm(t, s, opt.Clients)
		if s.SessionPresent != opt.Clients {
			t.Errorf("%s: %d came back with their session, want all %d", s.Strategy, s.SessionPresent, opt.Clients)
		}
	}
}

func checkStorm(t *testing.T, s StormResult, clients int) {
	t.Helper()
	if s.Back != clients || s.T100 <= 0 || s.T99 > s.T100 {
		t.Errorf("%s: %d of %d back, t99 %v, t100 %v", s.Strategy, s.Back, clients, s.T99, s.T100)
	}
	if s.Acked == 0 || s.Owed == 0 || s.Lost != 0 || s.Strays != 0 {
		t.Errorf("%s: published %d, acked %d, owed %d, lost %d, strays %d", s.Strategy, s.Published, s.Acked, s.Owed, s.Lost, s.Strays)
	}
	if s.AttemptsTotal == 0 {
		t.Skipf("%s: no timeline (the counter needs CAP_NET_RAW)", s.Strategy)
	}
	// The counter saw every attempt the clients made, no more.
	if uint64(s.AttemptsTotal) != s.ClientAttempts {
		t.Errorf("%s: the counter saw %d attempts, the clients made %d", s.Strategy, s.AttemptsTotal, s.ClientAttempts)
	}
	if s.PeakPerSecond <= 0 || len(s.Attempts) == 0 {
		t.Errorf("%s: peak %d/s, %d buckets", s.Strategy, s.PeakPerSecond, len(s.Attempts))
	}
}

// TestPeers connects a few clients of every kind and measures them idle.
func TestPeers(t *testing.T) {
	for _, kind := range Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			r, err := Run(ctx, Options{Clients: 20, Broker: Mochi, Client: kind, KeepAlive: time.Second, Idle: 500 * time.Millisecond, Log: testLog{t}})
			if err != nil {
				t.Fatal(err)
			}
			f := r.Fleet
			if f.Connected != 20 || f.GoroutinesPerClient < 1 || f.IdleWindow <= 0 || f.LeftGoroutines > 0 {
				t.Errorf("%+v", f)
			}
		})
	}
}

func TestStrategies(t *testing.T) {
	s, err := ParseStrategies("default, fixed2s,nojitter")
	if err != nil || len(s) != 3 {
		t.Fatalf("%v, %v", s, err)
	}
	if _, err := ParseStrategies("lockstep"); err == nil {
		t.Error("no error for an unknown strategy")
	}
	// No jitter: 1 s, 2 s, 4 s; the fixed one: 2 s each time.
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second} {
		if d, _ := s[2].Backoff.Next(backoff.Attempt{N: n}); d != want {
			t.Errorf("no jitter, retry %d: %v, want %v", n, d, want)
		}
		if d, _ := s[1].Backoff.Next(backoff.Attempt{N: n}); d != 2*time.Second {
			t.Errorf("fixed, retry %d: %v", n, d)
		}
	}
}

func TestTimeline(t *testing.T) {
	stop := time.Unix(100, 0)
	at := func(d time.Duration) int64 { return stop.Add(d).UnixNano() }
	var ev []tcpEvent
	for i := range 30 { // 30 attempts within 100 ms, refused
		ev = append(ev, tcpEvent{evAttempt, at(time.Second + time.Duration(i)*3*time.Millisecond)}, tcpEvent{evRefused, at(time.Second + time.Duration(i)*3*time.Millisecond)})
	}
	for i := range 10 { // then 10 over 2 s from 1.5 s, taken
		ev = append(ev, tcpEvent{evAttempt, at(1500*time.Millisecond + time.Duration(i)*200*time.Millisecond)}, tcpEvent{evAccepted, at(1500*time.Millisecond + time.Duration(i)*200*time.Millisecond)})
	}
	ev = append(ev, tcpEvent{evRetransmit, at(3 * time.Second)})
	var r StormResult
	timeline(&r, ev, stop, nil)
	if r.AttemptsTotal != 40 || r.RefusedTotal != 30 || r.AcceptedTotal != 10 || r.RetransmitTotal != 1 {
		t.Errorf("totals: %+v", r)
	}
	if r.Peak100ms != 30 || r.PeakPerSecond != 33 || r.PeakTakenPerSecond != 5 {
		t.Errorf("peaks: %d per 100 ms, %d per s, %d taken per s; want 30, 33, 5", r.Peak100ms, r.PeakPerSecond, r.PeakTakenPerSecond)
	}
	if r.Start != Duration(time.Second) {
		t.Errorf("start %v", r.Start)
	}
}

// testLog sends the harness's progress to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) {
	if l.t != nil {
		l.t.Helper()
		l.t.Log(string(bytes.TrimRight(b, "\n")))
	}
	return len(b), nil
}

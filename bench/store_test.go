package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/store"
)

// What Config.Store costs. One robustmqtt client (MQTT 3.1.1) publishes
// 64-byte QoS 1 messages to the broker in the child process, 100 in flight
// in all, shared by 1, 16 or 64 goroutines, with each kind of store:
//
//	none         no Store: the session lives in memory only
//	memory       store.NewMemory(): records copied into a map, Sync a no-op
//	file         store.Open on b.TempDir(): every commit writes and fsyncs
//	file-nosync  the same with Options.NoSync: the writes without the fsync
//
// The session commits once per turn of its loop: every publish it
// accepted meanwhile shares one Sync (group commit). syncs/msg is Store.Sync
// calls per message, counted by a wrapper: with a File, each is one write
// and one fsync (File.Sync does nothing when nothing changed, which the
// client never asks for).

// storeKinds are the stores compared, by the name in store=....
var storeKinds = []string{"none", "memory", "file", "file-nosync"}

// storePublishers are the goroutines publishing through one client.
var storePublishers = []int{1, 16, 64}

// BenchmarkStorePublish is QoS 1, 100 in flight, by store kind and number
// of publishing goroutines. One op is one message: the benchmark loop hands
// each to one of the goroutines over an unbuffered channel, and each
// goroutine keeps its share of the 100 results (100/n, the remainder spread)
// and waits for its oldest before its next PublishAsync. msgs/s is b.N over
// the elapsed time, including the wait for the last results; cpu-ns/msg and
// allocs/op are this process's (the client's; the broker is in the child).
func BenchmarkStorePublish(b *testing.B) {
	addr := brokerAddr(b)
	for _, kind := range storeKinds {
		for _, n := range storePublishers {
			b.Run(fmt.Sprintf("store=%s/publishers=%d", kind, n), func(b *testing.B) {
				benchStorePublish(b, addr, kind, n)
			})
		}
	}
}

func benchStorePublish(b *testing.B, addr, kind string, publishers int) {
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	defer cancel()
	st, p := startStorePub(ctx, b, addr, kind, publishers)
	syncs := st.syncs.Load()
	cpu := startCPU()
	b.ReportAllocs()
	for b.Loop() {
		p.jobs <- struct{}{}
	}
	b.StartTimer() // the wait for the last results is part of the run
	err := p.finish()
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	report(b, cpu)
	b.ReportMetric(float64(st.syncs.Load()-syncs)/float64(b.N), "syncs/msg")
}

// startStorePub opens a store of kind in a temporary directory and starts
// a storePub with that many publishers on it; both are closed when tb ends.
func startStorePub(ctx context.Context, tb testing.TB, addr, kind string, publishers int) (*countingStore, *storePub) {
	tb.Helper()
	st, err := openStore(kind, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(st.close) // after the client's close, registered below
	p, err := newStorePub(ctx, addr, st, publishers)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.close)
	return st, p
}

// countingStore is the Store under test, counting Sync calls; nil Store
// for "none".
type countingStore struct {
	store.Store
	syncs atomic.Int64
	file  *store.File // closed after the client
}

func (s *countingStore) Sync() error {
	s.syncs.Add(1)
	return s.Store.Sync()
}

// openStore opens a store of kind, a file one in dir.
func openStore(kind, dir string) (*countingStore, error) {
	s := &countingStore{}
	switch kind {
	case "none":
		return s, nil
	case "memory":
		s.Store = store.NewMemory()
		return s, nil
	case "file", "file-nosync":
		f, err := store.Open(filepath.Join(dir, "session"), store.Options{NoSync: kind == "file-nosync"})
		if err != nil {
			return nil, err
		}
		s.Store, s.file = f, f
		return s, nil
	}
	return nil, fmt.Errorf("bench: no store %q", kind)
}

// config is the client's Store: nil for "none".
func (s *countingStore) config() store.Store {
	if s.Store == nil {
		return nil
	}
	return s
}

// records counts the records left in the store, but for the one that
// names the session's client (key 0), which stays for the session's life.
func (s *countingStore) records() (int, error) {
	n := 0
	if s.Store == nil {
		return 0, nil
	}
	err := s.Store.Load(func(key uint64, _ []byte) error {
		if key != 0 {
			n++
		}
		return nil
	})
	return n, err
}

func (s *countingStore) close() {
	if s.file != nil {
		s.file.Close()
	}
}

// storePub is one client and its publishing goroutines; each message to
// publish is a value on jobs.
type storePub struct {
	c    *mqtt.Client
	jobs chan struct{}
	wg   sync.WaitGroup
	errs chan error // each goroutine's first error, or nil, once jobs is closed
	done bool
}

func newStorePub(ctx context.Context, addr string, st *countingStore, publishers int) (*storePub, error) {
	c, err := dialOurs(ctx, robust, addr, func(cfg *mqtt.Config) { cfg.Store = st.config() })
	if err != nil {
		return nil, err
	}
	p := &storePub{c: c, jobs: make(chan struct{}), errs: make(chan error, publishers)}
	msg := mqtt.Message{Topic: topic, Payload: payload, QoS: mqtt.AtLeastOnce}
	for i := range publishers {
		share := window / publishers
		if i < window%publishers {
			share++
		}
		win := newRing(max(share, 1), func(ch <-chan error) error { return <-ch })
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			var first error
			keep := func(err error) {
				if first == nil {
					first = err
				}
			}
			for range p.jobs {
				keep(win.room())
				// context.Background, as in BenchmarkPublish.
				win.push(c.PublishAsync(context.Background(), msg))
			}
			keep(win.drain())
			p.errs <- first
		}()
	}
	return p, nil
}

// finish stops the goroutines once they have every result, and returns the
// first error.
func (p *storePub) finish() error {
	close(p.jobs)
	p.done = true
	p.wg.Wait()
	var err error
	for range cap(p.errs) {
		err = errors.Join(err, <-p.errs)
	}
	return err
}

// close stops the goroutines and the client; it may be called again.
func (p *storePub) close() {
	if !p.done {
		p.finish()
	}
	p.c.Close()
}

// TestStorePublishers checks BenchmarkStorePublish's harness: with every
// store, every message is acknowledged and the store is empty after.
func TestStorePublishers(t *testing.T) {
	addr := brokerAddr(t)
	for _, kind := range storeKinds {
		t.Run("store="+kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			st, p := startStorePub(ctx, t, addr, kind, 16)
			for range smokeMessages {
				p.jobs <- struct{}{}
			}
			if err := p.finish(); err != nil {
				t.Fatal(err)
			}
			p.close() // the client's session goroutine uses the store until it stops
			if n, err := st.records(); err != nil || n != 0 {
				t.Fatalf("%d records left in the store (%v); want none", n, err)
			}
			if kind != "none" && st.syncs.Load() == 0 {
				t.Fatal("the client never synced the store")
			}
		})
	}
}

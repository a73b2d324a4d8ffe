package store_test

import (
	"fmt"
	"testing"

	"github.com/robustmqtt/mqtt/store"
)

// BenchmarkPutSync measures group commit: one op is a batch of Puts of
// 100-byte values followed by one Sync, as the client does for the
// publishes accepted between two fsyncs. Each Put also deletes the record
// put 1000 before it (an acknowledged message), so the live set stays at
// 1000 records and the log is compacted now and then, as in use.
// ns/record is the cost per message.
func BenchmarkPutSync(b *testing.B) {
	for _, bc := range []struct {
		name string
		new  func(b *testing.B) store.Store
	}{
		{"File", func(b *testing.B) store.Store { return open(b, newPath(b), store.Options{}) }},
		{"File-NoSync", func(b *testing.B) store.Store { return open(b, newPath(b), store.Options{NoSync: true}) }},
		{"Memory", func(b *testing.B) store.Store { return store.NewMemory() }},
	} {
		for _, batch := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/batch=%d", bc.name, batch), func(b *testing.B) {
				s := bc.new(b)
				defer s.Close()
				value := make([]byte, 100)
				b.ReportAllocs()
				b.SetBytes(int64(batch * len(value)))
				key := uint64(1000)
				for b.Loop() {
					for range batch {
						if err := s.Put(key, value); err != nil {
							b.Fatal(err)
						}
						if err := s.Delete(key - 1000); err != nil {
							b.Fatal(err)
						}
						key++
					}
					if err := s.Sync(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/record")
			})
		}
	}
}

// BenchmarkOpenLoad measures a restart: Open (recovery reads and checks the
// whole log) and Load of 100,000 records of 100 bytes (12.1 MB of log).
func BenchmarkOpenLoad(b *testing.B) {
	const n = 100_000
	p := newPath(b)
	s := open(b, p, store.Options{NoSync: true})
	value := make([]byte, 100)
	for i := range uint64(n) {
		must(b, s.Put(i, value))
	}
	must(b, s.Close())
	b.ReportAllocs()
	for b.Loop() {
		s := open(b, p, store.Options{})
		count := 0
		must(b, s.Load(func(uint64, []byte) error { count++; return nil }))
		must(b, s.Close())
		if count != n {
			b.Fatalf("loaded %d records", count)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

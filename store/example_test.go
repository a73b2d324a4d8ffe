package store_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/robustmqtt/mqtt/store"
)

// A session's state survives closing the store (or a crash) and opening it
// again.
func Example() {
	dir, err := os.MkdirTemp("", "store-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "session.db")

	s, err := store.Open(path, store.Options{})
	if err != nil {
		log.Fatal(err)
	}
	// Three messages accepted, then one fsync for all three.
	s.Put(1, []byte("window broken"))
	s.Put(2, []byte("door open"))
	s.Put(3, []byte("door closed"))
	if err := s.Sync(); err != nil {
		log.Fatal(err)
	}
	s.Delete(2) // acknowledged
	s.Close()

	s, err = store.Open(path, store.Options{})
	if err != nil {
		log.Fatal(err) // errors.Is(err, store.ErrCorrupt): move the file aside
	}
	defer s.Close()
	s.Load(func(key uint64, value []byte) error {
		fmt.Printf("%d: %s\n", key, value)
		return nil
	})
	// Output:
	// 1: window broken
	// 3: door closed
}

// A Put that would exceed the limit fails and changes nothing.
func ExampleErrFull() {
	s := store.NewMemoryLimit(100)
	fmt.Println(s.Put(1, make([]byte, 80)))
	err := s.Put(2, make([]byte, 80))
	fmt.Println(err)
	fmt.Println(s.Len(), s.Size())
	// Output:
	// <nil>
	// store: full: putting 80 bytes under key 2 would make 176 bytes of live data, over the limit of 100; delete records first or raise the limit
	// 1 88
}

package mqtt

import "iter"

// flightTable holds the session's flights by packet identifier. A flight
// sits in the slot its identifier indexes (identifier modulo the number
// of slots), or, when another flight holds that slot, in a small overflow
// map. The session hands identifiers out in turn, so the flights in
// flight at once, fewer than half the slots, all have slots of their own
// unless one stayed a whole round of identifiers: a put, lookup or delete
// is one load and compare (the map it replaces hashed every identifier, 6%
// of the CPU of a pipelined QoS 1 publish against a broker that
// acknowledges at once; linear probing scanned the whole run of
// consecutive flights on every delete). The zero value is an empty table;
// it allocates on the first put and lets a large table go once it is
// empty.
type flightTable struct {
	slots    []flightSlot       // a power of two long, or none
	overflow map[uint16]*flight // flights whose slot another flight holds
	n        int                // flights held
}

type flightSlot struct {
	id uint16 // 0: free (no flight has identifier 0)
	f  *flight
}

// minFlightSlots is the size of a table's first allocation.
const minFlightSlots = 16

// maxKeptFlightSlots is the largest table kept once empty (16 KiB): a
// pipelined publisher empties its table between windows (its whole
// window is acknowledged at once), and making it again every time cost
// more than the map it replaces.
const maxKeptFlightSlots = 1024

func (t *flightTable) len() int { return t.n }

// get returns the flight with identifier id, or nil.
func (t *flightTable) get(id uint16) *flight {
	if t.n == 0 {
		return nil
	}
	if s := &t.slots[int(id)&(len(t.slots)-1)]; s.id == id {
		return s.f
	}
	return t.overflow[id]
}

// put stores f under id, replacing the flight there if any. id is not 0
// and f not nil.
func (t *flightTable) put(id uint16, f *flight) {
	if 2*(t.n+1) > len(t.slots) {
		t.grow()
	}
	s := &t.slots[int(id)&(len(t.slots)-1)]
	switch {
	case s.id == id:
		s.f = f
		return
	case t.overflow[id] != nil:
		t.overflow[id] = f
		return
	case s.id == 0:
		*s = flightSlot{id: id, f: f}
	default:
		if t.overflow == nil {
			t.overflow = make(map[uint16]*flight)
		}
		t.overflow[id] = f
	}
	t.n++
}

// grow doubles the table (or makes its first slots) and places every
// flight again.
func (t *flightTable) grow() {
	old, over := t.slots, t.overflow
	t.slots = make([]flightSlot, max(minFlightSlots, 2*len(old)))
	t.overflow = nil
	t.n = 0
	for _, s := range old {
		if s.id != 0 {
			t.put(s.id, s.f)
		}
	}
	for id, f := range over {
		t.put(id, f)
	}
}

// del removes the flight with identifier id, if any.
func (t *flightTable) del(id uint16) {
	if t.n == 0 {
		return
	}
	if s := &t.slots[int(id)&(len(t.slots)-1)]; s.id == id {
		*s = flightSlot{}
	} else if _, ok := t.overflow[id]; ok {
		delete(t.overflow, id)
	} else {
		return
	}
	t.n--
	if t.n == 0 && (len(t.slots) > maxKeptFlightSlots || t.overflow != nil) {
		t.slots, t.overflow = nil, nil // a burst is over: let its table go
	}
}

// all yields every flight, in no particular order. The table must not
// change while it runs.
func (t *flightTable) all() iter.Seq[*flight] {
	return func(yield func(*flight) bool) {
		for _, s := range t.slots {
			if s.id != 0 && !yield(s.f) {
				return
			}
		}
		for _, f := range t.overflow {
			if !yield(f) {
				return
			}
		}
	}
}

// putFlight stores f under id in the session's flight table, and its size
// in Client.awaited (read by conn.Config.MayLend without the session's
// lock, which is why no other code puts or deletes flights).
func (s *session) putFlight(id uint16, f *flight) {
	s.flights.put(id, f)
	s.c.awaited.Store(int32(s.flights.len()))
}

// delFlight removes the flight with identifier id, as putFlight stores.
func (s *session) delFlight(id uint16) {
	s.flights.del(id)
	s.c.awaited.Store(int32(s.flights.len()))
}

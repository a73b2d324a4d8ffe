package mqtt

import "iter"

// flightTable holds the session's flights by packet identifier. It is a
// hash table with open addressing whose hash is the identifier itself:
// the session hands identifiers out in turn, so those in flight at once
// mostly sit in consecutive slots and a lookup is one or two loads (the
// map it replaces hashed every identifier, 6% of the CPU of a pipelined
// QoS 1 publish against a broker that acknowledges at once). Collisions
// probe the next slots; a removal moves later entries of the same probe
// run back, so no tombstones are left. At most half the slots are used.
// The zero value is an empty table; it allocates on the first put and
// lets its slots go when it is empty again.
type flightTable struct {
	slots []flightSlot // a power of two long, or none
	n     int          // slots in use
}

type flightSlot struct {
	id uint16 // 0: free (no flight has identifier 0)
	f  *flight
}

// minFlightSlots is the size of a table's first allocation.
const minFlightSlots = 16

func (t *flightTable) len() int { return t.n }

// get returns the flight with identifier id, or nil.
func (t *flightTable) get(id uint16) *flight {
	if t.n == 0 {
		return nil
	}
	mask := len(t.slots) - 1
	for i := int(id) & mask; ; i = (i + 1) & mask {
		switch t.slots[i].id {
		case id:
			return t.slots[i].f
		case 0:
			return nil
		}
	}
}

// put stores f under id, replacing the flight there if any. id is not 0
// and f not nil.
func (t *flightTable) put(id uint16, f *flight) {
	if 2*(t.n+1) > len(t.slots) {
		t.grow()
	}
	mask := len(t.slots) - 1
	i := int(id) & mask
	for t.slots[i].id != 0 && t.slots[i].id != id {
		i = (i + 1) & mask
	}
	if t.slots[i].id == 0 {
		t.n++
	}
	t.slots[i] = flightSlot{id: id, f: f}
}

// grow doubles the table (or makes its first slots) and places every
// flight again.
func (t *flightTable) grow() {
	old := t.slots
	t.slots = make([]flightSlot, max(minFlightSlots, 2*len(old)))
	t.n = 0
	for _, s := range old {
		if s.id != 0 {
			t.put(s.id, s.f)
		}
	}
}

// del removes the flight with identifier id, if any.
func (t *flightTable) del(id uint16) {
	if t.n == 0 {
		return
	}
	mask := len(t.slots) - 1
	i := int(id) & mask
	for t.slots[i].id != id {
		if t.slots[i].id == 0 {
			return
		}
		i = (i + 1) & mask
	}
	t.n--
	if t.n == 0 && len(t.slots) > 4*minFlightSlots {
		t.slots = nil // a burst is over: let its table go
		return
	}
	// Close the gap: a later entry of the run whose home slot is not
	// between the gap and itself would no longer be found past the gap.
	for j := (i + 1) & mask; t.slots[j].id != 0; j = (j + 1) & mask {
		home := int(t.slots[j].id) & mask
		if (j-home)&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = flightSlot{}
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
	}
}

package mqtt

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// checkFlightTable compares t with want, the map it stands for: the same
// flights by identifier, the same count, every flight listed once.
func checkFlightTable(t *testing.T, tab *flightTable, want map[uint16]*flight, step string) {
	t.Helper()
	if tab.len() != len(want) {
		t.Fatalf("%s: len %d, want %d", step, tab.len(), len(want))
	}
	for id, f := range want {
		if got := tab.get(id); got != f {
			t.Fatalf("%s: get(%d) = %p, want %p", step, id, got, f)
		}
	}
	var listed []*flight
	for f := range tab.all() {
		listed = append(listed, f)
	}
	if len(listed) != len(want) {
		t.Fatalf("%s: all listed %d flights, want %d", step, len(listed), len(want))
	}
	for _, f := range want {
		if !slices.Contains(listed, f) {
			t.Fatalf("%s: all did not list a flight", step)
		}
	}
}

// Random puts, deletes and lookups, checked against a map after every
// step: identifiers handed out in turn with some acknowledged out of
// order (the session's pattern), and identifiers drawn from a few that
// share their low bits (one slot, the others in the overflow map).
func TestFlightTableAgainstAMap(t *testing.T) {
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 7))
		var tab flightTable
		want := map[uint16]*flight{}
		next := uint16(r.IntN(65535))
		clustered := seed%3 == 0
		for step := range 600 {
			var id uint16
			if clustered {
				id = uint16(r.IntN(8))*64 + uint16(r.IntN(3)) // 0 excluded below
			} else if r.IntN(3) > 0 || len(want) == 0 {
				next++
				id = next
			} else {
				for k := range want { // any flight in flight
					id = k
					break
				}
			}
			if id == 0 {
				continue
			}
			switch op := r.IntN(10); {
			case op < 5:
				f := &flight{seq: uint64(step)}
				tab.put(id, f)
				want[id] = f
			case op < 9:
				tab.del(id)
				delete(want, id)
			default:
				if got := tab.get(id); got != want[id] {
					t.Fatalf("seed %d step %d: get(%d) = %p, want %p", seed, step, id, got, want[id])
				}
			}
			if step%7 == 0 || len(want) < 4 {
				checkFlightTable(t, &tab, want, "step")
			}
		}
		checkFlightTable(t, &tab, want, "end")
		for id := range want {
			tab.del(id)
		}
		checkFlightTable(t, &tab, map[uint16]*flight{}, "emptied")
	}
}

// A table that grew for a burst lets its slots go once empty; one that
// stays small keeps them.
func TestFlightTableLetsABurstGo(t *testing.T) {
	var tab flightTable
	const burst = maxKeptFlightSlots
	for id := range uint16(burst) {
		tab.put(id+1, &flight{})
	}
	if len(tab.slots) < 2*burst {
		t.Fatalf("%d slots for %d flights, want at least twice as many", len(tab.slots), burst)
	}
	for id := range uint16(burst) {
		tab.del(id + 1)
	}
	if tab.slots != nil || tab.len() != 0 || tab.get(1) != nil {
		t.Fatalf("emptied after a burst: %d slots, len %d", len(tab.slots), tab.len())
	}
	tab.put(65535, &flight{})
	tab.del(65535)
	if len(tab.slots) != minFlightSlots {
		t.Fatalf("a small table has %d slots after it emptied, want its %d kept", len(tab.slots), minFlightSlots)
	}
}

package mqtttest

import (
	"slices"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// book.sort must give mochi's resend sort (by the low 16 bits of
// Created) the order in which messages were queued, whatever their packet
// identifiers, across a wrap of the low 16 bits of the clock.
func TestBookSort(t *testing.T) {
	tests := []struct {
		name   string
		queued []uint16 // in the order they were queued
		done   []uint16 // then acknowledged
		extra  []uint16 // in the session with no number
		want   []uint16
		now    int64
	}{
		{"one", []uint16{7}, nil, nil, []uint16{7}, 1_700_000_000},
		{"in identifier order", []uint16{1, 2, 3, 4, 5}, nil, nil, []uint16{1, 2, 3, 4, 5}, 1_700_000_000},
		{"identifier wrap", []uint16{65534, 65535, 1, 2}, nil, nil, []uint16{65534, 65535, 1, 2}, 1_700_000_000},
		{"counting again after a reconnect", []uint16{900, 901, 1, 2, 3}, []uint16{2}, nil, []uint16{900, 901, 1, 3}, 1_700_000_000},
		{"unnumbered first", []uint16{3, 1}, nil, []uint16{9, 8}, []uint16{8, 9, 3, 1}, 1_700_000_000},
		{"clock low bits wrap", []uint16{4, 3, 2, 1}, nil, nil, []uint16{4, 3, 2, 1}, 65536*26000 + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q book
			in := mqtt.NewInflights()
			for _, id := range tt.queued {
				in.Set(packets.Packet{PacketID: id, Created: tt.now}) // all in one second
				q.queued("c", id)
			}
			for _, id := range tt.done {
				in.Delete(id)
				q.done("c", id, in)
			}
			for _, id := range tt.extra {
				in.Set(packets.Packet{PacketID: id, Created: tt.now})
			}
			q.queued("other", 1) // another session's numbers do not interfere

			// A done reported after a new message took the identifier.
			if len(tt.queued) > 0 {
				q.done("c", tt.queued[len(tt.queued)-1], in)
			}

			q.sort("c", in, tt.now)
			var got []uint16
			for _, pk := range in.GetAll(false) {
				got = append(got, pk.PacketID)
				if pk.Created > tt.now || tt.now-pk.Created > int64(2*len(tt.want)) {
					t.Errorf("id %d: Created = %d, want within %d seconds before %d", pk.PacketID, pk.Created, 2*len(tt.want), tt.now)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("resend order %v, want %v", got, tt.want)
			}

			q.forget("c")
			if q.sessions["c"] != nil || len(q.sessions["other"].queued) != 1 {
				t.Errorf("after forget: %v", q.sessions)
			}
		})
	}
}

// book.dropUnrouted removes the PUBACKs and the PUBRECs of messages from the
// client that were never routed, and nothing else.
func TestBookDropUnrouted(t *testing.T) {
	var q book
	in := mqtt.NewInflights()
	add := func(typ byte, id uint16) {
		in.Set(packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}, PacketID: id})
	}
	add(packets.Publish, 1) // to the client
	add(packets.Pubrel, 2)  // to the client, PUBREC received
	add(packets.Puback, 3)  // from the client, PUBACK not written
	add(packets.Pubrec, 4)  // from the client, routed, PUBREL awaited
	add(packets.Pubrec, 5)  // from the client, PUBREC not written
	add(packets.Pubrec, 6)  // from the client, routed, then released
	q.routed("c", 4)
	q.routed("c", 6)
	q.released("c", 6)
	q.routed("other", 5)

	if n := q.dropUnrouted("c", in); n != 3 {
		t.Errorf("dropUnrouted removed %d, want 3", n)
	}
	var got []uint16
	for _, pk := range in.GetAll(false) {
		got = append(got, pk.PacketID)
	}
	slices.Sort(got)
	if want := []uint16{1, 2, 4}; !slices.Equal(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
}

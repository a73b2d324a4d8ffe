package chaos_test

import (
	"fmt"
	"slices"
	"strings"
)

// ranges writes sorted numbers compactly: "3-7, 12, 15-16".
func ranges(ns []int) string {
	ns = slices.Clone(ns)
	slices.Sort(ns)
	var b strings.Builder
	for i := 0; i < len(ns); {
		j := i
		for j+1 < len(ns) && ns[j+1] <= ns[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		if b.Len() > 200 {
			fmt.Fprintf(&b, "... (%d in all)", len(ns))
			break
		}
		if ns[i] == ns[j] {
			fmt.Fprintf(&b, "%d", ns[i])
		} else {
			fmt.Fprintf(&b, "%d-%d", ns[i], ns[j])
		}
		i = j + 1
	}
	return b.String()
}

// joinLines joins at most n lines, saying how many more there were.
func joinLines(lines []string, n int) string {
	if len(lines) <= n {
		return strings.Join(lines, "\n\t")
	}
	return strings.Join(lines[:n], "\n\t") + fmt.Sprintf("\n\t... and %d more lines", len(lines)-n)
}

// table formats the tallies per QoS as aligned columns. Delivered and the
// columns after it are summed over the subscribers. refused: the broker
// answered with an error reason code (MQTT 5); lost: acknowledged QoS 1
// and 2 messages never delivered; dups: deliveries beyond the first;
// excused: QoS 2 duplicates the broker's log shows it caused; order: first
// deliveries out of publish order that the client caused; reorder: those the
// broker's log shows it sent so; phantom: deliveries of messages never
// published or withdrawn.
func table(byQoS [3]tally) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-5s %9s %8s %9s %8s %7s %7s %9s %10s %6s %6s %8s %6s %8s %8s\n",
		"QoS", "published", "acked", "withdrawn", "unknown", "refused", "failed", "delivered", "deliveries", "lost", "dups", "excused", "order", "reorder", "phantom")
	var sum tally
	for q, t := range byQoS {
		writeRow(&b, fmt.Sprint(q), t)
		sum.add(t)
	}
	writeRow(&b, "all", sum)
	return b.String()
}

func writeRow(b *strings.Builder, name string, t tally) {
	fmt.Fprintf(b, "%-5s %9d %8d %9d %8d %7d %7d %9d %10d %6d %6d %8d %6d %8d %8d\n",
		name, t.published, t.acked, t.withdrawn, t.unknown, t.refused, t.failed+t.pending, t.delivered, t.deliveries,
		t.lost, t.dups, t.excused, t.outOfOrder-t.reordered, t.reordered, t.neverPublished+t.withdrawnArrived)
}

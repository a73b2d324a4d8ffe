package chaos_test

import (
	"fmt"
	"strconv"
	"strings"
)

// evidence is what a broker's own log proves about a run, for the ledger
// to tell the broker's faults from the client's.
type evidence interface {
	// redeliveries returns how many QoS 2 messages of the stream the broker
	// sent sub again as new after a restart (see brokerLog), with the log
	// lines that show it.
	redeliveries(sub, topic string) (n int, lines []string)
	// reordered reports whether the broker itself put message later of the
	// stream before message earlier on its way to sub: it received earlier
	// first, yet sent later to sub before its last sending of earlier. It
	// returns the log lines that show it.
	reordered(sub, topic string, earlier, later int) (lines []string, ok bool)
}

// A brokerLog is what a Mosquitto log (log_type all) of a run in which
// every message carries its number in its topic (chaos/pub-0/q1/152) says
// about each message: when the broker first received it, when it sent it
// to each subscriber, and its known QoS 2 re-deliveries.
//
// The re-delivery: Mosquitto 2.0.x, after a restart, can send again as a
// PUBLISH (DUP set, same packet identifier) a QoS 2 message for which it had
// sent PUBREL before the restart without getting PUBCOMP back. A client that
// had completed the flow (it sent PUBCOMP, the broker never read it) must
// take that PUBLISH for a new message, as the specification says, and the
// application sees it twice.
type brokerLog struct {
	lines    []string
	received map[string]map[int]int     // stream -> seq -> line of first receipt
	sent     map[subStream]map[int]span // lines of first and last sending
	redeliv  map[subStream][]string     // evidence, three lines per re-delivery
}

type subStream struct{ client, stream string }

type span struct{ first, last int }

func parseBrokerLog(log string) *brokerLog {
	b := &brokerLog{
		lines:    strings.Split(log, "\n"),
		received: map[string]map[int]int{},
		sent:     map[subStream]map[int]span{},
		redeliv:  map[subStream][]string{},
	}
	type flight struct{ client, mid string }
	type rel struct {
		run  int // which run of mosquitto sent the PUBREL
		line int
	}
	run, restart := 0, 0
	relSent := map[flight]rel{}
	for i, line := range b.lines {
		_, msg, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(msg, "mosquitto version ") && strings.HasSuffix(msg, " starting"):
			run, restart = run+1, i
		case strings.HasPrefix(msg, "Received PUBLISH from "):
			// Received PUBLISH from pub-0 (d0, q1, r0, m5, 'chaos/pub-0/q1/152', ... (3 bytes))
			_, rest, _ := strings.Cut(msg, " (")
			if stream, seq, ok := traced(rest); ok {
				if b.received[stream] == nil {
					b.received[stream] = map[int]int{}
				}
				if _, seen := b.received[stream][seq]; !seen {
					b.received[stream][seq] = i
				}
			}
		case strings.HasPrefix(msg, "Sending PUBREL to "):
			// Sending PUBREL to sub-0 (m12)
			client, rest, _ := strings.Cut(strings.TrimPrefix(msg, "Sending PUBREL to "), " (m")
			relSent[flight{client, strings.TrimSuffix(rest, ")")}] = rel{run, i}
		case strings.HasPrefix(msg, "Received PUBCOMP from "):
			// Received PUBCOMP from sub-0 (Mid: 12, RC:0)
			client, rest, _ := strings.Cut(strings.TrimPrefix(msg, "Received PUBCOMP from "), " (Mid: ")
			mid, _, _ := strings.Cut(rest, ",")
			delete(relSent, flight{client, mid})
		case strings.HasPrefix(msg, "Sending PUBLISH to "):
			// Sending PUBLISH to sub-0 (d1, q2, r0, m12, 'chaos/pub-0/q2/152', ... (3 bytes))
			client, rest, _ := strings.Cut(strings.TrimPrefix(msg, "Sending PUBLISH to "), " (")
			stream, seq, ok := traced(rest)
			if !ok {
				continue
			}
			k := subStream{client, stream}
			if b.sent[k] == nil {
				b.sent[k] = map[int]span{}
			}
			s, seen := b.sent[k][seq]
			if !seen {
				s.first = i
			}
			s.last = i
			b.sent[k][seq] = s

			fields := strings.SplitN(rest, ", ", 5)
			if len(fields) < 4 || fields[1] != "q2" {
				continue
			}
			f := flight{client, strings.TrimPrefix(fields[3], "m")}
			if r, ok := relSent[f]; ok {
				delete(relSent, f)
				if r.run < run {
					b.redeliv[k] = append(b.redeliv[k], b.lines[r.line], b.lines[restart], line)
				}
			}
		}
	}
	return b
}

// traced reads the stream and number of a traced topic out of the
// parenthesis of a PUBLISH log line: "d0, q1, r0, m5, 'chaos/pub-0/q1/152', ...".
func traced(fields string) (stream string, seq int, ok bool) {
	_, topic, _ := strings.Cut(fields, "'")
	topic, _, _ = strings.Cut(topic, "'")
	i := strings.LastIndexByte(topic, '/')
	if i < 0 {
		return "", 0, false
	}
	seq, err := strconv.Atoi(topic[i+1:])
	return topic[:i], seq, err == nil
}

func (b *brokerLog) redeliveries(sub, topic string) (int, []string) {
	ev := b.redeliv[subStream{sub, topic}]
	return len(ev) / 3, ev
}

func (b *brokerLog) reordered(sub, topic string, earlier, later int) ([]string, bool) {
	recvE, okE := b.received[topic][earlier]
	recvL, okL := b.received[topic][later]
	sent := b.sent[subStream{sub, topic}]
	sentE, okSE := sent[earlier]
	sentL, okSL := sent[later]
	if !okE || !okL || !okSE || !okSL || recvE > recvL || sentL.first > sentE.last {
		return nil, false
	}
	return []string{
		b.lines[recvE], b.lines[recvL],
		fmt.Sprintf("%s   <- #%d sent before ...", b.lines[sentL.first], later),
		fmt.Sprintf("%s   <- ... #%d", b.lines[sentE.last], earlier),
	}, true
}

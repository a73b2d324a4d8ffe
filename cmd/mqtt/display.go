package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// row is one device's numbers at one moment.
type row struct {
	name                              string
	qos                               int
	sent, acked, withdrawn, doubt     int64
	delivered, dups, lost, reconnects int64
}

// snapshot reads every device's counters and what the monitor got.
func snapshot(devs []*device, mon *monitor) []row {
	rows := make([]row, len(devs))
	for i, d := range devs {
		n, dups := mon.delivered(i)
		rows[i] = row{
			name: d.name, qos: int(d.qos),
			sent: d.counts.sent.Load(), acked: d.counts.acked.Load(),
			withdrawn: d.counts.withdrawn.Load(), doubt: d.counts.doubt.Load(),
			delivered: int64(n), dups: int64(dups), reconnects: d.counts.reconnects.Load(),
		}
	}
	return rows
}

const (
	header = "device       QoS   sent  acked  withdrawn  in doubt  delivered  duplicates  reconnects"
	rowFmt = "%-11s  %3d  %5d  %5d  %9d  %8d  %9d  %10d  %10d"
)

func (r row) String() string {
	return fmt.Sprintf(rowFmt, r.name, r.qos, r.sent, r.acked, r.withdrawn, r.doubt, r.delivered, r.dups, r.reconnects)
}

// display shows the demo's progress: on a terminal, a table redrawn in
// place; elsewhere (a file, a pipe, CI), plain lines that are never
// rewritten.
type display struct {
	w        io.Writer
	terminal bool
	start    time.Time
	drawn    int // lines of the table on screen, to move back over
	lastLine time.Time
}

// isTerminal reports whether w is a terminal (a character device), without
// a dependency: the check golang.org/x/term would make, less portable but
// enough to choose between redrawing and plain lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// event reports a fault, or another moment worth a line of its own.
func (d *display) event(format string, args ...any) {
	line := fmt.Sprintf("%6.1fs  ", time.Since(d.start).Seconds()) + fmt.Sprintf(format, args...)
	if d.terminal {
		d.erase()
	}
	fmt.Fprintln(d.w, line)
}

// progress shows the current numbers: redrawn on a terminal; on plain
// output, one compact line every few seconds.
func (d *display) progress(rows []row, status string) {
	if !d.terminal {
		if time.Since(d.lastLine) < 5*time.Second {
			return
		}
		d.lastLine = time.Now()
		parts := make([]string, len(rows))
		for i, r := range rows {
			parts[i] = fmt.Sprintf("%s %d/%d/%d", r.name, r.sent, r.acked, r.delivered)
		}
		fmt.Fprintf(d.w, "%6.1fs  sent/acked/delivered: %s\n", time.Since(d.start).Seconds(), strings.Join(parts, ", "))
		return
	}
	d.erase()
	lines := append([]string{header}, make([]string, 0, len(rows)+1)...)
	for _, r := range rows {
		lines = append(lines, r.String())
	}
	lines = append(lines, status)
	for _, l := range lines {
		fmt.Fprintln(d.w, l)
	}
	d.drawn = len(lines)
}

// erase moves the cursor back over the table and clears it.
func (d *display) erase() {
	for ; d.drawn > 0; d.drawn-- {
		fmt.Fprint(d.w, "\x1b[1A\x1b[2K") // up one line, clear it
	}
}

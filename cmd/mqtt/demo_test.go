package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A short demo with a fault every half second loses no acknowledged button
// press or alarm, says so, and exits 0.
func TestDemo(t *testing.T) {
	t.Parallel()
	var out, errs bytes.Buffer
	code := run(t.Context(), []string{"demo", "-duration", "3s", "-faults", "500ms"}, stdio{out: &out, errOut: &errs})
	t.Logf("output:\n%s", out.String())
	if code != 0 {
		t.Fatalf("exit status %d, want 0; stderr:\n%s", code, errs.String())
	}
	for _, want := range []string{
		"fault: broker restart",
		"fault: cut every connection",
		"fault: black hole",
		header + "  lost",
		"No acknowledged button press or alarm was lost.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "\x1b[") {
		t.Error("escape sequences in output that is not a terminal")
	}
	for _, dev := range []string{"temperature", "button", "alarm"} {
		if !strings.Contains(out.String(), "\n"+dev+" ") {
			t.Errorf("the summary has no row for %s", dev)
		}
	}
}

func TestUsage(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage: mqtt <command>"},
		{[]string{"help"}, 0, "demo"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"demo", "-h"}, 0, "-duration"},
		{[]string{"demo", "-duration", "soon"}, 2, "invalid value"},
		{[]string{"demo", "extra"}, 2, "takes no arguments"},
		{[]string{"demo", "-faults", "0s"}, 2, "must be positive"},
	}
	for _, tc := range cases {
		var out, errs bytes.Buffer
		code := run(t.Context(), tc.args, stdio{out: &out, errOut: &errs})
		if code != tc.code || !strings.Contains(out.String()+errs.String(), tc.want) {
			t.Errorf("mqtt %q: exit %d, output\n%s%s\nwant exit %d and %q", tc.args, code, out.String(), errs.String(), tc.code, tc.want)
		}
	}
}

// On a terminal the table is redrawn in place: each redraw first moves back
// over the previous one.
func TestDisplayRedrawsOnATerminal(t *testing.T) {
	var out bytes.Buffer
	d := &display{w: &out, terminal: true, start: time.Now()}
	rows := []row{{name: "alarm", qos: 1, sent: 3, acked: 2, delivered: 2}}
	d.progress(rows, "status")
	first := out.String()
	if strings.Contains(first, "\x1b[") || !strings.Contains(first, header) {
		t.Fatalf("first draw:\n%q", first)
	}
	d.progress(rows, "status")
	if got := strings.Count(out.String()[len(first):], "\x1b[1A\x1b[2K"); got != 3 {
		t.Fatalf("the redraw moved back over %d lines, want 3 (header, row, status)", got)
	}
	d.event("fault: %s", "cut")
	if !strings.HasSuffix(out.String(), "fault: cut\n") {
		t.Fatalf("event line: %q", out.String())
	}
}

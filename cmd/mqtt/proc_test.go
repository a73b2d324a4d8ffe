package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// patience bounds every wait of these tests: for a line of output, for an
// exit. Nothing here should take more than a fraction of it.
const patience = 10 * time.Second

// proc is the mqtt command running as a child process.
type proc struct {
	t      testing.TB
	name   string // the program's
	args   []string
	cmd    *exec.Cmd
	stdout *output
	stderr *output
	exited chan struct{} // closed once cmd.Wait returned
	err    error         // cmd.Wait's, valid once exited is closed
}

// start runs the built mqtt command with args and stdin (nil: empty), and
// kills it at the end of the test if it is still running.
func start(t testing.TB, stdin io.Reader, args ...string) *proc {
	t.Helper()
	return startProgram(t, binary, stdin, args...)
}

// startProgram is start for any program.
func startProgram(t testing.TB, program string, stdin io.Reader, args ...string) *proc {
	t.Helper()
	return startProgramEnv(t, program, nil, stdin, args...)
}

// startProgramEnv is startProgram with env ("NAME=value") added to the
// environment. $MQTT_CLI_PASSWORD is taken out of the test's own
// environment, so that only the tests that set it see it.
func startProgramEnv(t testing.TB, program string, env []string, stdin io.Reader, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: filepath.Base(program), args: args, stdout: newOutput(), stderr: newOutput(), exited: make(chan struct{})}
	p.cmd = exec.Command(program, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, passwordEnv+"=") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	// A -race build otherwise sleeps a second before it exits.
	p.cmd.Env = append(p.cmd.Env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdin = stdin
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
			t.Logf("killed %s %s; stdout:\n%s\nstderr:\n%s", program, strings.Join(args, " "), p.stdout, p.stderr)
		}
	})
	return p
}

// runCmd runs the mqtt command to its end.
func runCmd(t testing.TB, stdin io.Reader, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	return runProgram(t, binary, stdin, args...)
}

// runProgram runs program to its end.
func runProgram(t testing.TB, program string, stdin io.Reader, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	p := startProgram(t, program, stdin, args...)
	status = p.wait()
	return p.stdout.String(), p.stderr.String(), status
}

// wait waits for the process to exit and returns its exit status.
func (p *proc) wait() int {
	p.t.Helper()
	timer := time.NewTimer(patience)
	defer timer.Stop()
	select {
	case <-p.exited:
	case <-timer.C:
		p.t.Fatalf("%s %s still running after %s; stdout:\n%s\nstderr:\n%s", p.name, strings.Join(p.args, " "), patience, p.stdout, p.stderr)
	}
	var exit *exec.ExitError
	if err := p.err; err != nil && !errors.As(err, &exit) {
		p.t.Fatal(err)
	}
	return p.cmd.ProcessState.ExitCode()
}

// signal sends sig to the process.
func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// waitStderr waits until the process has written a line to stderr that
// contains want.
func (p *proc) waitStderr(want string) { p.t.Helper(); p.waitFor("stderr", p.stderr, want) }

// waitStdout waits until the process has written a line to stdout that
// contains want.
func (p *proc) waitStdout(want string) { p.t.Helper(); p.waitFor("stdout", p.stdout, want) }

func (p *proc) waitFor(name string, o *output, want string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if !o.waitLine(ctx, func(line string) bool { return strings.Contains(line, want) }) {
		p.t.Fatalf("%s %s: no line with %q on %s within %s; stdout:\n%s\nstderr:\n%s",
			p.name, strings.Join(p.args, " "), want, name, patience, p.stdout, p.stderr)
	}
}

// output collects what a process writes to one stream, and lets a test
// wait for a line of it.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced at every write
}

func newOutput() *output { return &output{changed: make(chan struct{})} }

func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(b)
	close(o.changed)
	o.changed = make(chan struct{})
	return len(b), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// lines returns the complete lines written so far.
func (o *output) lines() []string {
	s := o.String()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.Split(s[:i], "\n")
	}
	return nil
}

// waitLine waits until a complete line satisfies match, or ctx ends (false).
func (o *output) waitLine(ctx context.Context, match func(string) bool) bool {
	for {
		o.mu.Lock()
		changed := o.changed
		o.mu.Unlock()
		for _, l := range o.lines() {
			if match(l) {
				return true
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

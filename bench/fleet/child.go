package fleet

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/robustmqtt/mqtt/mqtttest"
)

// The child processes are this binary again, told their role by
// environment: the test binary in tests, the command otherwise. A program
// that uses the package calls ServeChild first thing in main (or TestMain).
const (
	roleEnv     = "ROBUSTMQTT_FLEET_ROLE"
	addrEnv     = "ROBUSTMQTT_FLEET_ADDR"             // where the broker listens ("127.0.0.1:0": any port); the counter's port
	profileEnv  = "ROBUSTMQTT_FLEET_CHILD_CPUPROFILE" // the mochi child writes a CPU profile here (with its pid appended)
	dumpsEnv    = "ROBUSTMQTT_FLEET_CHILD_DUMPS"      // the mochi child writes its goroutines into this directory on SIGUSR1
	roleCounter = "counter"
	roleMochi   = "mochi"
)

// IsChild reports whether this process was started as one of the fleet's
// children (the counter or the mochi broker).
func IsChild() bool { return os.Getenv(roleEnv) != "" }

// ServeChild runs the child role this process was started for, until its
// parent closes its stdin (or, for the broker, sends SIGTERM), and returns
// the exit code. Call it only when IsChild.
func ServeChild() int {
	var err error
	switch r := os.Getenv(roleEnv); r {
	case roleCounter:
		err = serveCounter(os.Getenv(addrEnv), os.Stdin, os.Stdout)
	case roleMochi:
		err = serveMochi(os.Getenv(addrEnv))
	default:
		err = fmt.Errorf("unknown role %q", r)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "fleet %s: %v\n", os.Getenv(roleEnv), err)
		return 1
	}
	return 0
}

// serveMochi is the broker child: mqtttest's mochi broker on addr. It
// prints "addr HOST:PORT" once it listens. SIGTERM ends it the way a crash
// does: the kernel closes every connection and the sessions, which mochi
// keeps in memory, are gone; first it reports what the protocol monitor
// found. A closed stdin ends it gracefully.
func serveMochi(addr string) error {
	if path := os.Getenv(profileEnv); path != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid()))
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	b, err := mqtttest.StartBrokerWith(mqtttest.BrokerConfig{Addr: addr})
	if err != nil {
		return err
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	if dir := os.Getenv(dumpsEnv); dir != "" {
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			for n := 1; ; n++ {
				<-usr1
				dumpGoroutines(filepath.Join(dir, fmt.Sprintf("mochi-%d-%d.txt", os.Getpid(), n)))
			}
		}()
	}
	eof := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	fmt.Printf("addr %s\n", b.Addr())
	select {
	case <-term:
		reportViolations(b)
		pprof.StopCPUProfile()
		os.Exit(0) // no Close: the connections die with the process
	case <-eof:
	}
	reportViolations(b)
	return b.Close()
}

// dumpGoroutines writes every goroutine's stack, grouped, to path.
func dumpGoroutines(path string) {
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	pprof.Lookup("goroutine").WriteTo(f, 1)
}

func reportViolations(b *mqtttest.Broker) {
	v := b.Violations()
	if len(v) == 0 {
		return
	}
	fmt.Fprintf(os.Stderr, "fleet mochi: the protocol monitor found %d violations\n", len(v))
	for i, x := range v {
		if i == 10 {
			break
		}
		fmt.Fprintf(os.Stderr, "fleet mochi: %v\n", x)
	}
}

// child is a running child process of this binary.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	addr  string
	done  chan struct{} // closed once cmd.Wait has returned
	err   error         // cmd.Wait's, once done is closed
}

// spawnChild starts this binary in role, with env added, and waits (at
// most timeout) for its "addr" line.
func spawnChild(role string, stderr io.Writer, timeout time.Duration, env ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(append(os.Environ(), roleEnv+"="+role), env...)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the %s child: %w", role, err)
	}
	c := &child{cmd: cmd, stdin: stdin, out: bufio.NewReaderSize(stdout, 1<<16), done: make(chan struct{})}
	line := make(chan string, 1)
	go func() {
		s, _ := c.out.ReadString('\n')
		line <- s
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case s := <-line:
		addr, ok := strings.CutPrefix(strings.TrimSpace(s), "addr ")
		if !ok {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("the %s child did not say where it listens (%q)", role, s)
		}
		c.addr = addr
	case <-t.C:
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("the %s child did not listen within %v", role, timeout)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// stop ends the child gracefully (closes its stdin) and waits for it, or
// kills it after timeout.
func (c *child) stop(timeout time.Duration) error {
	c.stdin.Close()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.done:
		return c.err
	case <-t.C:
		c.cmd.Process.Kill()
		<-c.done
		return errors.New("the child did not stop in time: killed")
	}
}

// signal sends sig and waits for the child to exit.
func (c *child) signal(sig os.Signal, timeout time.Duration) error {
	if err := c.cmd.Process.Signal(sig); err != nil {
		return err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.done:
		return nil
	case <-t.C:
		c.cmd.Process.Kill()
		<-c.done
		return errors.New("the child did not exit on the signal: killed")
	}
}

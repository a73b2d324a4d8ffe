package bench

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/robustmqtt/mqtt/mqtttest"
	"go.uber.org/goleak"
)

// childEnv, when set in the environment of this test binary, makes TestMain
// serve an embedded broker instead of running tests: the binary prints the
// broker's address on a line of its own and serves until its stdin closes.
// The benchmarks start one such child, so that the broker's allocations and
// goroutines are not counted as the clients'.
const childEnv = "ROBUSTMQTT_BENCH_CHILD_BROKER"

// inProcessEnv, set to 1, puts the benchmarks' broker in this process
// instead, as the peers' figures in issue 6 were measured; allocation
// figures then include the broker's.
const inProcessEnv = "ROBUSTMQTT_BENCH_BROKER_IN_PROCESS"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(serveChildBroker())
	}
	flag.Parse()
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		// A configuration line, as benchstat and cmd/ratios read them.
		if os.Getenv(inProcessEnv) == "1" {
			fmt.Println("broker: in-process")
		} else {
			fmt.Println("broker: child-process")
		}
	}
	goleak.VerifyTestMain(stopChildAfter{m})
}

// stopChildAfter runs the tests and then stops the child broker, before
// goleak looks for leftover goroutines.
type stopChildAfter struct{ m *testing.M }

func (s stopChildAfter) Run() int {
	code := s.m.Run()
	if err := child.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: stopping the child broker:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// serveChildBroker is the child's whole life: start the broker, say where,
// wait for the parent to close stdin (or to die), close the broker.
func serveChildBroker() int {
	b, err := mqtttest.StartBroker()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		return 1
	}
	fmt.Println(b.Addr())
	io.Copy(io.Discard, os.Stdin)
	if err := b.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		return 1
	}
	return 0
}

// child is the broker process shared by every benchmark of the run.
var child childBroker

type childBroker struct {
	mu    sync.Mutex
	local *mqtttest.Broker // with inProcessEnv set
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
	err   error
}

// brokerAddr returns the address of the broker in the child process,
// starting it on first use.
func brokerAddr(tb testing.TB) string {
	tb.Helper()
	addr, err := child.start()
	if err != nil {
		tb.Fatal(err)
	}
	return addr
}

func (c *childBroker) start() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil || c.local != nil || c.err != nil {
		return c.addr, c.err
	}
	if os.Getenv(inProcessEnv) == "1" {
		c.local, c.err = mqtttest.StartBroker()
		if c.err == nil {
			c.addr = c.local.Addr()
		}
		return c.addr, c.err
	}
	c.addr, c.err = c.spawn()
	return c.addr, c.err
}

func (c *childBroker) spawn() (string, error) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", fmt.Errorf("bench: child broker: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", fmt.Errorf("bench: child broker: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("bench: starting the child broker: %w", err)
	}
	c.cmd, c.stdin = cmd, stdin
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("bench: the child broker did not say where it listens: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// stop closes the child's stdin, which ends it, and waits for it (or
// closes the in-process broker).
func (c *childBroker) stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.local != nil {
		err := c.local.Close()
		c.local = nil
		return err
	}
	if c.cmd == nil {
		return nil
	}
	c.stdin.Close()
	err := c.cmd.Wait()
	c.cmd = nil
	return err
}

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
// serve a broker instead of running tests: the binary prints the broker's
// address on a line of its own and serves until its stdin closes. Its value
// says which broker: "mochi" (or "1") the embedded mochi broker, "sink" the
// sink (sink_test.go). The benchmarks start one child of each kind, so that
// the broker's allocations and goroutines are not counted as the clients'.
const childEnv = "ROBUSTMQTT_BENCH_CHILD_BROKER"

// The brokers, by the name that appears in the benchmark names (broker=...).
const (
	mochiBroker = "mochi" // mqtttest.StartBroker: mochi-mqtt/server/v2, routes
	sinkBroker  = "sink"  // acknowledges at once, routes nothing
)

// inProcessEnv, set to 1, puts the benchmarks' brokers in this process
// instead, as the peers' figures in issue 6 were measured; allocation
// figures then include the broker's.
const inProcessEnv = "ROBUSTMQTT_BENCH_BROKER_IN_PROCESS"

func TestMain(m *testing.M) {
	if kind := os.Getenv(childEnv); kind != "" {
		os.Exit(serveChildBroker(kind))
	}
	if spec := os.Getenv(idleChildEnv); spec != "" {
		os.Exit(idleChild(spec))
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

// stopChildAfter runs the tests and then stops the child brokers, before
// goleak looks for leftover goroutines.
type stopChildAfter struct{ m *testing.M }

func (s stopChildAfter) Run() int {
	code := s.m.Run()
	for _, c := range children {
		if err := c.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: stopping the %s child broker: %v\n", c.kind, err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// A localBroker is a broker this process serves: *mqtttest.Broker or *sink.
type localBroker interface {
	Addr() string
	Close() error
}

func startLocal(kind string) (localBroker, error) {
	switch kind {
	case mochiBroker, "1":
		return mqtttest.StartBroker()
	case sinkBroker:
		return startSink()
	}
	return nil, fmt.Errorf("bench: no broker %q", kind)
}

// serveChildBroker is the child's whole life: start the broker, say where,
// wait for the parent to close stdin (or to die), close the broker.
func serveChildBroker(kind string) int {
	b, err := startLocal(kind)
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

// children are the broker processes shared by every benchmark of the run,
// each started on first use.
var children = map[string]*childBroker{
	mochiBroker: {kind: mochiBroker},
	sinkBroker:  {kind: sinkBroker},
}

type childBroker struct {
	kind  string
	mu    sync.Mutex
	local localBroker // with inProcessEnv set
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
	err   error
}

// brokerAddr returns the address of the mochi broker in its child process,
// starting it on first use.
func brokerAddr(tb testing.TB) string {
	tb.Helper()
	return brokerAddrOf(tb, mochiBroker)
}

// brokerAddrOf returns the address of the broker of kind (mochiBroker,
// sinkBroker) in its child process, starting it on first use.
func brokerAddrOf(tb testing.TB, kind string) string {
	tb.Helper()
	c := children[kind]
	if c == nil {
		tb.Fatalf("bench: no broker %q", kind)
	}
	addr, err := c.start()
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
		c.local, c.err = startLocal(c.kind)
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
	cmd.Env = append(os.Environ(), childEnv+"="+c.kind)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", fmt.Errorf("bench: %s child broker: %w", c.kind, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", fmt.Errorf("bench: %s child broker: %w", c.kind, err)
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("bench: starting the %s child broker: %w", c.kind, err)
	}
	c.cmd, c.stdin = cmd, stdin
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("bench: the %s child broker did not say where it listens: %w", c.kind, err)
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

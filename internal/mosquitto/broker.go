package mosquitto

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// startTimeout bounds how long a start waits for the port to answer.
	startTimeout = 10 * time.Second
	// stopTimeout bounds how long a graceful stop waits after SIGTERM
	// (Mosquitto writes its database then) before it kills the process.
	stopTimeout = 10 * time.Second
	// sigtermAgain is how often a stop sends SIGTERM again while mosquitto
	// runs on (see stopLocked).
	sigtermAgain = 250 * time.Millisecond
	// DBFile is the name of Mosquitto's database in the broker's directory.
	DBFile = "mosquitto.db"
	// LogFile is the name of the broker's log in its directory.
	LogFile = "mosquitto.log"
)

// errPortTaken means another process took the port before mosquitto could.
var errPortTaken = errors.New("mosquitto: the port was taken")

// errNoWebSockets means this mosquitto was built without WebSocket support.
var errNoWebSockets = errors.New("mosquitto: this build has no WebSocket support (protocol websockets)")

// Config says how NewWith configures a broker. The zero value is New's.
type Config struct {
	// Conf is extra lines of mosquitto.conf, appended to the helper's own
	// (an acl_file, a max_inflight_messages, ...).
	Conf string

	// WebSockets adds a second listener, on a port of its own, for MQTT
	// over WebSocket (any path): WSURL returns its URL. A mosquitto built
	// without WebSocket support skips the test (even with
	// MQTT_REQUIRE_MOSQUITTO=1, which is about the program being there).
	WebSockets bool
}

// Broker is a mosquitto process on a 127.0.0.1 port, with its configuration,
// database and log in a directory of its own. Its methods are safe for
// concurrent use; Start, Stop and Restart run one at a time.
type Broker struct {
	bin        string
	dir        string
	conf       string // the caller's extra configuration lines
	webSockets bool   // a WebSocket listener on wsAddr too

	// asMosquittoUser leaves "user root" out, for the test of the trap it
	// avoids.
	asMosquittoUser bool

	mu     sync.Mutex // serializes Start, Stop and Restart, guards the fields below
	addr   string     // 127.0.0.1:port, fixed by the first start
	wsAddr string     // the WebSocket listener's, likewise; "" without one
	proc   *process   // nil while stopped
	starts int
}

// process is one run of mosquitto.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait has returned
	err    error         // cmd.Wait's result, valid after exited
}

// New starts a mosquitto broker on a free 127.0.0.1 port, with extra lines of
// mosquitto.conf appended to the helper's own (an acl_file, a
// max_inflight_messages, ...), and stops it when the test ends; a missing
// database at that stop fails the test. If mosquitto is not installed, New
// skips the test (see Require). It calls t.Fatal if the broker cannot start.
func New(t testing.TB, conf string) *Broker {
	t.Helper()
	return newBroker(t, &Broker{conf: conf})
}

// NewWith is New with a configuration: extra lines, and a WebSocket
// listener.
func NewWith(t testing.TB, cfg Config) *Broker {
	t.Helper()
	return newBroker(t, &Broker{conf: cfg.Conf, webSockets: cfg.WebSockets})
}

// newBroker is New for a Broker whose options are set.
func newBroker(t testing.TB, b *Broker) *Broker {
	t.Helper()
	b.bin, b.dir = Require(t, "mosquitto"), t.TempDir()
	if err := b.Start(); errors.Is(err, errNoWebSockets) {
		t.Skipf("%v; to run this test, install a mosquitto built with libwebsockets (Debian's is)", err)
	} else if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Stop(); err != nil {
			t.Error(err)
		}
	})
	return b
}

// Addr returns the broker's address, "127.0.0.1:port". It does not change
// across restarts.
func (b *Broker) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addr
}

// URL returns the broker's address as a server URL, "tcp://127.0.0.1:port".
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// WSURL returns the URL of the broker's WebSocket listener,
// "ws://127.0.0.1:port/mqtt", or "" if Config.WebSockets was not set. It
// does not change across restarts.
func (b *Broker) WSURL() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wsAddr == "" {
		return ""
	}
	return "ws://" + b.wsAddr + "/mqtt"
}

// Dir returns the broker's directory: its mosquitto.conf, database and log.
func (b *Broker) Dir() string { return b.dir }

// LogPath returns the path of the broker's log, which every run appends to.
func (b *Broker) LogPath() string { return filepath.Join(b.dir, LogFile) }

// Log returns the broker's log so far.
func (b *Broker) Log() string {
	data, _ := os.ReadFile(b.LogPath())
	return string(data)
}

// Starts returns how many times the broker has been started.
func (b *Broker) Starts() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.starts
}

// Start starts mosquitto and returns once its port accepts connections.
// Starting a running broker does nothing. The first start picks a free port;
// later ones use the same port, so clients reconnect to the same address.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc != nil {
		return nil
	}
	if b.addr != "" {
		return b.restartLocked()
	}
	// Between picking a free port and mosquitto binding it, another
	// process may take it: try a few ports.
	n := 1
	if b.webSockets {
		n = 2
	}
	var err error
	for range 3 {
		var addrs []string
		if addrs, err = freeAddrs(n); err != nil {
			break
		}
		b.addr = addrs[0]
		if b.webSockets {
			b.wsAddr = addrs[1]
		}
		if err = b.startLocked(); !errors.Is(err, errPortTaken) {
			break
		}
	}
	if err != nil {
		b.addr, b.wsAddr = "", ""
	}
	return err
}

// Stop stops mosquitto gracefully: SIGTERM, then it writes its database and
// exits. It returns once the process has exited, with an error if it did not
// exit cleanly within 10 seconds (it is then killed) or if the database file
// is missing afterwards: Mosquitto persisted nothing. Stopping a stopped
// broker does nothing.
func (b *Broker) Stop() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stopLocked()
}

// Restart is a graceful restart: Stop, then Start on the same port, with the
// sessions and messages Mosquitto saved in its database.
func (b *Broker) Restart() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.stopLocked(); err != nil {
		return err
	}
	return b.restartLocked()
}

// restartLocked starts mosquitto on the port it had. A client dialing the
// stopped port may have been given that very port for its own end (TCP's
// self-connect), and hold it for a moment: retry for up to two seconds.
func (b *Broker) restartLocked() error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := b.startLocked()
		if !errors.Is(err, errPortTaken) || time.Now().After(deadline) {
			return err
		}
		// Nothing to wait on: the port is someone else's.
		retry := time.NewTimer(20 * time.Millisecond)
		<-retry.C
	}
}

func (b *Broker) startLocked() error {
	confPath := filepath.Join(b.dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(b.config()), 0o644); err != nil {
		return fmt.Errorf("mosquitto: write the configuration: %w", err)
	}
	logf, err := os.OpenFile(b.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("mosquitto: open the log: %w", err)
	}
	defer logf.Close() // the process has its own descriptor
	logStart, err := logf.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("mosquitto: open the log: %w", err)
	}
	cmd := exec.Command(b.bin, "-c", confPath)
	cmd.Dir = b.dir
	cmd.SysProcAttr = procAttr()
	// What mosquitto writes before it has read its configuration goes to
	// stderr: into the same file, and through no pipe that a goroutine
	// would have to copy.
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("mosquitto: start %s: %w", b.bin, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := b.waitReady(p, logStart); err != nil {
		cmd.Process.Kill()
		<-p.exited
		return err
	}
	b.proc = p
	b.starts++
	return nil
}

// waitReady waits until this run of mosquitto says it is running and its
// port answers, or it exits, or startTimeout passes.
func (b *Broker) waitReady(p *process, logStart int64) error {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	retry := time.NewTicker(5 * time.Millisecond)
	defer retry.Stop()
	for {
		// The log line tells our mosquitto from another process that may
		// have taken the port; the dials, that the listeners are up.
		if bytes.Contains(b.logSince(logStart), []byte(" running")) && answers(b.addr) && answers(b.wsAddr) {
			return nil
		}
		select {
		case <-p.exited:
			log := b.logSince(logStart)
			// libwebsockets says only that it could not listen.
			if bytes.Contains(log, []byte("Address already in use")) || bytes.Contains(log, []byte("Unable to create websockets listener")) {
				return fmt.Errorf("%w: %s", errPortTaken, b.addr)
			}
			if bytes.Contains(log, []byte("Websockets support not available")) {
				return errNoWebSockets
			}
			return fmt.Errorf("mosquitto: exited at start (%v); its log:\n%s", p.err, log)
		case <-deadline.C:
			return fmt.Errorf("mosquitto: not listening on %s %s after start; its log:\n%s", b.addr, startTimeout, b.logSince(logStart))
		case <-retry.C:
		}
	}
}

// answers reports whether addr accepts a TCP connection; "" does.
func answers(addr string) bool {
	if addr == "" {
		return true
	}
	c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func (b *Broker) stopLocked() error {
	p := b.proc
	if p == nil {
		return nil
	}
	b.proc = nil
	logStart := b.logSize()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("mosquitto: SIGTERM: %w", err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	// Mosquitto 2.0 installs its SIGTERM handler, logs "running" and only
	// then sets the flag its loop runs on: a SIGTERM that lands in between,
	// right after a start, is lost, and mosquitto runs on. Each SIGTERM
	// only asks it to stop, so it goes again until mosquitto exits.
	again := time.NewTicker(sigtermAgain)
	defer again.Stop()
	for stopped := false; !stopped; {
		select {
		case <-p.exited:
			stopped = true
		case <-again.C:
			p.cmd.Process.Signal(syscall.SIGTERM) // an error: it exited meanwhile
		case <-timer.C:
			p.cmd.Process.Kill()
			<-p.exited
			return fmt.Errorf("mosquitto: still running %s after SIGTERM; killed it; its log since:\n%s", stopTimeout, b.logSince(logStart))
		}
	}
	if p.err != nil {
		return fmt.Errorf("mosquitto: exited with %v after SIGTERM; its log:\n%s", p.err, b.logSince(logStart))
	}
	db := filepath.Join(b.dir, DBFile)
	if _, err := os.Stat(db); err != nil {
		return fmt.Errorf("mosquitto: no database after a graceful stop (%w): it persisted nothing, so a restart loses every session; as root, the configuration needs `user root`; its log:\n%s",
			err, b.logSince(logStart))
	}
	return nil
}

// config returns the mosquitto.conf of the broker.
func (b *Broker) config() string {
	_, port, _ := net.SplitHostPort(b.addr)
	var c strings.Builder
	fmt.Fprintf(&c, "listener %s 127.0.0.1\n", port)
	c.WriteString("allow_anonymous true\n")
	c.WriteString("persistence true\n")
	fmt.Fprintf(&c, "persistence_location %s/\n", b.dir)
	fmt.Fprintf(&c, "persistence_file %s\n", DBFile)
	c.WriteString("autosave_interval 1\n")
	// Mosquitto's default (1000) drops QoS 1 and 2 messages for an offline
	// session beyond it; a test that keeps a subscriber away must not lose
	// messages to a limit it did not ask for.
	c.WriteString("max_queued_messages 0\n")
	// stderr, not stdout, which mosquitto buffers when it is not a
	// terminal; not a file of its own, which it opens after it changed
	// user, when it may no longer be allowed to.
	c.WriteString("log_dest stderr\n")
	c.WriteString("log_type all\n")
	if os.Geteuid() == 0 && !b.asMosquittoUser {
		// Otherwise mosquitto runs as user mosquitto, cannot write the
		// test's directory and persists nothing.
		c.WriteString("user root\n")
	}
	if b.conf != "" {
		c.WriteString(b.conf)
		c.WriteString("\n")
	}
	if b.wsAddr != "" {
		// Last: the caller's lines, which may set options of a listener,
		// still apply to the first one.
		_, wsPort, _ := net.SplitHostPort(b.wsAddr)
		fmt.Fprintf(&c, "listener %s 127.0.0.1\n", wsPort)
		c.WriteString("protocol websockets\n")
	}
	return c.String()
}

// logSince returns the log from byte offset off on.
func (b *Broker) logSince(off int64) []byte {
	f, err := os.Open(b.LogPath())
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil
	}
	data, _ := io.ReadAll(f)
	return data
}

func (b *Broker) logSize() int64 {
	fi, err := os.Stat(b.LogPath())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// freeAddrs returns n different 127.0.0.1 addresses whose ports were free
// a moment ago.
func freeAddrs(n int) ([]string, error) {
	addrs := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("mosquitto: find a free port: %w", err)
		}
		defer ln.Close() // held until all are picked, so they differ
		port := ln.Addr().(*net.TCPAddr).Port
		addrs = append(addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	}
	return addrs, nil
}

// WaitLog waits until cond holds for the broker's log, or ctx ends: the
// broker's own account of what it did, for facts a client cannot see (a
// session expired, a message was or was not sent). It reads the log again
// every 10 milliseconds.
func (b *Broker) WaitLog(ctx context.Context, cond func(log string) bool) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond(b.Log()) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("mosquitto: waiting for the log: %w", ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

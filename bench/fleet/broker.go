package fleet

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Broker names, as the -broker flag takes them.
const (
	Mochi     = "mochi"
	Mosquitto = "mosquitto"
)

// broker is a broker in a child process that can be restarted on its port.
type broker interface {
	// addr is where it listens, the same across restarts.
	addr() string
	pid() int
	// restart ends the broker (stoppedAt: the moment it was told to), waits
	// down, and starts it again on the same port; upAt is when it listens.
	restart(down time.Duration) (stoppedAt, upAt time.Time, err error)
	close() error
	// keepsSessions says whether persistent sessions survive restart.
	keepsSessions() bool
}

func startBroker(kind, mosquittoPath string, log io.Writer, dumpDir string) (broker, error) {
	switch kind {
	case Mochi:
		var env []string
		if dumpDir != "" {
			env = append(env, dumpsEnv+"="+dumpDir)
		}
		return startMochi(log, env)
	case Mosquitto:
		return startMosquitto(mosquittoPath, log)
	}
	return nil, fmt.Errorf("fleet: no broker %q (%s or %s)", kind, Mochi, Mosquitto)
}

// mochiProc is mqtttest's mochi broker in a child of this binary. A
// restart kills it (SIGTERM, then exit without closing anything): its
// sessions, which live in its memory, are lost.
type mochiProc struct {
	c   *child
	log io.Writer
	env []string
}

func startMochi(log io.Writer, env []string) (*mochiProc, error) {
	c, err := spawnChild(roleMochi, log, 30*time.Second, append(env, addrEnv+"=127.0.0.1:0")...)
	if err != nil {
		return nil, err
	}
	return &mochiProc{c: c, log: log, env: env}, nil
}

func (m *mochiProc) addr() string        { return m.c.addr }
func (m *mochiProc) pid() int            { return m.c.cmd.Process.Pid }
func (m *mochiProc) keepsSessions() bool { return false }

func (m *mochiProc) restart(down time.Duration) (time.Time, time.Time, error) {
	stoppedAt := time.Now()
	if err := m.c.signal(syscall.SIGTERM, 30*time.Second); err != nil {
		return stoppedAt, time.Time{}, err
	}
	waitFor(down)
	c, err := spawnChild(roleMochi, m.log, 30*time.Second, append(m.env, addrEnv+"="+m.c.addr)...)
	if err != nil {
		return stoppedAt, time.Time{}, err
	}
	m.c = c
	return stoppedAt, time.Now(), nil
}

func (m *mochiProc) close() error { return m.c.stop(60 * time.Second) }

// mosquittoProc is /usr/sbin/mosquitto with a configuration of ours: on
// 127.0.0.1 only, no connection limit, persistence on (saved when it
// stops, and every autosave seconds). A restart is SIGTERM, as systemctl
// restart does: Mosquitto saves its sessions, and the new process loads
// them.
type mosquittoProc struct {
	path, dir, conf, port string
	log                   io.Writer
	cmd                   *exec.Cmd
	done                  chan struct{}
}

func startMosquitto(path string, log io.Writer) (*mosquittoProc, error) {
	if path == "" {
		path = "/usr/sbin/mosquitto"
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("fleet: mosquitto: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "fleet-mosquitto-")
	if err != nil {
		return nil, err
	}
	m := &mosquittoProc{path: path, dir: dir, conf: filepath.Join(dir, "mosquitto.conf"), port: port, log: log}
	conf := strings.Join([]string{
		"listener " + port + " 127.0.0.1",
		"allow_anonymous true",
		"max_connections -1",
		"persistence true",
		"persistence_location " + dir + "/",
		"autosave_interval 60",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
		"log_type notice",
		"log_type information", // "running", once the listener is open
		"connection_messages false",
		"user root", // as root it would switch to the mosquitto user, who cannot write dir
		"",
	}, "\n")
	if err := os.WriteFile(m.conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := m.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return m, nil
}

// start runs mosquitto and waits for its "running" line, which it logs
// once its listener is open.
func (m *mosquittoProc) start() error {
	cmd := exec.Command(m.path, "-c", m.conf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("fleet: starting mosquitto: %w", err)
	}
	running := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		said := false
		for sc.Scan() {
			line := sc.Text()
			if !said && strings.Contains(line, " running") {
				said = true
				close(running)
				continue
			}
			fmt.Fprintln(m.log, "mosquitto:", line)
		}
		cmd.Wait()
	}()
	t := time.NewTimer(60 * time.Second)
	defer t.Stop()
	select {
	case <-running:
		m.cmd, m.done = cmd, done
		return nil
	case <-done:
		return errors.New("fleet: mosquitto exited at start (see its log above)")
	case <-t.C:
		cmd.Process.Kill()
		<-done
		return errors.New("fleet: mosquitto did not start within 60 s")
	}
}

func (m *mosquittoProc) addr() string        { return "127.0.0.1:" + m.port }
func (m *mosquittoProc) pid() int            { return m.cmd.Process.Pid }
func (m *mosquittoProc) keepsSessions() bool { return true }

func (m *mosquittoProc) stop(sig os.Signal) error {
	if err := m.cmd.Process.Signal(sig); err != nil {
		return err
	}
	t := time.NewTimer(120 * time.Second)
	defer t.Stop()
	select {
	case <-m.done:
		return nil
	case <-t.C:
		m.cmd.Process.Kill()
		<-m.done
		return errors.New("fleet: mosquitto did not stop within 120 s: killed")
	}
}

func (m *mosquittoProc) restart(down time.Duration) (time.Time, time.Time, error) {
	stoppedAt := time.Now()
	if err := m.stop(syscall.SIGTERM); err != nil {
		return stoppedAt, time.Time{}, err
	}
	waitFor(down)
	if err := m.start(); err != nil {
		return stoppedAt, time.Time{}, err
	}
	return stoppedAt, time.Now(), nil
}

func (m *mosquittoProc) close() error {
	err := m.stop(syscall.SIGTERM)
	os.RemoveAll(m.dir)
	return err
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

// waitFor waits d: the outage the run asked for, not a wait for an event.
func waitFor(d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	<-t.C
}

package mosquitto

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// FakeMosquittoEnv, set in the environment of this test binary, makes
// TestMain act as a mosquitto that loses the first SIGTERM (FakeMosquitto)
// instead of running tests.
const FakeMosquittoEnv = "ROBUSTMQTT_FAKE_MOSQUITTO"

// FakeMosquitto is this test binary run as mosquitto -c file: it listens
// where the file's first listener says, writes "running" to stderr (the
// broker's log), and, as Mosquitto 2.0 does when a SIGTERM lands between
// installing its handler and starting its loop, takes no notice of the
// first SIGTERM. At the second it writes the database and exits 0. It
// returns the exit status.
func FakeMosquitto() int {
	if len(os.Args) != 3 || os.Args[1] != "-c" {
		fmt.Fprintf(os.Stderr, "fake mosquitto: arguments %q, want -c file\n", os.Args[1:])
		return 2
	}
	conf, err := readFakeConf(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake mosquitto:", err)
		return 1
	}
	terms := make(chan os.Signal, 2)
	signal.Notify(terms, syscall.SIGTERM)
	ln, err := net.Listen("tcp", conf.listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake mosquitto:", err)
		return 1
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	fmt.Fprintln(os.Stderr, "mosquitto version fake running")
	<-terms
	fmt.Fprintln(os.Stderr, "fake mosquitto: a SIGTERM, lost")
	<-terms
	ln.Close()
	if err := os.WriteFile(conf.db, nil, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "fake mosquitto:", err)
		return 1
	}
	fmt.Fprintln(os.Stderr, "mosquitto version fake terminating")
	return 0
}

// fakeConf is what FakeMosquitto reads of a mosquitto.conf.
type fakeConf struct{ listen, db string }

func readFakeConf(name string) (fakeConf, error) {
	f, err := os.Open(name)
	if err != nil {
		return fakeConf{}, err
	}
	defer f.Close()
	var c fakeConf
	var dir, file string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "listener":
			if c.listen == "" && len(fields) == 3 {
				c.listen = net.JoinHostPort(fields[2], fields[1])
			}
		case "persistence_location":
			dir = fields[1]
		case "persistence_file":
			file = fields[1]
		}
	}
	if c.listen == "" || dir == "" || file == "" {
		return fakeConf{}, errors.New("no listener, persistence_location or persistence_file in " + name)
	}
	c.db = filepath.Join(dir, file)
	return c, sc.Err()
}

// A SIGTERM that Mosquitto loses right after a start does not make the
// stop fail after 10 s: it is sent again until mosquitto exits.
func TestStopSendsSIGTERMAgain(t *testing.T) {
	t.Setenv(FakeMosquittoEnv, "1")
	b := &Broker{bin: os.Args[0], dir: t.TempDir()}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.Log(), "a SIGTERM, lost") || !strings.Contains(b.Log(), "terminating") {
		t.Fatalf("the fake did not lose one SIGTERM and stop at the next; its log:\n%s", b.Log())
	}
}

package main

import (
	"bytes"
	"crypto/tls"
	"flag"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/robustmqtt/mqtt/internal/mosquitto"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// configOf parses a pub command line in process and returns the
// configuration, or fails the test.
func configOf(t *testing.T, args ...string) (connOptions, string) {
	t.Helper()
	var out, errs bytes.Buffer
	o, cfg, _, status, done := setup("pub", "", "", args, stdio{out: &out, errOut: &errs}, func(*flag.FlagSet) {})
	if done {
		t.Fatalf("mqtt pub %q: exit status %d, stderr %q", args, status, errs.String())
	}
	return o, cfg.Servers[0]
}

// Every TLS flag makes -h and -p a TLS connection, on port 8883 unless -p
// says otherwise; so does -p 8883 alone, as with mosquitto_pub.
func TestHostPortTLSFlags(t *testing.T) {
	t.Setenv(passwordEnv, "")
	dir := t.TempDir()
	ca := mqtttest.NewCA(t)
	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Certificate().Raw)
	cert, key := writeCertificate(t, dir, "client", ca.Issue(t, "client"))
	cases := []struct {
		args []string
		want string
	}{
		{nil, "tcp://127.0.0.1:1883"},
		{[]string{"-p", "1884"}, "tcp://127.0.0.1:1884"},
		{[]string{"--cafile", caFile}, "tls://127.0.0.1:8883"},
		{[]string{"--cafile", caFile, "-p", "1884"}, "tls://127.0.0.1:1884"},
		{[]string{"--insecure"}, "tls://127.0.0.1:8883"},
		{[]string{"--insecure", "-p", "1883"}, "tls://127.0.0.1:1883"},
		{[]string{"--cert", cert, "--key", key}, "tls://127.0.0.1:8883"},
		{[]string{"--cert", cert, "--key", key, "-p", "1884"}, "tls://127.0.0.1:1884"},
		{[]string{"-p", "8883"}, "tls://127.0.0.1:8883"},
	}
	for _, tc := range cases {
		args := append([]string{"-h", "127.0.0.1", "-u", "u", "-P", "secret"}, tc.args...)
		if _, server := configOf(t, args...); server != tc.want {
			t.Errorf("mqtt pub %q: server %s, want %s", tc.args, server, tc.want)
		}
	}
}

// -h and -p with --cafile log in over TLS, against a broker that serves
// TLS only.
func TestHostPortTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := mqtttest.NewCA(t)
	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Certificate().Raw)
	b := mqtttest.NewBrokerWith(t, mqtttest.BrokerConfig{TLS: &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1")}}})
	logins := recordLogins(t, b)

	args := append([]string{"pub", "-d", "-i", "tls-login", "-q", "1", "-t", "cli/tls/login", "-m", "x", "-W", "5"},
		at(b.Addr(), "--cafile", caFile, "-u", "u", "-P", "secret")...)
	_, stderr, status := runCmd(t, nil, args...)
	if status != 0 || !strings.Contains(stderr, "mqtt pub: connected to tls://"+b.Addr()+" as tls-login\n") {
		t.Fatalf("mqtt %q: exit status %d, stderr:\n%s\nwant 0 and a connection to tls://%s", args, status, stderr, b.Addr())
	}
	if got, want := logins.get("tls-login"), (login{username: "u", password: "secret", hasPassword: true}); got != want {
		t.Errorf("the broker got the login %+v, want %+v", got, want)
	}
}

// A plain MQTT listener given to -h and -p with a TLS flag gets a TLS
// handshake, never a CONNECT: the password is not sent in clear.
func TestNoPasswordInClear(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := mqtttest.NewCA(t)
	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Certificate().Raw)
	cert, key := writeCertificate(t, dir, "client", ca.Issue(t, "client"))
	const password = "never-in-clear"
	for name, flags := range map[string][]string{
		"--insecure": {"--insecure"},
		"--cafile":   {"--cafile", caFile},
		"--cert":     {"--cert", cert, "--key", key},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := listenPlain(t)
			args := append([]string{"pub", "-q", "1", "-t", "a", "-m", "x", "-W", "1", "-u", "u", "-P", password}, at(l.addr(), flags...)...)
			_, stderr, status := runCmd(t, nil, args...)
			// The listener answers a CONNACK to whatever comes: the
			// client finds it is no TLS server and retries until -W.
			if status != exitTimeout {
				t.Errorf("exit status %d, want %d", status, exitTimeout)
			}
			oneLine(t, stderr, "mqtt pub: ", "no connection to tls://"+l.addr())
			conns := l.stop()
			if len(conns) == 0 {
				t.Fatal("the listener saw no connection")
			}
			for i, c := range conns {
				if len(c) == 0 || c[0] != 0x16 { // a TLS handshake record; a CONNECT starts 0x10
					t.Errorf("connection %d began % x, want a TLS handshake record (16 ...)", i, c[:min(len(c), 16)])
				}
				if bytes.Contains(c, []byte(password)) {
					t.Errorf("connection %d carried the password in clear: %q", i, c)
				}
			}
		})
	}
}

// plainListener is a loopback TCP listener that records the bytes of every
// connection and answers each with a CONNACK, as a broker without TLS that
// is not picky would.
type plainListener struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns [][]byte
}

func listenPlain(t *testing.T) *plainListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &plainListener{ln: ln}
	l.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.wg.Go(func() { l.serve(c) })
		}
	})
	t.Cleanup(func() { l.stop() })
	return l
}

func (l *plainListener) addr() string { return l.ln.Addr().String() }

func (l *plainListener) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(patience)) // a client that hangs cannot hang the test
	var got bytes.Buffer
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	got.Write(buf[:n])
	if err == nil {
		c.Write([]byte{0x20, 0x02, 0x00, 0x00})
		io.Copy(&got, c) // until the client closes
	}
	l.mu.Lock()
	l.conns = append(l.conns, got.Bytes())
	l.mu.Unlock()
}

// stop closes the listener, waits until every connection has ended (the
// client has exited by then) and returns what each carried.
func (l *plainListener) stop() [][]byte {
	l.ln.Close()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns
}

// login is what a CONNECT carried.
type login struct {
	username, password string
	hasPassword        bool
}

// loginRecorder is a mochi hook that records the login of every CONNECT,
// by client identifier.
type loginRecorder struct {
	mochi.HookBase
	mu     sync.Mutex
	logins map[string]login
}

// recordLogins adds a loginRecorder to b.
func recordLogins(t *testing.T, b *mqtttest.Broker) *loginRecorder {
	t.Helper()
	h := &loginRecorder{logins: map[string]login{}}
	if err := b.Server().AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *loginRecorder) ID() string { return "cli-test-logins" }

func (h *loginRecorder) Provides(b byte) bool { return b == mochi.OnConnect }

// OnConnect runs before the CONNACK, so before the client can have
// finished.
func (h *loginRecorder) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logins[pk.Connect.ClientIdentifier] = login{
		username:    string(pk.Connect.Username),
		password:    string(pk.Connect.Password),
		hasPassword: pk.Connect.PasswordFlag,
	}
	return nil
}

func (h *loginRecorder) get(clientID string) login {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logins[clientID]
}

// writeFile writes a file of the test with the given mode, whatever the
// umask.
func writeFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// The password comes from -P, --url, --pw-file or $MQTT_CLI_PASSWORD, in
// that order; the broker gets the one that wins, and nothing else.
func TestPasswordSources(t *testing.T) {
	t.Parallel()
	b := mqtttest.NewBroker(t)
	logins := recordLogins(t, b)
	dir := t.TempDir()
	pwFile := writeFile(t, dir, "pw", "file-pw\n", 0o600)
	crlfFile := writeFile(t, dir, "pw-crlf", "file-pw\r\nsecond line\n", 0o600)
	bareFile := writeFile(t, dir, "pw-bare", "file pw without newline", 0o600)
	env := passwordEnv + "=env-pw"

	cases := []struct {
		name string
		args []string // after pub -i <name> -q 1 -m x, and -h -p -t unless --url is given
		env  string
		want login
	}{
		{"-P", []string{"-u", "u", "-P", "flag-pw"}, "", login{"u", "flag-pw", true}},
		{"--pw-file", []string{"-u", "u", "--pw-file", pwFile}, "", login{"u", "file-pw", true}},
		{"--pw-file CRLF", []string{"-u", "u", "--pw-file", crlfFile}, "", login{"u", "file-pw", true}},
		{"--pw-file no newline", []string{"-u", "u", "--pw-file", bareFile}, "", login{"u", "file pw without newline", true}},
		{"env", []string{"-u", "u"}, env, login{"u", "env-pw", true}},
		{"-P over env", []string{"-u", "u", "-P", "flag-pw"}, env, login{"u", "flag-pw", true}},
		{"--pw-file over env", []string{"-u", "u", "--pw-file", pwFile}, env, login{"u", "file-pw", true}},
		{"--url over env", []string{"--url", "mqtt://u:url-pw@" + b.Addr() + "/cli/pw"}, env, login{"u", "url-pw", true}},
		{"-P over --url", []string{"--url", "mqtt://u:url-pw@" + b.Addr() + "/cli/pw", "-P", "flag-pw"}, "", login{"u", "flag-pw", true}},
		{"env with the user of --url", []string{"--url", "mqtt://u@" + b.Addr() + "/cli/pw"}, env, login{"u", "env-pw", true}},
		{"env without a user name", nil, env, login{}},
		{"env without a user name, MQTT 5", []string{"-V", "5"}, env, login{}},
		{"env empty", []string{"-u", "u"}, passwordEnv + "=", login{"u", "", false}},
		{"--pw-file without a user name, MQTT 5", []string{"-V", "5", "--pw-file", pwFile}, "", login{"", "file-pw", true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := "pw-" + strings.NewReplacer(" ", "-", ",", "").Replace(tc.name)
			args := append([]string{"pub", "-i", id, "-q", "1", "-m", "x", "-W", "5"}, tc.args...)
			if !strings.Contains(strings.Join(tc.args, " "), "--url") {
				args = append(args, at(b.Addr(), "-t", "cli/pw")...)
			}
			var env []string
			if tc.env != "" {
				env = []string{tc.env}
			}
			p := startProgramEnv(t, binary, env, nil, args...)
			if status := p.wait(); status != 0 || p.stderr.String() != "" {
				t.Fatalf("mqtt %q: exit status %d, stderr:\n%s", args, status, p.stderr)
			}
			if got := logins.get(id); got != tc.want {
				t.Errorf("the broker got the login %+v, want %+v", got, tc.want)
			}
		})
	}

	// -d says where the password came from: the environment is easy to
	// forget.
	t.Run("-d", func(t *testing.T) {
		args := append([]string{"pub", "-d", "-q", "1", "-m", "x", "-u", "u"}, at(b.Addr(), "-t", "cli/pw")...)
		p := startProgramEnv(t, binary, []string{env}, nil, args...)
		if status := p.wait(); status != 0 || !strings.Contains(p.stderr.String(), "mqtt pub: the password comes from $"+passwordEnv+"\n") {
			t.Errorf("exit status %d, stderr:\n%s\nwant 0 and where the password came from", status, p.stderr)
		}
		if strings.Contains(p.stderr.String(), "env-pw") {
			t.Errorf("stderr shows the password:\n%s", p.stderr)
		}
	})

	// A file other users may read works, with a warning.
	t.Run("--pw-file readable by others", func(t *testing.T) {
		open := writeFile(t, dir, "pw-open", "file-pw\n", 0o644)
		args := append([]string{"pub", "-i", "pw-open", "-q", "1", "-m", "x", "-u", "u", "--pw-file", open}, at(b.Addr(), "-t", "cli/pw")...)
		_, stderr, status := runCmd(t, nil, args...)
		if status != 0 {
			t.Errorf("exit status %d, want 0; stderr:\n%s", status, stderr)
		}
		oneLine(t, stderr, "mqtt pub: warning: --pw-file "+open, "can be read by other users (mode 0644); chmod go-r "+open)
		if got, want := logins.get("pw-open"), (login{"u", "file-pw", true}); got != want {
			t.Errorf("the broker got the login %+v, want %+v", got, want)
		}
	})
}

// The precedence, in process, with what the broker cannot be asked to
// take: an empty -P (mochi refuses an empty password) wins over the
// environment too.
func TestChoosePassword(t *testing.T) {
	t.Setenv(passwordEnv, "env-pw")
	pwFile := writeFile(t, t.TempDir(), "pw", "file-pw\n", 0o600)
	cases := []struct {
		args   []string
		want   string
		has    bool
		source string
	}{
		{[]string{"-u", "u", "-P", ""}, "", true, "-P"},
		{[]string{"-u", "u", "-P", "flag-pw"}, "flag-pw", true, "-P"},
		{[]string{"--url", "mqtt://u:url-pw@h/t"}, "url-pw", true, "--url"},
		{[]string{"--url", "mqtt://u:@h/t"}, "", true, "--url"},
		{[]string{"--url", "mqtt://u:url-pw@h/t", "-P", "flag-pw"}, "flag-pw", true, "-P"},
		{[]string{"-u", "u", "--pw-file", pwFile}, "file-pw", true, "--pw-file"},
		{[]string{"-u", "u"}, "env-pw", true, "$" + passwordEnv},
		{[]string{"--url", "mqtt://u@h/t"}, "env-pw", true, "$" + passwordEnv},
		{[]string{"-V", "5"}, "", false, ""},
		{nil, "", false, ""},
	}
	for _, tc := range cases {
		var out, errs bytes.Buffer
		o, cfg, _, status, done := setup("pub", "", "", tc.args, stdio{out: &out, errOut: &errs}, func(*flag.FlagSet) {})
		if done {
			t.Errorf("mqtt pub %q: exit status %d, stderr %q", tc.args, status, errs.String())
			continue
		}
		if string(cfg.Password) != tc.want || (cfg.Password != nil) != tc.has || o.passwordSource != tc.source {
			t.Errorf("mqtt pub %q: password %q (set: %t) from %q; want %q (set: %t) from %q",
				tc.args, cfg.Password, cfg.Password != nil, o.passwordSource, tc.want, tc.has, tc.source)
		}
	}
}

// A password file that cannot be used, and two passwords given on purpose,
// end the command before anything is dialed.
func TestPasswordFileErrors(t *testing.T) {
	t.Setenv(passwordEnv, "")
	dir := t.TempDir()
	pwFile := writeFile(t, dir, "pw", "secret\n", 0o600)
	cases := []struct {
		args   []string
		status int
		want   string
	}{
		{[]string{"-u", "u", "-P", "secret", "--pw-file", pwFile}, 2, "give the password once: -P or --pw-file, not both"},
		{[]string{"--url", "mqtt://u:secret@127.0.0.1/a", "--pw-file", pwFile}, 2, "give the password once: in --url or with --pw-file, not both"},
		{[]string{"--pw-file", pwFile}, 2, "a password needs a username (-u) in MQTT 3.1.1"},
		{[]string{"-u", "u", "--pw-file", filepath.Join(dir, "none")}, 1, "--pw-file: open " + filepath.Join(dir, "none")},
		{[]string{"-u", "u", "--pw-file", writeFile(t, dir, "empty", "", 0o600)}, 1, "the first line is empty"},
		{[]string{"-u", "u", "--pw-file", writeFile(t, dir, "blank", "\nsecret\n", 0o600)}, 1, "the first line is empty"},
		{[]string{"-u", "u", "--pw-file", writeFile(t, dir, "long", strings.Repeat("s", 65536)+"\n", 0o600)}, 1, "longer than the 65535 bytes"},
		{[]string{"-u", "u", "--pw-file", dir}, 1, "--pw-file " + dir + ": read "},
	}
	for _, tc := range cases {
		args := append([]string{"pub", "-t", "a", "-m", "x"}, tc.args...)
		var out, errs bytes.Buffer
		status := run(t.Context(), args, stdio{in: strings.NewReader(""), out: &out, errOut: &errs})
		if status != tc.status || out.Len() > 0 || strings.Count(errs.String(), "\n") != 1 ||
			!strings.HasPrefix(errs.String(), "mqtt pub: ") || !strings.Contains(errs.String(), tc.want) {
			t.Errorf("mqtt %q: exit status %d, stdout %q, stderr %q; want %d and one line with %q", args, status, out.String(), errs.String(), tc.status, tc.want)
		}
		if strings.Contains(errs.String(), "secret") {
			t.Errorf("mqtt %q: stderr shows the password: %q", args, errs.String())
		}
	}
}

// No message of the command shows a password given in --url, or a piece
// of one, whatever characters it holds: '/', '@', '%', ':', '?', '#'.
func TestURLPasswordNeverShown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String() // nobody listens there once it is closed
	ln.Close()

	cases := []struct {
		password string
		args     []string // the command line after "pub -m x"
		status   int
	}{
		// The host would be the start of the password.
		{"Zq9/Wk7", []string{"--url", "mqtt://u:Zq9/Wk7@127.0.0.1:1883/t"}, 2},
		{"4711/0815", []string{"--url", "mqtt://u:4711/0815@127.0.0.1/t"}, 2},
		{"Zq9@Wk7/Vx5", []string{"--url", "mqtt://u:Zq9@Wk7/Vx5@127.0.0.1/t"}, 2},
		{"Zq9:Wk7/Vx5", []string{"-L", "tls://u:Zq9:Wk7/Vx5@127.0.0.1/t"}, 2},
		{"Zq9Wk7", []string{"--url", "mqtt://u:Zq9Wk7"}, 2},
		{"Zq9Wk7", []string{"--url", "mqtt://u:Zq9Wk7/t"}, 2},
		// url's escape errors quote the escape.
		{"Zq9%zzWk7", []string{"--url", "mqtt://u:Zq9%zzWk7@127.0.0.1/t"}, 2},
		{"Zq9%Wk7", []string{"--url", "mqtt://u:Zq9%Wk7@127.0.0.1/t"}, 2},
		{"Zq9%", []string{"--url", "mqtt://u:Zq9%@127.0.0.1/t"}, 2},
		// Errors that show the URL.
		{"Zq9:Wk7", []string{"--url", "mqtt://u:Zq9:Wk7@/t"}, 2},
		{"Zq9/Wk7", []string{"--url", "mqtt://u:Zq9/Wk7@/t"}, 2},
		{"Zq9/Wk7", []string{"--url", "u:Zq9/Wk7@127.0.0.1/t"}, 2},
		{"Zq9/Wk7", []string{"--url", "mqtt:/u:Zq9/Wk7@127.0.0.1/t"}, 2},
		{"Zq9@Wk7", []string{"--url", "foo://u:Zq9@Wk7@127.0.0.1/t"}, 2},
		{"Zq9/Wk7", []string{"-h", "mqtt://u:Zq9/Wk7@127.0.0.1", "-t", "t"}, 2},
		{"Zq9@Wk7", []string{"-h", "u:Zq9@Wk7@127.0.0.1", "-t", "t"}, 2},
		// Read right, and the connection fails: the errors name the
		// server.
		{"Zq9/Wk7", []string{"-W", "0.5", "--url", "mqtt://u:Zq9%2FWk7@" + closed + "/t"}, exitTimeout},
		{"Zq9?Wk7#Vx5", []string{"-W", "0.5", "--url", "mqtt://u:Zq9?Wk7#Vx5@" + closed + "/t"}, exitTimeout},
		{"Zq9@Wk7:Vx5", []string{"-W", "0.5", "--url", "ws://u:Zq9@Wk7:Vx5@" + closed + "/mqtt", "-t", "t"}, exitTimeout},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			args := append([]string{"pub", "-m", "x"}, tc.args...)
			stdout, stderr, status := runCmd(t, nil, args...)
			if status != tc.status || stdout != "" {
				t.Errorf("exit status %d, stdout %q; want %d and nothing", status, stdout, tc.status)
			}
			oneLine(t, stderr, "mqtt pub: ", "")
			for _, piece := range strings.FieldsFunc(tc.password, func(r rune) bool { return strings.ContainsRune("/@%:?#", r) }) {
				if len(piece) >= 3 && strings.Contains(stderr, piece) {
					t.Errorf("stderr shows %q of the password %q: %s", piece, tc.password, stderr)
				}
			}
		})
	}
}

// Against Mosquitto with a password file and no anonymous logins: the
// password of --pw-file and of $MQTT_CLI_PASSWORD logs in, a wrong one is
// refused at once (exit status 1, not a retry until -W).
func TestMosquittoPassword(t *testing.T) {
	t.Parallel()
	passwd := mosquitto.Require(t, "mosquitto_passwd")
	dir := t.TempDir()
	passwords := filepath.Join(dir, "passwords")
	if out, err := exec.Command(passwd, "-c", "-b", passwords, "u", "right-pw").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	m := mosquitto.New(t, "allow_anonymous false\npassword_file "+passwords)
	right := writeFile(t, dir, "right", "right-pw\n", 0o600)
	wrong := writeFile(t, dir, "wrong", "wrong-pw\n", 0o600)

	cases := []struct {
		name   string
		args   []string
		env    string
		status int
		want   string // in the one line of stderr; "" for none
	}{
		{"--pw-file", []string{"-u", "u", "--pw-file", right}, "", 0, ""},
		{"env", []string{"-u", "u"}, passwordEnv + "=right-pw", 0, ""},
		{"--pw-file wrong", []string{"-u", "u", "--pw-file", wrong}, "", 1, "mqtt pub: gave up connecting: "},
		{"env wrong", []string{"-u", "u"}, passwordEnv + "=wrong-pw", 1, "mqtt pub: gave up connecting: "},
		{"no password", []string{"-u", "u"}, "", 1, "mqtt pub: gave up connecting: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"pub", "-q", "1", "-m", "x", "-W", "5"}, at(m.Addr(), append([]string{"-t", "cli/pw"}, tc.args...)...)...)
			var env []string
			if tc.env != "" {
				env = []string{tc.env}
			}
			p := startProgramEnv(t, binary, env, nil, args...)
			status, stderr := p.wait(), p.stderr.String()
			if status != tc.status {
				t.Errorf("exit status %d, want %d; stderr:\n%s", status, tc.status, stderr)
			}
			if tc.want == "" && stderr != "" {
				t.Errorf("stderr:\n%s\nwant nothing", stderr)
			}
			if tc.want != "" {
				oneLine(t, stderr, tc.want, "")
			}
			if strings.Contains(stderr, "-pw") {
				t.Errorf("stderr shows a password:\n%s", stderr)
			}
		})
	}
}

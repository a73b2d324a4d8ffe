package mqtt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robustmqtt/mqtt"
	"github.com/robustmqtt/mqtt/backoff"
	"github.com/robustmqtt/mqtt/codec"
	"github.com/robustmqtt/mqtt/mqtttest"
)

// lockedBuffer is a log destination that goroutines may share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// connectOf decodes the CONNECT a scripted broker read.
func connectOf(t *testing.T, sc *mqtttest.ScriptedConn, version byte) *codec.Connect {
	t.Helper()
	p, _, err := codec.Decode(sc.Connect(), version, 0)
	if err != nil {
		t.Fatalf("decode CONNECT: %v", err)
	}
	return p.(*codec.Connect)
}

// Config.Credentials is asked before every attempt, and each CONNECT
// carries what it returned then: a token that expires is fetched afresh.
// Its error fails that attempt, which is retried like a refused one. The
// password shows in no log, event or error.
func TestCredentialsEveryAttempt(t *testing.T) {
	sb := mqtttest.NewScriptedBroker(t)
	sb.SetConnack([]byte{0x20, 0x02, 0x00, 0x04}) // bad user name or password
	errTokenService := errors.New("token service unavailable")
	proceed := make(chan struct{})
	var calls atomic.Int32
	var servers sync.Map
	creds := func(ctx context.Context, server string) (string, []byte, error) {
		servers.Store(server, true)
		n := calls.Add(1)
		switch n {
		case 1:
			return "", nil, errTokenService
		case 3:
			select { // the test lets the broker accept first
			case <-proceed:
			case <-ctx.Done():
				return "", nil, context.Cause(ctx)
			}
		}
		return "dev", fmt.Appendf(nil, "secret-token-%d", n), nil
	}
	var logs lockedBuffer
	c := start(t, mqtt.Config{Servers: []string{sb.URL()}, ClientID: "creds", Credentials: creds,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})

	var seen []string
	e := waitEvent(t, c, mqtt.Reconnecting)
	if !errors.Is(e.Err, errTokenService) {
		t.Fatalf("Reconnecting after %v, want the Credentials error", e.Err)
	}
	seen = append(seen, e.String())

	refused := scripted(t, sb)
	if p := connectOf(t, refused, 4); p.Username != "dev" || string(p.Password) != "secret-token-2" {
		t.Fatalf("second attempt sent %q/%q, want dev/secret-token-2", p.Username, p.Password)
	}
	e = waitEvent(t, c, mqtt.Reconnecting)
	var ce *mqtt.ConnectError
	if !errors.As(e.Err, &ce) {
		t.Fatalf("Reconnecting after %v, want the broker's refusal", e.Err)
	}
	seen = append(seen, e.String())
	sb.SetConnack(nil)
	close(proceed)

	accepted := scripted(t, sb)
	if p := connectOf(t, accepted, 4); p.Username != "dev" || string(p.Password) != "secret-token-3" {
		t.Fatalf("third attempt sent %q/%q, want dev/secret-token-3", p.Username, p.Password)
	}
	seen = append(seen, waitEvent(t, c, mqtt.Connected).String())
	if _, ok := servers.Load(sb.URL()); !ok {
		t.Errorf("Credentials was not given the server %s", sb.URL())
	}
	st := c.Stats().Connections
	if st.Attempts != 3 || st.Failed != 1 || st.Refused != 1 || st.Succeeded != 1 {
		t.Errorf("connection stats %+v, want 3 attempts: 1 failed, 1 refused, 1 succeeded", st)
	}
	c.Close()
	for _, s := range append(seen, logs.String()) {
		if strings.Contains(s, "secret-token") {
			t.Errorf("the password shows: %s", s)
		}
	}
}

// Credentials that CONNECT cannot carry fail the attempt with an error that
// says why and does not show the password; so does a Credentials that
// does not return within ConnectTimeout (in fake time, exactly then).
func TestCredentialsRefusedByTheClient(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version byte
		user    string
		pass    []byte
		want    string
	}{
		{"password without user, 3.1.1", 4, "", []byte("pw"), "a password without a username"},
		{"bad user name", 5, "a\x00b", nil, "the username"},
		{"password too long", 5, "u", make([]byte, 70000), "the password is 70000 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := mqtt.Start(mqtt.Config{Servers: []string{closedPort(t)}, ClientID: "bad-creds", Version: tc.version,
				Backoff: backoff.Never(),
				Credentials: func(context.Context, string) (string, []byte, error) {
					return tc.user, tc.pass, nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.WaitConnected(testCtx(t))
			if !errors.Is(err, mqtt.ErrGaveUp) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WaitConnected: %v; want ErrGaveUp saying %q", err, tc.want)
			}
			if st := c.Stats().Connections; st.Attempts != 1 || st.Failed != 1 {
				t.Errorf("connection stats %+v, want 1 failed attempt", st)
			}
		})
	}
	t.Run("slow", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			begin := time.Now()
			c, err := mqtt.Start(mqtt.Config{Servers: []string{"tcp://never.dialed:1883"}, ClientID: "slow-creds",
				ConnectTimeout: 3 * time.Second, Backoff: backoff.Never(),
				Dial: func(context.Context, string) (net.Conn, error) {
					t.Error("dialed without credentials")
					return nil, errors.New("no")
				},
				Credentials: func(ctx context.Context, _ string) (string, []byte, error) {
					<-ctx.Done()
					return "", nil, context.Cause(ctx)
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.WaitConnected(t.Context())
			if !errors.Is(err, mqtt.ErrGaveUp) || !strings.Contains(err.Error(), "connect timeout of 3s") || time.Since(begin) != 3*time.Second {
				t.Fatalf("after %s: %v; want a give-up after the 3s connect timeout", time.Since(begin), err)
			}
		})
	})
}

// Credentials replaces Username and Password: setting both is a
// configuration error.
func TestCredentialsWithUsernameIsInvalid(t *testing.T) {
	creds := func(context.Context, string) (string, []byte, error) { return "u", nil, nil }
	for _, cfg := range []mqtt.Config{
		{Username: "u", Credentials: creds},
		{Password: []byte{}, Credentials: creds, Version: 5},
	} {
		cfg.Servers, cfg.ClientID = []string{"tcp://127.0.0.1:1"}, "both"
		if _, err := mqtt.Start(cfg); !errors.Is(err, mqtt.ErrInvalidConfig) || !strings.Contains(err.Error(), "not both") {
			t.Errorf("Start with Credentials and Username/Password: %v, want ErrInvalidConfig", err)
		}
	}
}

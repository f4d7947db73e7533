package sshconn

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

func TestRunOutputStdinAndExit(t *testing.T) {
	s := startServer(t)
	p := s.pool(t, nil)
	ctx := context.Background()

	out, _, err := p.Run(ctx, "alice", []string{"printf", "%s|", "a b", "it's", "$(id)", ""}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "a b|it's|$(id)||"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}

	out, _, err = p.Run(ctx, "alice", []string{"cat"}, strings.NewReader("script\nbody\n"))
	if err != nil || string(out) != "script\nbody\n" {
		t.Errorf("cat stdin: out=%q err=%v", out, err)
	}

	_, stderr, err := p.Run(ctx, "alice", []string{"sh", "-c", "echo bad >&2; exit 3"}, nil)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Status != 3 || strings.TrimSpace(string(stderr)) != "bad" {
		t.Fatalf("exit: err=%v stderr=%q", err, stderr)
	}
	if !strings.Contains(ee.Error(), "exited 3: bad") {
		t.Errorf("ExitError message %q", ee.Error())
	}
}

func TestRunRefusesBadInputBeforeDialling(t *testing.T) {
	s := startServer(t)
	p := s.pool(t, nil)
	for _, tc := range []struct {
		name string
		user string
		argv []string
	}{
		{"empty argv", "alice", nil},
		{"nul byte", "alice", []string{"echo", "a\x00b"}},
		{"bad user", "Alice;rm", []string{"true"}},
		{"root-like pattern", "../x", []string{"true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := p.Run(context.Background(), tc.user, tc.argv, nil)
			if job.ErrorCode(err) != job.EInvalid {
				t.Fatalf("err = %v, want code invalid", err)
			}
		})
	}
	if n := s.dials.Load(); n != 0 {
		t.Errorf("dials = %d, want 0", n)
	}
}

func TestHostKeyPinned(t *testing.T) {
	s := startServer(t)
	other := newSigner(t)
	for _, tc := range []struct {
		name string
		kh   func() string
		want string
	}{
		{"mismatch", func() string { return s.knownHosts(other.PublicKey()) }, "does not match"},
		{"unknown host", func() string {
			f := filepath.Join(t.TempDir(), "kh")
			os.WriteFile(f, []byte("[127.0.0.1]:1 "+AuthorizedKey(s.hostSigner)+"\n"), 0o600)
			return f
		}, "not in known_hosts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := s.pool(t, func(c *Config) { c.KnownHostsFile = tc.kh() })
			_, _, err := p.Run(context.Background(), "alice", []string{"true"}, nil)
			if !errors.Is(err, ErrHostKey) || job.ErrorCode(err) != job.EUnavailable {
				t.Fatalf("err = %v, want ErrHostKey/unavailable", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %q does not say %q", err, tc.want)
			}
		})
	}
	if _, err := New(Config{Addr: s.addr(), UserCA: s.ca}); err == nil {
		t.Error("New without known_hosts succeeded")
	}
}

func TestCertificatePrincipalExpiryAndReuse(t *testing.T) {
	s := startServer(t)
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s.set(func(s *testServer) { s.clock = clock })
	p := s.pool(t, func(c *Config) { c.CertTTL = 5 * time.Minute; c.now = clock })
	ctx := context.Background()
	if _, _, err := p.Run(ctx, "alice", []string{"true"}, nil); err != nil {
		t.Fatal(err)
	}
	c1 := s.lastCert()
	if c1 == nil || len(c1.ValidPrincipals) != 1 || c1.ValidPrincipals[0] != "alice" {
		t.Fatalf("principals = %v, want [alice]", c1.ValidPrincipals)
	}
	if got := time.Duration(c1.ValidBefore-uint64(now.Unix())) * time.Second; got != 5*time.Minute {
		t.Errorf("validity after now = %v, want 5m", got)
	}
	if c1.CertType != 1 || c1.KeyId != "ftgate:alice" {
		t.Errorf("cert type %d key id %q", c1.CertType, c1.KeyId)
	}

	// Reconnect far from expiry: same certificate.
	s.dropAll()
	waitDropped(t, p, "alice")
	if _, _, err := p.Run(ctx, "alice", []string{"true"}, nil); err != nil {
		t.Fatal(err)
	}
	if c2 := s.lastCert(); c2.Serial != c1.Serial {
		t.Errorf("certificate re-minted far from expiry")
	}
	// Close to expiry: a new one.
	mu.Lock()
	now = now.Add(4*time.Minute + 30*time.Second)
	mu.Unlock()
	s.dropAll()
	waitDropped(t, p, "alice")
	if _, _, err := p.Run(ctx, "alice", []string{"true"}, nil); err != nil {
		t.Fatal(err)
	}
	if c3 := s.lastCert(); c3.Serial == c1.Serial {
		t.Errorf("certificate not re-minted close to expiry")
	}

	// Bob gets his own certificate and connection.
	if _, _, err := p.Run(ctx, "bob", []string{"true"}, nil); err != nil {
		t.Fatal(err)
	}
	if c := s.lastCert(); c.ValidPrincipals[0] != "bob" {
		t.Errorf("bob's principals = %v", c.ValidPrincipals)
	}
}

func TestExpiredCertificateRefused(t *testing.T) {
	s := startServer(t)
	s.set(func(s *testServer) { s.clock = func() time.Time { return time.Now().Add(10 * time.Minute) } })
	p := s.pool(t, func(c *Config) { c.CertTTL = time.Minute })
	_, _, err := p.Run(context.Background(), "alice", []string{"true"}, nil)
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
}

func TestServiceAccountMode(t *testing.T) {
	s := startServer(t)
	key := newSigner(t)
	s.set(func(s *testServer) { s.serviceKey = key.PublicKey() })
	p := s.pool(t, func(c *Config) { c.UserCA = nil; c.ServiceKey = key; c.ServiceUser = "svc" })
	for _, u := range []string{"alice", "bob"} {
		if _, _, err := p.Run(context.Background(), u, []string{"true"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.users) != 1 || s.users[0] != "svc" {
		t.Errorf("logins = %v, want one as svc", s.users)
	}
}

func TestSessionCapUnder50Callers(t *testing.T) {
	s := startServer(t)
	s.set(func(s *testServer) { s.maxSessions = 10 })
	p := s.pool(t, func(c *Config) { c.MaxSessions = 8 })
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, _, err := p.Run(context.Background(), "alice", []string{"sh", "-c", "sleep 0.05; echo ok"}, nil)
			if err == nil && string(out) != "ok\n" {
				err = errors.New("bad output " + string(out))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if m := s.maxRun.Load(); m > 8 || m < 2 {
		t.Errorf("max concurrent sessions = %d, want 2..8", m)
	}
	// The server may refuse a session for a moment after the pool freed its slot (it
	// counts a session until it has processed the close); the pool retries those.
	t.Logf("server refused %d sessions, all retried", s.refused.Load())
	if d := s.dials.Load(); d != 1 {
		t.Errorf("connections = %d, want 1 shared", d)
	}
}

// TestRefusedSessionsRetried: a server whose session limit is below the pool's refuses
// channels ("administratively prohibited", as sshd's MaxSessions does); every caller
// still gets its command run and its SFTP read, within its deadline.
func TestRefusedSessionsRetried(t *testing.T) {
	s := startServer(t)
	s.set(func(s *testServer) { s.maxSessions = 2 })
	p := s.pool(t, func(c *Config) { c.MaxSessions = 4 })
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/f", []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if i%4 == 0 { // the SFTP client takes one of the server's sessions for good
				b, err := p.ReadFile(ctx, "alice", dir+"/f", 100)
				if err == nil && string(b) != "data" {
					err = errors.New("bad file " + string(b))
				}
				errs <- err
				return
			}
			out, _, err := p.Run(ctx, "alice", []string{"sh", "-c", "sleep 0.02; echo ok"}, nil)
			if err == nil && string(out) != "ok\n" {
				err = errors.New("bad output " + string(out))
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if r := s.refused.Load(); r == 0 {
		t.Errorf("the server refused no session: the retry path was not exercised")
	}
	if m := s.maxRun.Load(); m > 2 {
		t.Errorf("max concurrent commands = %d, over the server's limit of 2", m)
	}
}

// TestRefusedSessionGivesUpAtDeadline: a server that refuses every session makes Run
// and SFTP fail with EUnavailable once the caller's deadline passes, not before and
// not long after.
func TestRefusedSessionGivesUpAtDeadline(t *testing.T) {
	s := startServer(t)
	s.set(func(s *testServer) { s.maxSessions = 0 })
	p := s.pool(t, nil)
	for name, call := range map[string]func(ctx context.Context) error{
		"run": func(ctx context.Context) error {
			_, _, err := p.Run(ctx, "alice", []string{"true"}, nil)
			return err
		},
		"sftp": func(ctx context.Context) error {
			_, err := p.ReadFile(ctx, "alice", "/etc/hostname", 100)
			return err
		},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		err := call(ctx)
		cancel()
		took := time.Since(start)
		if job.ErrorCode(err) != job.EUnavailable || !strings.Contains(err.Error(), "refused") {
			t.Errorf("%s: err = %v, want EUnavailable naming the refusals", name, err)
		}
		if took < 250*time.Millisecond || took > 2*time.Second {
			t.Errorf("%s: gave up after %v, want about the 300ms deadline", name, took)
		}
	}
	if s.refused.Load() < 4 {
		t.Errorf("server refused only %d sessions: no retries", s.refused.Load())
	}
}

func TestSessionWaitHonoursContext(t *testing.T) {
	s := startServer(t)
	p := s.pool(t, func(c *Config) { c.MaxSessions = 1 })
	go p.Run(context.Background(), "alice", []string{"sleep", "1"}, nil)
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := p.Run(ctx, "alice", []string{"true"}, nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 700*time.Millisecond {
		t.Fatalf("err = %v after %v, want a prompt deadline error", err, time.Since(start))
	}
}

func TestReconnectAfterDrop(t *testing.T) {
	s := startServer(t)
	p := s.pool(t, nil)
	ctx := context.Background()
	if _, _, err := p.Run(ctx, "alice", []string{"true"}, nil); err != nil {
		t.Fatal(err)
	}
	s.dropAll()
	// No waiting: the first call after the drop may find the dead client and must redial.
	if _, _, err := p.Run(ctx, "alice", []string{"echo", "again"}, nil); err != nil {
		t.Fatal(err)
	}
	if d := s.dials.Load(); d != 2 {
		t.Errorf("dials = %d, want 2", d)
	}
}

func TestDialRetriesThenUnavailable(t *testing.T) {
	s := startServer(t)
	p := s.pool(t, nil)
	s.ln.Close()
	start := time.Now()
	_, _, err := p.Run(context.Background(), "alice", []string{"true"}, nil)
	if job.ErrorCode(err) != job.EUnavailable {
		t.Fatalf("err = %v, want unavailable", err)
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Errorf("3 attempts took only %v: no backoff", el)
	}
}

func TestDeadlineHonoured(t *testing.T) {
	s := startServer(t)
	p := s.pool(t, func(c *Config) { c.CommandTimeout = 300 * time.Millisecond })
	start := time.Now()
	_, _, err := p.Run(context.Background(), "alice", []string{"sleep", "5"}, nil)
	if !errors.Is(err, context.DeadlineExceeded) || job.ErrorCode(err) != job.EUnavailable {
		t.Fatalf("err = %v, want deadline", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v", el)
	}
	// The connection stays usable.
	if _, _, err := p.Run(context.Background(), "alice", []string{"true"}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestDeadlineWithDeadPeer(t *testing.T) {
	s := startServer(t)
	p := s.pool(t, func(c *Config) { c.CommandTimeout = 300 * time.Millisecond })
	if _, _, err := p.Run(context.Background(), "alice", []string{"true"}, nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err := p.Run(context.Background(), "alice", []string{"sh", "-c", "trap '' HUP PIPE; sleep 3"}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %v", el)
	}
}

func TestOutputCap(t *testing.T) {
	s := startServer(t)
	p := s.pool(t, func(c *Config) { c.MaxOutput = 1000 })
	_, _, err := p.Run(context.Background(), "alice", []string{"head", "-c", "100000", "/dev/zero"}, nil)
	if !errors.Is(err, ErrOutputLimit) {
		t.Fatalf("err = %v, want ErrOutputLimit", err)
	}
	out, _, err := p.Run(context.Background(), "alice", []string{"head", "-c", "1000", "/dev/zero"}, nil)
	if err != nil || len(out) != 1000 {
		t.Fatalf("exactly the cap: %d bytes, err %v", len(out), err)
	}
}

func TestIdleClose(t *testing.T) {
	s := startServer(t)
	p := s.pool(t, func(c *Config) { c.IdleTimeout = 100 * time.Millisecond; c.KeepAlive = 30 * time.Millisecond })
	if _, _, err := p.Run(context.Background(), "alice", []string{"true"}, nil); err != nil {
		t.Fatal(err)
	}
	waitDropped(t, p, "alice")
	if _, _, err := p.Run(context.Background(), "alice", []string{"true"}, nil); err != nil {
		t.Fatal(err)
	}
	if d := s.dials.Load(); d != 2 {
		t.Errorf("dials = %d, want 2 (idle close then redial)", d)
	}
}

func TestKeepaliveDetectsDeadPeer(t *testing.T) {
	s := startServer(t)
	p := s.pool(t, func(c *Config) { c.KeepAlive = 50 * time.Millisecond })
	if _, _, err := p.Run(context.Background(), "alice", []string{"true"}, nil); err != nil {
		t.Fatal(err)
	}
	s.hang.Store(true)
	waitDropped(t, p, "alice")
}

// waitDropped waits (at most 3 s) until the pool has no live client for user.
func waitDropped(t *testing.T, p *Pool, user string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		c, _ := p.conn(user)
		c.mu.Lock()
		gone := c.client == nil
		c.mu.Unlock()
		if gone {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("connection of %s not dropped", user)
}

func TestSFTP(t *testing.T) {
	s := startServer(t)
	p := s.pool(t, nil)
	ctx := context.Background()
	dir := t.TempDir()
	f := filepath.Join(dir, "sub", "job.json")
	if err := p.MkdirAll(ctx, "alice", filepath.Dir(f), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{`{"a":1}`, `{"a":2,"b":"longer"}`} {
		if err := p.WriteFile(ctx, "alice", f, []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := p.ReadFile(ctx, "alice", f, 1<<10)
		if err != nil || string(got) != body {
			t.Fatalf("read back %q, %v", got, err)
		}
	}
	fi, err := p.Stat(ctx, "alice", f)
	if err != nil || fi.Mode().Perm() != 0o640 || fi.Size() != int64(len(`{"a":2,"b":"longer"}`)) {
		t.Fatalf("stat: %v %v", fi, err)
	}
	ents, err := p.ReadDir(ctx, "alice", filepath.Dir(f))
	if err != nil || len(ents) != 1 || ents[0].Name() != "job.json" {
		names := []string{}
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("readdir = %v, %v (temp files left?)", names, err)
	}
	if _, err := p.ReadFile(ctx, "alice", f, 5); !errors.Is(err, ErrOutputLimit) {
		t.Errorf("read over max: %v", err)
	}
	r, err := p.Open(ctx, "alice", f, 7)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(rest) != `"b":"longer"}` {
		t.Errorf("open at 7: %q %v", rest, err)
	}
	real, err := p.RealPath(ctx, "alice", filepath.Dir(f)+"/./job.json")
	if err != nil || real != f {
		t.Errorf("realpath = %q, %v", real, err)
	}
	for _, bad := range []string{"relative/x", dir + "/../etc/passwd", dir + "/a\x00b"} {
		if _, err := p.ReadFile(ctx, "alice", bad, 10); job.ErrorCode(err) != job.EInvalid {
			t.Errorf("ReadFile(%q) err = %v, want invalid", bad, err)
		}
	}
	if _, err := p.Stat(ctx, "alice", filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat missing: %v", err)
	}
}

func TestPoolClosed(t *testing.T) {
	s := startServer(t)
	p := s.pool(t, nil)
	p.Close()
	if _, _, err := p.Run(context.Background(), "alice", []string{"true"}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v", err)
	}
}

var _ = bytes.Equal

// TestRunSignalledCommand: a command the login node reports killed by a signal
// (exit-signal, as OpenSSH sends it) is an *ExitError with the signal and status -1,
// not a status that could pass for a real exit code.
func TestRunSignalledCommand(t *testing.T) {
	s := startServer(t)
	s.exitSignals.Store(true)
	p := s.pool(t, nil)
	_, _, err := p.Run(context.Background(), "alice", []string{"exec", "sh", "-c", "kill -TERM $$"}, nil)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Signal != "TERM" || ee.Status != -1 {
		t.Fatalf("signalled command: %#v (%v), want an ExitError with signal TERM and status -1", ee, err)
	}
	_, _, err = p.Run(context.Background(), "alice", []string{"sh", "-c", "exit 3"}, nil)
	if !errors.As(err, &ee) || ee.Signal != "" || ee.Status != 3 {
		t.Fatalf("exit 3: %#v (%v)", ee, err)
	}
}

// TestKilledSessionKeepsConnection: a command stopped at its deadline whose session
// then closes (the usual case) leaves the connection in use: only a session that
// does not close within 2 s costs the connection.
func TestKilledSessionKeepsConnection(t *testing.T) {
	s := startServer(t)
	p := s.pool(t, nil)
	ctx := context.Background()
	if _, _, err := p.Run(ctx, "alice", []string{"true"}, nil); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, _, err := p.Run(short, "alice", []string{"sleep", "10"}, nil); err == nil {
		t.Fatal("sleep 10 outlived a 200 ms deadline")
	}
	if _, _, err := p.Run(ctx, "alice", []string{"true"}, nil); err != nil {
		t.Fatal(err)
	}
	if n := s.dials.Load(); n != 1 {
		t.Errorf("%d connections after a killed command, want 1 (its session closed in time)", n)
	}
}

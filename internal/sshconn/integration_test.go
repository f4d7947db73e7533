package sshconn

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ftgate/ftgate/internal/stacktest"
)

func stackPool(t *testing.T, mod func(*Config)) *Pool {
	t.Helper()
	st := stacktest.Require(t)
	ca, err := LoadSigner(st.UserCAKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Addr: st.SSHAddr, KnownHostsFile: st.KnownHosts, UserCA: ca, Logger: quietLogger{}}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestIntegrationCertificateLoginAsEachUser(t *testing.T) {
	p := stackPool(t, nil)
	for _, u := range []string{"alice", "bob"} {
		out, _, err := p.Run(context.Background(), u, []string{"id", "-un"}, nil)
		if err != nil || strings.TrimSpace(string(out)) != u {
			t.Errorf("%s: logged in as %q, %v", u, out, err)
		}
	}
	// root has no login (PermitRootLogin no): refused, not retried.
	if _, _, err := p.Run(context.Background(), "root", []string{"true"}, nil); !errors.Is(err, ErrAuth) {
		t.Errorf("root: %v, want ErrAuth", err)
	}
}

func TestIntegrationWrongHostKeyRefused(t *testing.T) {
	st := stacktest.Require(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	other := newSigner(t)
	host := "[" + strings.Replace(st.SSHAddr, ":", "]:", 1)
	os.WriteFile(kh, []byte(host+" "+AuthorizedKey(other)+"\n"), 0o600)
	p := stackPool(t, func(c *Config) { c.KnownHostsFile = kh })
	_, _, err := p.Run(context.Background(), "alice", []string{"true"}, nil)
	if !errors.Is(err, ErrHostKey) {
		t.Fatalf("err = %v, want ErrHostKey", err)
	}
}

func TestIntegrationConcurrentCallersShareOneConnection(t *testing.T) {
	p := stackPool(t, func(c *Config) { c.MaxSessions = 8 })
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := p.Run(context.Background(), "alice", []string{"sh", "-c", "sleep 0.05"}, nil)
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
}

package sshconn

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/ftgate/ftgate/internal/job"
)

func TestCheckHostKey(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	if err := s.pool(t, nil).CheckHostKey(ctx); err != nil {
		t.Fatalf("pinned key: %v", err)
	}
	other := newSigner(t)
	err := s.pool(t, func(c *Config) { c.KnownHostsFile = s.knownHosts(other.PublicKey()) }).CheckHostKey(ctx)
	if !errors.Is(err, ErrHostKey) {
		t.Fatalf("other key: err = %v, want ErrHostKey", err)
	}
	s.mu.Lock()
	n := len(s.users)
	s.mu.Unlock()
	if n != 0 {
		t.Errorf("CheckHostKey logged in %d times; it must stop after the key exchange", n)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	err = s.pool(t, func(c *Config) { c.Addr = addr; c.KnownHostsFile = s.knownHosts(s.hostSigner.PublicKey()) }).CheckHostKey(ctx)
	if job.ErrorCode(err) != job.EUnavailable || errors.Is(err, ErrHostKey) {
		t.Fatalf("closed port: err = %v, want unavailable", err)
	}
}

func TestOnDialFailureSeesAuthRefusal(t *testing.T) {
	s := startServer(t)
	var got []error
	p := s.pool(t, func(c *Config) {
		c.UserCA = newSigner(t) // a CA the server does not trust
		c.OnDialFailure = func(err error) { got = append(got, err) }
	})
	_, _, err := p.Run(context.Background(), "alice", []string{"true"}, nil)
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	if len(got) != 1 || !errors.Is(got[0], ErrAuth) {
		t.Fatalf("OnDialFailure got %v, want one ErrAuth", got)
	}
	if _, _, err := s.pool(t, nil).Run(context.Background(), "alice", []string{"true"}, nil); err != nil {
		t.Fatal(err)
	}
}

// TestCheckHostKeyErrorKinds: a refused key is ErrHostKey and not "unavailable" (it is
// not retried as a network failure); a node that drops the connection during the
// handshake is unavailable.
func TestCheckHostKeyErrorKinds(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	other := newSigner(t)
	err := s.pool(t, func(c *Config) { c.KnownHostsFile = s.knownHosts(other.PublicKey()) }).CheckHostKey(ctx)
	if !errors.Is(err, ErrHostKey) || job.ErrorCode(err) == job.EUnavailable {
		t.Errorf("other key: err = %v (code %q), want ErrHostKey, not unavailable", err, job.ErrorCode(err))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close() // no SSH banner: the handshake fails
		}
	}()
	err = s.pool(t, func(c *Config) {
		c.Addr = ln.Addr().String()
		c.KnownHostsFile = s.knownHosts(s.hostSigner.PublicKey())
	}).CheckHostKey(ctx)
	if job.ErrorCode(err) != job.EUnavailable || errors.Is(err, ErrHostKey) {
		t.Errorf("dropped handshake: err = %v (code %q), want unavailable", err, job.ErrorCode(err))
	}
}

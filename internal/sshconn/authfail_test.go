package sshconn

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ftgate/ftgate/internal/job"
)

// TestAuthFailureRemembered: after a refused login, calls for that user fail at once
// for AuthFailureTTL without a new handshake, with a reason naming the user; other
// users are unaffected; after the TTL the gateway dials again.
func TestAuthFailureRemembered(t *testing.T) {
	s := startServer(t)
	s.set(func(s *testServer) { s.clock = func() time.Time { return time.Now().Add(10 * time.Minute) } }) // every cert looks expired
	now := time.Now()
	p := s.pool(t, func(c *Config) { c.CertTTL = time.Minute; c.now = func() time.Time { return now } })
	ctx := context.Background()
	if _, _, err := p.Run(ctx, "alice", []string{"true"}, nil); !errors.Is(err, ErrAuth) {
		t.Fatalf("first: %v, want ErrAuth", err)
	}
	refused := s.accepted()
	for i := 0; i < 20; i++ {
		_, _, err := p.Run(ctx, "alice", []string{"true"}, nil)
		if !errors.Is(err, ErrAuth) || job.ErrorCode(err) != job.EUnavailable || !strings.Contains(job.ErrorMessage(err), "refused the login of alice") {
			t.Fatalf("remembered: %v", err)
		}
	}
	if d := s.accepted() - refused; d != 0 {
		t.Errorf("%d handshakes for 20 calls within the TTL, want 0", d)
	}
	now = now.Add(AuthFailureTTL + time.Second)
	if _, _, err := p.Run(ctx, "alice", []string{"true"}, nil); !errors.Is(err, ErrAuth) {
		t.Fatalf("after the TTL: %v", err)
	}
	if d := s.accepted() - refused; d != 1 {
		t.Errorf("%d handshakes after the TTL, want 1", d)
	}
}

// accepted is the number of TCP connections the server accepted (each one a handshake).
func (s *testServer) accepted() int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int32(len(s.conns))
}

// TestAuthRefusedMatchesTheLibrary pins x/crypto/ssh's text for a refused login
// (authRefused matches it, having no type to test): a real client handshake against
// a server that refuses every key is authRefused; a handshake that fails otherwise
// (host key not trusted, the server hanging up) is not.
func TestAuthRefusedMatchesTheLibrary(t *testing.T) {
	t.Parallel()
	host, client := newSigner(t), newSigner(t)
	handshake := func(refuse bool, hostKey ssh.HostKeyCallback) error {
		ln, err := net.Listen("tcp", "127.0.0.1:0") // not net.Pipe: both sides write first
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			sn, err := ln.Accept()
			if err != nil {
				return
			}
			defer sn.Close()
			if !refuse { // hang up during key exchange
				return
			}
			cfg := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) {
				return nil, errors.New("not this key")
			}}
			cfg.AddHostKey(host)
			_, _, _, _ = ssh.NewServerConn(sn, cfg)
		}()
		cn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer cn.Close()
		_ = cn.SetDeadline(time.Now().Add(10 * time.Second))
		_, _, _, err = ssh.NewClientConn(cn, ln.Addr().String(), &ssh.ClientConfig{User: "alice",
			Auth: []ssh.AuthMethod{ssh.PublicKeys(client)}, HostKeyCallback: hostKey})
		return err
	}
	err := handshake(true, ssh.FixedHostKey(host.PublicKey()))
	if err == nil || !strings.Contains(err.Error(), authRefusedText) || !authRefused(err) {
		t.Fatalf("refused login: %v; want x/crypto/ssh's %q (did an upgrade reword it? update authRefusedText)", err, authRefusedText)
	}
	if err := handshake(true, ssh.FixedHostKey(client.PublicKey())); err == nil || authRefused(err) {
		t.Errorf("untrusted host key: %v; want a handshake error that is not a refused login", err)
	}
	if err := handshake(false, ssh.FixedHostKey(host.PublicKey())); err == nil || authRefused(err) {
		t.Errorf("server hung up: %v; want a handshake error that is not a refused login", err)
	}
	if authRefused(nil) || authRefused(errors.New("ssh: handshake failed: EOF")) {
		t.Error("authRefused matched nil or EOF")
	}
}

package sshconn

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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

package sshconn

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"github.com/ftgate/ftgate/internal/job"
)

// TestOpenStreamsCountTowardMaxSessions: with max_sessions 2, two open streams take
// both slots (a command waits), and closing one frees a slot.
func TestOpenStreamsCountTowardMaxSessions(t *testing.T) {
	s := startServer(t)
	p := s.pool(t, func(c *Config) { c.MaxSessions = 2 })
	f := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(f, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var open []interface{ Close() error }
	for i := 0; i < 2; i++ {
		rc, err := p.Open(ctx, "alice", f, 0)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, rc)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, _, err := p.Run(short, "alice", []string{"true"}, nil); err == nil {
		t.Fatalf("a third session ran while two streams hold both slots")
	}
	open[0].Close()
	if _, _, err := p.Run(ctx, "alice", []string{"true"}, nil); err != nil {
		t.Fatalf("after closing a stream: %v", err)
	}
	open[1].Close()
	open[1].Close() // twice is harmless: the slot is released once
	if _, _, err := p.Run(ctx, "alice", []string{"true"}, nil); err != nil {
		t.Fatal(err)
	}
}

// TestSFTPWorkKeepsItsSlotAfterTimeout: SFTP work that outlives its deadline keeps
// its slot until the work returns.
func TestSFTPWorkKeepsItsSlotAfterTimeout(t *testing.T) {
	s := startServer(t)
	p := s.pool(t, func(c *Config) { c.MaxSessions = 1; c.CommandTimeout = 200 * time.Millisecond })
	f := filepath.Join(t.TempDir(), "x")
	_ = os.WriteFile(f, []byte("x"), 0o644)
	block := make(chan struct{})
	if _, err := p.sftpInSlot(context.Background(), "alice", f, nil, func(*sftp.Client) error { <-block; return nil }); err == nil {
		t.Fatal("blocked SFTP work did not time out")
	}
	c, _ := p.conn("alice")
	if n := len(c.sem); n != 1 {
		t.Errorf("%d slots held after the timed-out SFTP work, want 1 (it still runs)", n)
	}
	close(block)
	deadline := time.Now().Add(2 * time.Second)
	for len(c.sem) != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(c.sem); n != 0 {
		t.Errorf("%d slots held after the work returned, want 0", n)
	}
}

// TestOpenThatSucceedsAfterTheDeadlineIsClosed: the remote open answers only after
// the caller's deadline; the late handle is closed (no SFTP handle leaks) and the
// slot is given back after that.
func TestOpenThatSucceedsAfterTheDeadlineIsClosed(t *testing.T) {
	s := startServer(t)
	p := s.pool(t, func(c *Config) { c.MaxSessions = 1 })
	f := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(f, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	late := make(chan struct{})
	var once sync.Once
	answer := func() { once.Do(func() { close(late) }) }
	t.Cleanup(answer)
	hook := func(typ byte) {
		if typ == fxpOpen {
			<-late
		}
	}
	s.beforeSFTP.Store(&hook)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if rc, err := p.Open(ctx, "alice", f, 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open past the deadline = %v, %v; want context.DeadlineExceeded", rc, err)
	}
	c, _ := p.conn("alice")
	if n := len(c.sem); n != 1 {
		t.Errorf("%d slots held while the open is still pending, want 1", n)
	}
	answer() // the remote open succeeds now, nobody waits for it
	deadline := time.Now().Add(5 * time.Second)
	for (s.sftpCloses.Load() < s.sftpOpens.Load() || len(c.sem) != 0) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if o, cl := s.sftpOpens.Load(), s.sftpCloses.Load(); o != 1 || cl != 1 {
		t.Errorf("server saw %d opens and %d closes, want 1 and 1: the late handle leaked", o, cl)
	}
	if n := len(c.sem); n != 0 {
		t.Errorf("%d slots held after the late open was closed, want 0", n)
	}
}

// TestSFTPStartRetriedOnce: an sftp subsystem that fails to start (not a refused
// channel) is retried once on a new connection; failing again, it is unavailable.
func TestSFTPStartRetriedOnce(t *testing.T) {
	s := startServer(t)
	p := s.pool(t, nil)
	f := filepath.Join(t.TempDir(), "x")
	ctx := context.Background()
	s.failSubsystem.Store(1)
	if err := p.WriteFile(ctx, "alice", f, []byte("x"), 0o644); err != nil {
		t.Fatalf("after one failed start: %v", err)
	}
	if n := s.dials.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the failed start drops the first)", n)
	}
	p2 := s.pool(t, nil)
	s.failSubsystem.Store(10)
	dials := s.dials.Load()
	err := p2.WriteFile(ctx, "alice", f, []byte("y"), 0o644)
	if job.ErrorCode(err) != job.EUnavailable || !strings.Contains(err.Error(), "start sftp") {
		t.Fatalf("sftp that never starts: %v, want unavailable naming the start", err)
	}
	if n := s.dials.Load() - dials; n != 2 {
		t.Errorf("%d connections for a start that keeps failing, want 2 (one retry)", n)
	}
	if left := s.failSubsystem.Load(); left != 8 {
		t.Errorf("%d subsystem requests, want 2", 10-left)
	}
}

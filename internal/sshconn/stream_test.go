package sshconn

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestOpenStream(t *testing.T) {
	s := startServer(t)
	p := s.pool(t, nil)
	data := make([]byte, 5<<20+12345) // many 32 KiB requests, and a short last one
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "model.bin")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	for _, off := range []int64{0, 1, 40000, int64(len(data)) - 7, int64(len(data))} {
		rc, err := p.OpenStream(ctx, "alice", f, off)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, data[off:]) {
			t.Fatalf("offset %d: read %d bytes (want %d), equal %v, err %v", off, len(got), len(data)-int(off), bytes.Equal(got, data[off:]), err)
		}
		if err := rc.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}

	// Reading part of the file and closing stops the read-ahead promptly.
	rc, err := p.OpenStream(ctx, "alice", f, 100)
	if err != nil {
		t.Fatal(err)
	}
	part := make([]byte, 70000)
	if _, err := io.ReadFull(rc, part); err != nil || !bytes.Equal(part, data[100:70100]) {
		t.Fatalf("partial read: %v", err)
	}
	t0 := time.Now()
	if err := rc.Close(); err != nil {
		t.Errorf("close after a partial read: %v", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("close took %v", d)
	}
	if _, err := rc.Read(part); err == nil {
		t.Error("read after close succeeded")
	}

	// The end of the context ends the stream.
	cctx, cancel := context.WithCancel(ctx)
	rc, err = p.OpenStream(cctx, "alice", f, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, part); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = io.Copy(io.Discard, rc)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v, want context.Canceled", err)
	}
	rc.Close()

	if _, err := p.OpenStream(ctx, "alice", filepath.Join(t.TempDir(), "missing"), 0); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

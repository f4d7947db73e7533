package stacktest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "stack.env")
	body := "# comment\nSTACK_SSH_ADDR=127.0.0.1:2222\nSTACK_PG_URL='postgres://x@127.0.0.1:1/db'\nSTACK_USERS=alice,bob\nSTACK_NODE_GPUS=4\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if s.SSHAddr != "127.0.0.1:2222" || s.PGURL != "postgres://x@127.0.0.1:1/db" || s.NodeGPUs != 4 ||
		len(s.Users) != 2 || s.Users[1] != "bob" {
		t.Fatalf("Load = %+v", s)
	}
}

func TestLoadIncomplete(t *testing.T) {
	p := filepath.Join(t.TempDir(), "stack.env")
	if err := os.WriteFile(p, []byte("STACK_USERS=alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil {
		t.Fatal("Load of an env file without STACK_SSH_ADDR succeeded")
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}

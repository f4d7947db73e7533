package auth_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/auth"
	"github.com/ftgate/ftgate/internal/auth/authtest"
	"github.com/ftgate/ftgate/internal/job"
)

// TestMappingReload: a changed mapping file is in force for the next request without
// a restart; a broken one (bad YAML, a denied account, a missing file) keeps the
// mapping in force, is logged and reported; SIGHUP reloads even a file whose size and
// time did not change.
func TestMappingReload(t *testing.T) {
	p := authtest.New(t)
	mf := filepath.Join(t.TempDir(), "map.yaml")
	// write replaces the file at once (written beside it, then renamed), with mtime.
	write := func(content string, mtime time.Time) {
		t.Helper()
		tmp := mf + ".new"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, mf); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	write("sub-alice: alice\n", t0)
	results := make(chan error, 16)
	logs := &syncWriter{b: &strings.Builder{}}
	cfg := oidcConfig(p)
	cfg.MappingFile, cfg.MappingMode = mf, "file"
	v := newVerifier(t, cfg, auth.WithMappingReloaded(func(err error) { results <- err }),
		auth.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	hup := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); v.WatchMapping(ctx, 20*time.Millisecond, hup) }()
	t.Cleanup(func() { cancel(); <-done })

	user := func(sub string) string {
		t.Helper()
		id, code, msg := verify(v, p.AccessToken(t, sub))
		if code != "" {
			return code + ": " + msg
		}
		return id.Username
	}
	next := func(what string) error {
		t.Helper()
		select {
		case err := <-results:
			return err
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no reload within 5s", what)
		}
		return nil
	}
	if got := user("sub-alice"); got != "alice" {
		t.Fatalf("before: sub-alice is %q", got)
	}

	write("sub-alice: carol\nsub-bob: bob\n", t0.Add(time.Minute))
	if err := next("changed file"); err != nil {
		t.Fatalf("changed file: %v", err)
	}
	if a, b := user("sub-alice"), user("sub-bob"); a != "carol" || b != "bob" {
		t.Fatalf("after the change: sub-alice %q, sub-bob %q; want carol, bob", a, b)
	}

	for _, bad := range []struct{ name, content, want string }{
		{"bad yaml", "sub-alice: [carol\n", "must be a map of subject: account"},
		{"denied account", "sub-alice: root\n", `username "root" may not use the gateway`},
		{"bad account", "sub-alice: a;b\n", "not a valid Unix account name"},
	} {
		write(bad.content, t0.Add(2*time.Minute+time.Duration(len(bad.name))*time.Second))
		err := next(bad.name)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: reload error %v, want %q", bad.name, err, bad.want)
		}
		if a, b := user("sub-alice"), user("sub-bob"); a != "carol" || b != "bob" {
			t.Errorf("%s: sub-alice %q, sub-bob %q; want the mapping in force kept (carol, bob)", bad.name, a, b)
		}
	}
	if err := os.Remove(mf); err != nil {
		t.Fatal(err)
	}
	if err := next("removed file"); err == nil || !strings.Contains(err.Error(), "read oidc.mapping_file") {
		t.Errorf("removed file: %v, want a read error", err)
	}
	if got := user("sub-alice"); got != "carol" {
		t.Errorf("removed file: sub-alice %q, want carol kept", got)
	}

	// Same size and time as a file read before: only SIGHUP picks it up.
	write("sub-alice: alice\nsub-bob: bob\n", t0.Add(time.Minute))
	if err := next("file back"); err != nil {
		t.Fatalf("file back: %v", err)
	}
	write("sub-alice: frank\nsub-bob: bob\n", t0.Add(time.Minute))
	time.Sleep(100 * time.Millisecond)
	if got := user("sub-alice"); got != "alice" {
		t.Fatalf("same size and time: sub-alice %q; the poll should not have seen it", got)
	}
	hup <- os.Interrupt
	if err := next("SIGHUP"); err != nil {
		t.Fatalf("SIGHUP: %v", err)
	}
	if got := user("sub-alice"); got != "frank" {
		t.Errorf("after SIGHUP: sub-alice %q, want frank", got)
	}
	if got := user("sub-admin"); !strings.HasPrefix(got, job.EForbidden) {
		t.Errorf("unmapped subject in file mode: %q, want forbidden", got)
	}
	if !strings.Contains(logs.String(), "mapping file reload failed; keeping the mapping in force") {
		t.Errorf("no error logged for a bad file:\n%s", logs.String())
	}
}

// syncWriter serialises writes to b (the logger writes from the watcher's goroutine).
type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestWatchMappingDefaultInterval: without an interval, WatchMapping polls at its
// default (it must not build a ticker of zero) and still reloads on SIGHUP.
func TestWatchMappingDefaultInterval(t *testing.T) {
	p := authtest.New(t)
	mf := filepath.Join(t.TempDir(), "map.yaml")
	if err := os.WriteFile(mf, []byte("sub-alice: alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 4)
	cfg := oidcConfig(p)
	cfg.MappingFile, cfg.MappingMode = mf, "file"
	v := newVerifier(t, cfg, auth.WithMappingReloaded(func(err error) { results <- err }))
	hup := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); v.WatchMapping(ctx, 0, hup) }()
	defer func() { cancel(); <-done }()
	if err := os.WriteFile(mf, []byte("sub-alice: carol\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup <- os.Interrupt
	select {
	case err := <-results:
		if err != nil {
			t.Fatalf("reload on SIGHUP: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no reload on SIGHUP within 5s")
	}
	if id, code, msg := verify(v, p.AccessToken(t, "sub-alice")); code != "" || id.Username != "carol" {
		t.Errorf("after SIGHUP: sub-alice is %q (%s %s), want carol", id.Username, code, msg)
	}
}

package artifact

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ftgate/ftgate/internal/job"
)

// localFS is FS over the local file system, for the path-containment tests: real
// directories and symlinks in a temp dir stand in for the cluster's, RealPath resolves
// like SFTP's realpath (symlinks and "..", missing paths fail), and Run runs the argv
// (no shell) after recording it.
type localFS struct {
	mu   sync.Mutex
	runs [][]string
	// onRealPath, when set, runs before each RealPath (to swap a link mid-operation).
	onRealPath func(p string)
	// lstatErr, when set, is returned by Lstat.
	lstatErr error
}

func (l *localFS) Lstat(_ context.Context, _, p string) (os.FileInfo, error) {
	if l.lstatErr != nil {
		return nil, l.lstatErr
	}
	return os.Lstat(p)
}

func (l *localFS) ReadDir(_ context.Context, _, p string) ([]os.FileInfo, error) {
	des, err := os.ReadDir(p)
	if err != nil {
		return nil, err
	}
	out := make([]os.FileInfo, 0, len(des))
	for _, de := range des {
		fi, err := de.Info()
		if err != nil {
			return nil, err
		}
		out = append(out, fi)
	}
	return out, nil
}

func (l *localFS) RealPath(_ context.Context, _, p string) (string, error) {
	if l.onRealPath != nil {
		l.onRealPath(p)
	}
	return filepath.EvalSymlinks(p)
}

func (l *localFS) Open(_ context.Context, _, p string, offset int64) (io.ReadCloser, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (l *localFS) ReadFile(_ context.Context, _, p string, max int64) ([]byte, error) {
	b, err := os.ReadFile(p)
	if int64(len(b)) > max {
		b = b[:max]
	}
	return b, err
}

func (l *localFS) Run(ctx context.Context, _ string, argv []string, _ io.Reader) ([]byte, []byte, error) {
	l.mu.Lock()
	l.runs = append(l.runs, argv)
	l.mu.Unlock()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	return out, []byte(stderr.String()), err
}

func (l *localFS) ran() [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.runs)
}

// tree builds root/jobs/alice/j1 (the job directory) with files, a sibling job j10
// (whose name has j1 as a prefix), a secret outside the job root, and symlinks that
// point out of the job directory, out of model/, and within the job directory.
func tree(t *testing.T) (root string, d *Dir, l *localFS) {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root = filepath.Join(base, "jobs")
	jd := filepath.Join(root, "alice", "j1")
	files := map[string]string{
		"jobs/alice/j1/job.json":              `{"method":"sft"}`,
		"jobs/alice/j1/model/weights.bin":     "weights",
		"jobs/alice/j1/model/tok/vocab.json":  "{}",
		"jobs/alice/j1/logs/train.log":        "line\n",
		"jobs/alice/j1/checkpoints/step-10/a": "ckpt",
		"jobs/alice/j1/.hidden/x":             "hidden",
		"jobs/alice/j1/.dotfile":              "hidden",
		"jobs/alice/j1/model/.env":            "hidden",
		"jobs/alice/j1/model/.cache/blob":     "hidden",
		"jobs/alice/j10/secret":               "sibling job",
		"jobs/alice/j10/model/weights.bin":    "sibling weights",
		"secret.txt":                          "outside",
	}
	for rel, data := range files {
		p := filepath.Join(base, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"jobs/alice/j1/out":                "../../../secret.txt", // leaves the job root
		"jobs/alice/j1/sib":                "../j10/secret",       // a sibling whose name starts with j1
		"jobs/alice/j1/sibdir":             "../j10",              // a sibling directory
		"jobs/alice/j1/inside":             "job.json",            // stays inside
		"jobs/alice/j1/model/leak":         "../job.json",         // leaves model/, stays in the job dir
		"jobs/alice/j1/model/sibleak":      "../../j10/model/weights.bin",
		"jobs/alice/j1/logs/linked.log":    "../job.json",     // Walk must not follow
		"jobs/alice/j1/logs/linkeddir":     "../model",        // Walk must not descend
		"jobs/alice/j1/checkpoints/step-9": "../../j10",       // a checkpoint that is a link elsewhere
		"jobs/alice/j1/selfdir":            ".",               // resolves to the job dir itself
		"jobs/alice/j1/up":                 "..",              // resolves to the user's job root
		"jobs/alice/j1/model/outdir":       "../../j10/model", // a directory outside model/ and the job
		"jobs/alice/j1/model/jobdir":       "..",              // model/jobdir/job.json leaves model/
		"jobs/alice/j1/model/okdir":        "tok",             // stays in model/
		"jobs/alice/j1/logs/hidden.log":    "../.hidden/x",    // Walk must not follow either
		"jobs/alice/j1/modelink":           "model",           // model reached through a link
	}
	for rel, target := range links {
		if err := os.Symlink(target, filepath.Join(base, rel)); err != nil {
			t.Fatal(err)
		}
	}
	l = &localFS{}
	d, err = ForJob(l, root, job.Job{ID: "j1", User: "alice", JobDir: jd})
	if err != nil {
		t.Fatal(err)
	}
	return root, d, l
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// TestResolveContainment: every name that resolves outside the job directory (or,
// below model/, outside model/) is ENotFound; names that stay inside resolve.
func TestResolveContainment(t *testing.T) {
	_, d, _ := tree(t)
	ctx := context.Background()
	tests := []struct {
		top, rel string
		want     string // resolved path relative to the job dir; "" = ENotFound
	}{
		{"", "job.json", "job.json"},
		{"", "inside", "job.json"},
		{"", "model/weights.bin", "model/weights.bin"},
		{"", "out", ""},
		{"", "sib", ""},
		{"", "sibdir/secret", ""},
		{"", "selfdir", ""},
		{"", "up", ""},
		{"", "up/j10/secret", ""},
		{"", "missing", ""},
		{"model", "weights.bin", "model/weights.bin"},
		{"model", "okdir/vocab.json", "model/tok/vocab.json"},
		{"model", "leak", ""},
		{"model", "sibleak", ""},
		{"model", "outdir/weights.bin", ""},
		{"model", "jobdir/job.json", ""},
		{"modelink", "weights.bin", "model/weights.bin"},
		{"sibdir", "secret", ""},            // top itself leaves the job dir
		{"sibdir", "model/weights.bin", ""}, // top's prefix sibling
		{"selfdir", "job.json", ""},         // top resolving to the job dir itself
		{"up", "j1/job.json", ""},           // top above the job dir
		{"nope", "x", ""},
	}
	for _, tt := range tests {
		got, err := d.ResolveIn(ctx, tt.top, tt.rel)
		if tt.want == "" {
			if job.ErrorCode(err) != job.ENotFound {
				t.Errorf("ResolveIn(%q, %q) = %q, %v; want ENotFound", tt.top, tt.rel, got, err)
			}
			continue
		}
		if err != nil || got != filepath.Join(d.Path, tt.want) {
			t.Errorf("ResolveIn(%q, %q) = %q, %v; want %s", tt.top, tt.rel, got, err, tt.want)
		}
	}
}

// TestStatInRegularFilesOnly: a directory is not a file to serve, a link is followed
// only when its target stays inside.
func TestStatInRegularFilesOnly(t *testing.T) {
	_, d, _ := tree(t)
	ctx := context.Background()
	for _, rel := range []string{"model", "checkpoints/step-10", "logs"} {
		if _, fi, err := d.Stat(ctx, rel); job.ErrorCode(err) != job.ENotFound {
			t.Errorf("Stat(%q) = %v, %v; want ENotFound for a directory", rel, fi, err)
		}
	}
	real, fi, err := d.Stat(ctx, "inside")
	if err != nil || real != filepath.Join(d.Path, "job.json") || !fi.Mode().IsRegular() {
		t.Errorf("Stat(inside) = %q, %v, %v", real, fi, err)
	}
	if _, _, err := d.StatIn(ctx, "model", "leak"); job.ErrorCode(err) != job.ENotFound {
		t.Errorf("StatIn(model, leak) = %v, want ENotFound", err)
	}
	if b, err := d.ReadSmall(ctx, "out", 1<<20); job.ErrorCode(err) != job.ENotFound {
		t.Errorf("ReadSmall(out) = %q, %v; want ENotFound", b, err)
	}
	if b, err := d.ReadSmall(ctx, "job.json", 3); job.ErrorCode(err) != job.ETooLarge {
		t.Errorf("ReadSmall over max = %q, %v; want ETooLarge", b, err)
	}
}

// TestWalkSkipsLinksAndHidden: a walk lists the regular files below the directory, in
// name order, never through a symlink and never a hidden name.
func TestWalkSkipsLinksAndHidden(t *testing.T) {
	_, d, _ := tree(t)
	ctx := context.Background()
	got := func(dir string, limit int) ([]string, error) {
		fs, err := d.Walk(ctx, dir, limit)
		var names []string
		for _, f := range fs {
			names = append(names, f.Rel)
			if f.Path != filepath.Join(d.Path, dir, f.Rel) {
				t.Errorf("Walk(%s) %s: path %s", dir, f.Rel, f.Path)
			}
		}
		return names, err
	}
	if names, err := got("logs", 100); err != nil || strings.Join(names, ",") != "train.log" {
		t.Errorf("Walk(logs) = %v, %v; want only train.log", names, err)
	}
	if names, err := got("model", 100); err != nil || strings.Join(names, ",") != "tok/vocab.json,weights.bin" {
		t.Errorf("Walk(model) = %v, %v; want tok/vocab.json,weights.bin", names, err)
	}
	if _, err := got("model", 1); job.ErrorCode(err) != job.ETooLarge {
		t.Errorf("Walk over the limit: %v, want ETooLarge", err)
	}
	for _, dir := range []string{"sibdir", "checkpoints/step-9", "up"} {
		if names, err := got(dir, 100); job.ErrorCode(err) != job.ENotFound {
			t.Errorf("Walk(%s) = %v, %v; want ENotFound", dir, names, err)
		}
	}
}

// TestRemoveStaysInside: Remove deletes what resolves inside the job directory and
// nothing else, and never a name that is itself a symlink.
func TestRemoveStaysInside(t *testing.T) {
	root, d, l := tree(t)
	ctx := context.Background()
	base := filepath.Dir(root)
	for _, rel := range []string{"out", "sib", "sibdir", "inside", "selfdir", "up", "checkpoints/step-9", "missing", "model/leak"} {
		if err := d.Remove(ctx, rel); job.ErrorCode(err) != job.ENotFound {
			t.Errorf("Remove(%q) = %v, want ENotFound", rel, err)
		}
	}
	for _, p := range []string{"secret.txt", "jobs/alice/j10/secret", "jobs/alice/j1/job.json", "jobs/alice/j1/inside", "jobs/alice/j10/model/weights.bin"} {
		if !exists(filepath.Join(base, p)) {
			t.Errorf("%s was deleted", p)
		}
	}
	if n := len(l.ran()); n != 0 {
		t.Fatalf("refused removals ran %d commands: %v", n, l.ran())
	}
	if err := d.Remove(ctx, "checkpoints/step-10"); err != nil {
		t.Fatalf("Remove(checkpoints/step-10): %v", err)
	}
	if exists(filepath.Join(d.Path, "checkpoints/step-10")) || !exists(filepath.Join(d.Path, "checkpoints")) {
		t.Error("step-10 not deleted, or its parent deleted too")
	}
	want := [][]string{{"rm", "-rf", "--", filepath.Join(d.Path, "checkpoints/step-10")}}
	if got := l.ran(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ran %q, want %q", got, want)
	}
}

// TestRemoveJobDirSwappedMidway: the job directory (a name its user controls) is
// swapped for a link to another job between Remove's two resolutions; the path the
// second resolution finds lies outside the directory the first one checked and is
// not deleted.
func TestRemoveJobDirSwappedMidway(t *testing.T) {
	root, d, l := tree(t)
	ctx := context.Background()
	orig := filepath.Join(root, "alice", "j1.orig")
	if err := os.Rename(d.Path, orig); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("j1.orig", d.Path); err != nil {
		t.Fatal(err)
	}
	calls := 0
	l.onRealPath = func(p string) {
		if p != d.Path {
			return
		}
		calls++
		if calls == 2 { // after Remove's own realDir, before Resolve's
			os.Remove(d.Path)
			if err := os.Symlink("j10", d.Path); err != nil {
				t.Error(err)
			}
		}
	}
	if err := d.Remove(ctx, "model"); job.ErrorCode(err) != job.ENotFound {
		t.Errorf("Remove after the swap = %v, want ENotFound", err)
	}
	if !exists(filepath.Join(root, "alice", "j10", "model", "weights.bin")) || len(l.ran()) != 0 {
		t.Errorf("the other job's model was deleted (ran %v)", l.ran())
	}
}

// TestPurgeStaysInUserRoot: Purge deletes the job directory when it resolves directly
// below the user's job root, refuses one that resolves elsewhere, and is a no-op for a
// directory already gone.
func TestPurgeStaysInUserRoot(t *testing.T) {
	root, d, l := tree(t)
	ctx := context.Background()
	// j2 is a link to a directory outside the job root; j3 to a nested directory.
	outside := filepath.Join(filepath.Dir(root), "elsewhere")
	if err := os.MkdirAll(filepath.Join(outside, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"j2": outside, "j3": filepath.Join(d.Path, "model")} {
		if err := os.Symlink(target, filepath.Join(root, "alice", name)); err != nil {
			t.Fatal(err)
		}
		dd, err := ForJob(l, root, job.Job{ID: name, User: "alice", JobDir: filepath.Join(root, "alice", name)})
		if err != nil {
			t.Fatal(err)
		}
		if err := dd.Purge(ctx); job.ErrorCode(err) != job.EInternal {
			t.Errorf("Purge of %s (-> %s) = %v, want EInternal", name, target, err)
		}
	}
	if !exists(filepath.Join(outside, "keep")) || !exists(filepath.Join(d.Path, "model", "weights.bin")) || len(l.ran()) != 0 {
		t.Fatalf("a refused purge deleted something (ran %v)", l.ran())
	}
	if err := d.Purge(ctx); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if exists(d.Path) || !exists(filepath.Join(root, "alice", "j10", "secret")) {
		t.Error("job dir not purged, or its sibling purged too")
	}
	if err := d.Purge(ctx); err != nil {
		t.Errorf("second Purge of a gone directory: %v", err)
	}
}

// TestRmRefusesShallowOrRelative: the last guard before `rm -rf` refuses paths that are
// relative, contain "..", or are at most one level below /.
func TestRmRefusesShallowOrRelative(t *testing.T) {
	l := &localFS{}
	d := &Dir{FS: l, User: "alice", Path: "/jobs/alice/j1", Root: "/jobs"}
	for _, p := range []string{"", "jobs/alice/j1", "/", "/jobs", "/jobs/../x", "/jobs/alice/../../etc"} {
		if err := d.rm(context.Background(), p); job.ErrorCode(err) != job.EInternal {
			t.Errorf("rm(%q) = %v, want EInternal", p, err)
		}
	}
	if n := len(l.ran()); n != 0 {
		t.Fatalf("rm ran %v", l.ran())
	}
}

// TestFsErr: missing and forbidden paths look alike (ENotFound, the name only); other
// failures are EUnavailable with their cause; domain errors pass through unchanged.
func TestFsErr(t *testing.T) {
	d := &Dir{}
	domain := job.Errorf(job.ETooLarge, "too big")
	tests := []struct {
		err  error
		code string
	}{
		{fs.ErrNotExist, job.ENotFound},
		{fmt.Errorf("open: %w", fs.ErrPermission), job.ENotFound},
		{&fs.PathError{Op: "stat", Path: "/x", Err: os.ErrNotExist}, job.ENotFound},
		{errors.New("sftp: \"file does not exist\" (SSH_FX_NO_SUCH_FILE)"), job.ENotFound},
		{errors.New("ssh: connection reset"), job.EUnavailable},
		{domain, job.ETooLarge},
	}
	for _, tt := range tests {
		got := d.fsErr(tt.err, "weights.bin")
		if job.ErrorCode(got) != tt.code {
			t.Errorf("fsErr(%v) = %v, want %s", tt.err, got, tt.code)
		}
		if tt.code == job.ENotFound && job.ErrorMessage(got) != "weights.bin not found" {
			t.Errorf("fsErr(%v) message %q", tt.err, job.ErrorMessage(got))
		}
		if tt.code == job.EUnavailable && !errors.Is(got, tt.err) {
			t.Errorf("fsErr(%v) lost its cause: %v", tt.err, got)
		}
	}
	if got := d.fsErr(domain, "x"); got != error(domain) {
		t.Errorf("domain error rewrapped: %v", got)
	}
	// Through a Dir operation: a Lstat that fails for a connection reason is not a 404.
	_, dd, l := tree(t)
	l.lstatErr = errors.New("ssh: connection reset")
	if _, _, err := dd.Stat(context.Background(), "job.json"); job.ErrorCode(err) != job.EUnavailable {
		t.Errorf("Stat with a broken connection = %v, want EUnavailable", err)
	}
	l.lstatErr = fs.ErrPermission
	if err := dd.Remove(context.Background(), "job.json"); job.ErrorCode(err) != job.ENotFound {
		t.Errorf("Remove of an unreadable name = %v, want ENotFound", err)
	}
}

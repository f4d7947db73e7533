package artifact

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

var errConn = errors.New("ssh: connection reset")

// errFS is localFS with failures injected per call ("Method path" -> error).
type errFS struct {
	*localFS
	errs   map[string]error
	stderr string // Run's stderr when Run fails
}

func (e *errFS) fail(method, p string) error { return e.errs[method+" "+p] }

func (e *errFS) Lstat(ctx context.Context, u, p string) (os.FileInfo, error) {
	if err := e.fail("Lstat", p); err != nil {
		return nil, err
	}
	return e.localFS.Lstat(ctx, u, p)
}

func (e *errFS) ReadDir(ctx context.Context, u, p string) ([]os.FileInfo, error) {
	if err := e.fail("ReadDir", p); err != nil {
		return nil, err
	}
	return e.localFS.ReadDir(ctx, u, p)
}

func (e *errFS) RealPath(ctx context.Context, u, p string) (string, error) {
	if err := e.fail("RealPath", p); err != nil {
		return "", err
	}
	return e.localFS.RealPath(ctx, u, p)
}

func (e *errFS) Open(ctx context.Context, u, p string, off int64) (io.ReadCloser, error) {
	if err := e.fail("Open", p); err != nil {
		return nil, err
	}
	return e.localFS.Open(ctx, u, p, off)
}

func (e *errFS) ReadFile(ctx context.Context, u, p string, max int64) ([]byte, error) {
	if err := e.fail("ReadFile", p); err != nil {
		return nil, err
	}
	return e.localFS.ReadFile(ctx, u, p, max)
}

func (e *errFS) Run(ctx context.Context, u string, argv []string, stdin io.Reader) ([]byte, []byte, error) {
	if err := e.fail("Run", argv[len(argv)-1]); err != nil {
		e.localFS.mu.Lock()
		e.localFS.runs = append(e.localFS.runs, argv)
		e.localFS.mu.Unlock()
		return nil, []byte(e.stderr), err
	}
	return e.localFS.Run(ctx, u, argv, stdin)
}

// errTree is tree with its FS replaced by an errFS.
func errTree(t *testing.T) (*Dir, *errFS) {
	t.Helper()
	_, d, l := tree(t)
	e := &errFS{localFS: l, errs: map[string]error{}}
	d.FS = e
	return d, e
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if job.ErrorCode(err) != code {
		t.Errorf("%s: %v (code %q), want %s", what, err, job.ErrorCode(err), code)
	}
}

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{{"", 3, ""}, {"abc", 3, "abc"}, {"abcd", 3, "abc..."}, {"ab", 3, "ab"}} {
		if got := truncate(c.in, c.n); got != c.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

// TestRmFailure: a failed rm is EUnavailable with its cause and its stderr (trimmed,
// at most 200 bytes); a domain error (the pool's own) passes through unchanged.
func TestRmFailure(t *testing.T) {
	d, e := errTree(t)
	target := filepath.Join(d.Path, "logs")
	ctx := context.Background()
	e.errs["Run "+target] = errConn
	for _, c := range []struct{ stderr, want string }{
		{"  rm: cannot remove 'logs': Permission denied\n", "delete on the cluster failed: rm: cannot remove 'logs': Permission denied"},
		{strings.Repeat("e", 200), "delete on the cluster failed: " + strings.Repeat("e", 200)},
		{strings.Repeat("e", 201), "delete on the cluster failed: " + strings.Repeat("e", 200) + "..."},
	} {
		e.stderr = c.stderr
		err := d.rm(ctx, target)
		wantCode(t, "rm failing", err, job.EUnavailable)
		if job.ErrorMessage(err) != c.want || !errors.Is(err, errConn) {
			t.Errorf("rm failing with stderr %.20q: %q (%v), want %q with its cause", c.stderr, job.ErrorMessage(err), err, c.want)
		}
	}
	domain := job.Errorf(job.EUnavailable, "cluster dev unreachable")
	e.errs["Run "+target] = domain
	if err := d.rm(ctx, target); err != error(domain) {
		t.Errorf("rm with a domain error = %v, want it unchanged", err)
	}
	if !exists(target) {
		t.Error("the directory is gone although rm failed")
	}
	delete(e.errs, "Run "+target)
	if err := d.rm(ctx, target); err != nil || exists(target) {
		t.Errorf("rm = %v, exists %v", err, exists(target))
	}
}

// streamFS is errFS with OpenStream, recording its calls.
type streamFS struct {
	*errFS
	streamed []string
	err      error
}

func (s *streamFS) OpenStream(ctx context.Context, u, p string, off int64) (io.ReadCloser, error) {
	s.streamed = append(s.streamed, fmt.Sprintf("%s@%d", p, off))
	if s.err != nil {
		return nil, s.err
	}
	return s.errFS.Open(ctx, u, p, off)
}

// TestOpenStream: a Streamer's pipelined read is used when the FS has one, its errors
// mapped like any read's; otherwise Open's buffered reader is.
func TestOpenStream(t *testing.T) {
	ctx := context.Background()
	d, e := errTree(t)
	weights := filepath.Join(d.Path, "model/weights.bin")
	read := func(what string, rc io.ReadCloser, err error, want string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer rc.Close()
		if b, err := io.ReadAll(rc); err != nil || string(b) != want {
			t.Errorf("%s read %q, %v; want %q", what, b, err, want)
		}
	}
	rc, err := d.OpenStream(ctx, weights, 2)
	read("OpenStream without a Streamer", rc, err, "ights")
	e.errs["Open "+weights] = errConn
	_, err = d.OpenStream(ctx, weights, 0)
	wantCode(t, "OpenStream, Open failing", err, job.EUnavailable)
	_, err = d.Open(ctx, weights, 0)
	wantCode(t, "Open failing", err, job.EUnavailable)
	delete(e.errs, "Open "+weights)

	s := &streamFS{errFS: e}
	d.FS = s
	rc, err = d.OpenStream(ctx, weights, 1)
	read("OpenStream with a Streamer", rc, err, "eights")
	if len(s.streamed) != 1 || s.streamed[0] != weights+"@1" {
		t.Errorf("streamed %v, want %s@1", s.streamed, weights)
	}
	for err, code := range map[error]string{fs.ErrNotExist: job.ENotFound, errConn: job.EUnavailable} {
		s.err = err
		_, got := d.OpenStream(ctx, weights, 0)
		wantCode(t, fmt.Sprintf("OpenStream failing with %v", err), got, code)
		if code == job.ENotFound && job.ErrorMessage(got) != "weights.bin not found" {
			t.Errorf("OpenStream of a missing file: %q", job.ErrorMessage(got))
		}
	}
}

// TestDirMetrics: no metrics.jsonl yet is empty series, not an error; a file over
// MaxMetricsBytes is read from its last MaxMetricsBytes only (and says so); read
// failures are errors.
func TestDirMetrics(t *testing.T) {
	ctx := context.Background()
	d, e := errTree(t)
	s, err := d.Metrics(ctx, 5, 100)
	if err != nil || s.LastStep != 5 || len(s.Series) != 0 || s.Series == nil || s.Truncated {
		t.Fatalf("Metrics without the file = %+v, %v; want empty series at step 5", s, err)
	}
	mf := filepath.Join(d.Path, job.MetricsJSONL)
	if err := os.WriteFile(mf, []byte(`{"step":1,"loss":3}`+"\n"+`{"step":2,"loss":2}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = d.Metrics(ctx, 0, 100)
	if err != nil || len(s.Series["loss"]) != 2 || s.LastStep != 2 || s.Truncated {
		t.Fatalf("Metrics = %+v, %v; want 2 loss points", s, err)
	}
	// Over the limit: only the last MaxMetricsBytes are read.
	v := &virtualFS{errFS: e, path: mf, size: MaxMetricsBytes + 100, data: `{"step":2,"loss":2}` + "\n"}
	d.FS = v
	s, err = d.Metrics(ctx, 0, 100)
	if err != nil || len(s.Series["loss"]) != 1 || s.Series["loss"][0] != [2]float64{2, 2} || !s.Truncated || v.offset != 100 {
		t.Fatalf("Metrics of a large file = %+v, %v, read from %d; want step 2, truncated, read from 100", s, err, v.offset)
	}
	d.FS = e
	e.errs["Open "+mf] = errConn
	if _, err := d.Metrics(ctx, 0, 100); job.ErrorCode(err) != job.EUnavailable {
		t.Errorf("Metrics with Open failing: %v", err)
	}
	e.errs["Lstat "+mf] = errConn
	if _, err := d.Metrics(ctx, 0, 100); job.ErrorCode(err) != job.EUnavailable {
		t.Errorf("Metrics with Lstat failing: %v", err)
	}
}

// virtualFS is errFS with one file of any size: Lstat reports size, Open records
// its offset and serves data.
type virtualFS struct {
	*errFS
	path   string
	size   int64
	data   string
	offset int64
}

type sizeInfo struct {
	os.FileInfo
	size int64
}

func (s sizeInfo) Size() int64 { return s.size }

func (v *virtualFS) Lstat(ctx context.Context, u, p string) (os.FileInfo, error) {
	fi, err := v.errFS.Lstat(ctx, u, p)
	if err == nil && p == v.path {
		fi = sizeInfo{fi, v.size}
	}
	return fi, err
}

func (v *virtualFS) Open(ctx context.Context, u, p string, off int64) (io.ReadCloser, error) {
	if p != v.path {
		return v.errFS.Open(ctx, u, p, off)
	}
	v.offset = off
	return io.NopCloser(strings.NewReader(v.data)), nil
}

// TestReadErrorsPropagate: a read that fails for a reason other than a missing path
// fails the operation (EUnavailable), whatever step it is at; none is taken for "not
// found" or for an empty answer.
func TestReadErrorsPropagate(t *testing.T) {
	ctx := context.Background()
	d, e := errTree(t)
	jd := d.Path
	fail := func(key string, f func() error, code string) {
		t.Helper()
		e.errs[key] = errConn
		wantCode(t, key, f(), code)
		delete(e.errs, key)
	}
	fail("RealPath "+jd, func() error { _, err := d.Resolve(ctx, "job.json"); return err }, job.EUnavailable)
	fail("RealPath "+jd+"/model", func() error { _, err := d.ResolveIn(ctx, "model", "weights.bin"); return err }, job.EUnavailable)
	e.errs["RealPath "+jd+"/model"] = fs.ErrNotExist
	if _, err := d.ResolveIn(ctx, "model", "weights.bin"); job.ErrorMessage(err) != "model not found" {
		t.Errorf("ResolveIn with model/ missing: %v", err)
	}
	delete(e.errs, "RealPath "+jd+"/model")
	fail("ReadDir "+jd+"/model/tok", func() error { _, err := d.Walk(ctx, "model", 100); return err }, job.EUnavailable)
	fail("ReadFile "+jd+"/job.json", func() error { _, err := d.ReadSmall(ctx, "job.json", 100); return err }, job.EUnavailable)
	fail("RealPath "+jd, func() error { return d.Remove(ctx, "logs") }, job.EUnavailable)
	fail("RealPath "+jd+"/logs", func() error { return d.Remove(ctx, "logs") }, job.EUnavailable)
	fail("RealPath "+jd, func() error { return d.Purge(ctx) }, job.EUnavailable)
	fail("RealPath "+filepath.Dir(jd), func() error { return d.Purge(ctx) }, job.EUnavailable)
	fail("RealPath "+jd+"/checkpoints", func() error { _, err := d.Checkpoints(ctx); return err }, job.EUnavailable)
	fail("ReadDir "+jd+"/checkpoints", func() error { _, err := d.Checkpoints(ctx); return err }, job.EUnavailable)
	fail("RealPath "+jd, func() error { _, err := d.LogFile(ctx, ""); return err }, job.EUnavailable)
	fail("ReadDir "+jd, func() error { _, err := d.LogFile(ctx, ""); return err }, job.EUnavailable)
	fail("Open "+jd+"/logs/train.log", func() error { _, err := d.TailStart(ctx, jd+"/logs/train.log", 5, 1); return err }, job.EUnavailable)
	if !exists(jd + "/logs/train.log") {
		t.Fatal("a failed operation deleted files")
	}
	// A checkpoint whose listing fails is listed with the problem, not as complete.
	e.errs["ReadDir "+jd+"/checkpoints/step-10"] = errConn
	cks, err := d.Checkpoints(ctx)
	if err != nil || len(cks) != 1 || cks[0].Complete || !strings.Contains(cks[0].Problem, "cannot read") {
		t.Errorf("Checkpoints with step-10 unreadable = %+v, %v; want step-10 with its problem", cks, err)
	}
}

// TestWalkDepth: Walk descends 16 levels below the walked directory, no deeper.
func TestWalkDepth(t *testing.T) {
	d, _ := errTree(t)
	p := filepath.Join(d.Path, "deep")
	var wantRel string
	for i := 0; i <= 17; i++ {
		if i > 0 {
			p = filepath.Join(p, fmt.Sprintf("d%d", i))
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "f"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if i == 16 {
			rel, _ := filepath.Rel(filepath.Join(d.Path, "deep"), filepath.Join(p, "f"))
			wantRel = filepath.ToSlash(rel)
		}
	}
	files, err := d.Walk(context.Background(), "deep", 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range files {
		found = found || f.Rel == wantRel
	}
	if len(files) != 17 || !found {
		var got []string
		for _, f := range files {
			got = append(got, f.Rel)
		}
		t.Errorf("Walk found %d files (%v), want 17 down to %s", len(files), got, wantRel)
	}
}

// TestWriteTarErrors: an unreadable or short file fails the archive.
func TestWriteTarErrors(t *testing.T) {
	ctx := context.Background()
	d, e := errTree(t)
	files, err := d.Walk(ctx, "model", 100)
	if err != nil || len(files) == 0 {
		t.Fatalf("Walk: %v, %v", files, err)
	}
	e.errs["Open "+files[0].Path] = errConn
	if err := d.WriteTar(ctx, io.Discard, files, "model"); job.ErrorCode(err) != job.EUnavailable {
		t.Errorf("WriteTar with a file unreadable: %v", err)
	}
	delete(e.errs, "Open "+files[0].Path)
	// The file shrank after the walk.
	if err := os.WriteFile(files[0].Path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := d.WriteTar(ctx, &buf, files, "model"); err == nil || !strings.Contains(err.Error(), "copy "+files[0].Rel) {
		t.Errorf("WriteTar of a shrunk file: %v", err)
	}
	// And the good case names every file below the prefix.
	files, _ = d.Walk(ctx, "model", 100)
	buf.Reset()
	if err := d.WriteTar(ctx, &buf, files, "m"); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	n := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(h.Name, "m/") {
			t.Errorf("tar entry %s outside the prefix", h.Name)
		}
		n++
	}
	if n != len(files) {
		t.Errorf("%d tar entries, want %d", n, len(files))
	}
}

// failRetStore is retStore with Rotating failing.
type failRetStore struct {
	*retStore
	rotatingErr error
}

func (s *failRetStore) Rotating(ctx context.Context, cluster string, since time.Time, limit int) ([]job.Job, error) {
	if s.rotatingErr != nil {
		return nil, s.rotatingErr
	}
	return s.retStore.Rotating(ctx, cluster, since, limit)
}

// TestRetainerRotateErrors: a job whose checkpoints cannot be rotated counts as an
// error and the pass goes on (the other checkpoints and jobs are still rotated); a
// job whose checkpoints/ cannot be listed because it is gone or unreadable is not an
// error; a store failure ends the pass; a pass that did something is logged.
func TestRetainerRotateErrors(t *testing.T) {
	root, d, l := tree(t)
	ctx := context.Background()
	os.RemoveAll(filepath.Join(d.Path, "checkpoints"))
	files := map[string]string{"model.pt": "w"}
	for _, n := range []int64{10, 20, 30} {
		writeCkpt(t, d, "step-"+strconv.FormatInt(n, 10), n, files, map[string]int64{"model.pt": -1}, nil)
	}
	e := &errFS{localFS: l, errs: map[string]error{}}
	ck := filepath.Join(d.Path, "checkpoints")
	e.errs["Run "+ck+"/step-10"] = errConn
	rotating := job.Job{ID: "j1", User: "alice", JobDir: d.Path}
	outside := job.Job{ID: "jx", User: "alice", JobDir: "/elsewhere/alice/jx"}
	st := &retStore{rotating: []job.Job{outside, rotating}}
	var logs bytes.Buffer
	r := &Retainer{Store: st, Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Clusters: []Cluster{{Name: "dev", Root: root, FS: e, Policy: Policy{KeepLast: 1}}}}
	res, err := r.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Rotated, ",") != "j1/step-20" || res.Errors != 2 {
		t.Errorf("pass: %+v; want j1/step-20 rotated, 2 errors (jx outside the root, step-10's rm)", res)
	}
	if !exists(ck+"/step-10") || exists(ck+"/step-20") || !exists(ck+"/step-30") {
		t.Error("wrong checkpoints left")
	}
	// checkpoints/ unreadable (ENotFound): nothing to rotate, no error; a broken
	// connection is an error.
	st.rotating = []job.Job{rotating}
	for err, want := range map[error]int{fs.ErrPermission: 0, errConn: 1} {
		e.errs["ReadDir "+ck] = err
		res, perr := r.Pass(ctx)
		if perr != nil || res.Errors != want || len(res.Rotated) != 0 {
			t.Errorf("checkpoints/ failing with %v: %+v, %v; want %d errors", err, res, perr, want)
		}
	}
	delete(e.errs, "ReadDir "+ck)
	// logPass logs a pass that removed something, and not one that did nothing.
	logs.Reset()
	delete(e.errs, "Run "+ck+"/step-10")
	if err := r.logPass(ctx); err != nil || !strings.Contains(logs.String(), "retention pass") || !strings.Contains(logs.String(), "rotated=1") {
		t.Errorf("logPass: %v, logged %q", err, logs.String())
	}
	logs.Reset()
	if err := r.logPass(ctx); err != nil || strings.Contains(logs.String(), "retention pass") {
		t.Errorf("logPass of an empty pass: %v, logged %q", err, logs.String())
	}
	fr := &failRetStore{retStore: st, rotatingErr: errors.New("database down")}
	r.Store = fr
	if _, err := r.Pass(ctx); err == nil || !strings.Contains(err.Error(), "database down") {
		t.Errorf("Rotating failing: %v", err)
	}
	if err := r.logPass(ctx); err == nil {
		t.Error("logPass hid the store failure")
	}
}

package ftctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/api"
	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/slurm"
)

// The CLI tests run ftctl (Run, flags to exit code) against the gateway's real
// handlers (api.Server) over in-memory fakes of the store and Slurm, and a local
// directory standing in for the cluster filesystem (the artifact routes read it).

var update = flag.Bool("update", false, "rewrite golden files")

// t0 is the tests' fixed clock.
var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// memStore implements api.Store in memory.
type memStore struct {
	mu   sync.Mutex
	jobs map[string]*job.Job
	next int
	gets int
	now  func() time.Time
}

func newMemStore() *memStore {
	return &memStore{jobs: map[string]*job.Job{}, now: func() time.Time { return t0 }}
}

func (s *memStore) Create(ctx context.Context, j job.Job, maxActive int) (job.Job, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j.IdempotencyKey != "" {
		for _, p := range s.jobs {
			if p.OwnerSubject == j.OwnerSubject && p.IdempotencyKey == j.IdempotencyKey {
				if p.SpecHash != j.SpecHash {
					return job.Job{}, false, job.Errorf(job.EConflict, "Idempotency-Key %q was already used with a different body (job %s)", j.IdempotencyKey, p.ID)
				}
				return *p, false, nil
			}
		}
	}
	s.next++
	old := j.ID
	j.ID = "j" + strconv.Itoa(s.next)
	j.JobDir = strings.TrimSuffix(j.JobDir, old) + j.ID
	j.CreatedAt, j.UpdatedAt = s.now(), s.now()
	s.jobs[j.ID] = &j
	return j, true, nil
}

func (s *memStore) put(j job.Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs[j.ID] = &j
}

func (s *memStore) update(id string, fn func(j *job.Job)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.jobs[id])
}

func (s *memStore) getCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets
}

func (s *memStore) Get(ctx context.Context, id string) (job.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	j, ok := s.jobs[id]
	if !ok {
		return job.Job{}, job.Errorf(job.ENotFound, "job %s not found", id)
	}
	return *j, nil
}

func (s *memStore) List(ctx context.Context, f postgres.Filter) ([]job.Job, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []job.Job
	for _, j := range s.jobs {
		switch {
		case f.Owner != "" && j.OwnerSubject != f.Owner,
			f.User != "" && j.User != f.User,
			len(f.States) > 0 && !slices.Contains(f.States, j.State),
			!f.From.IsZero() && j.CreatedAt.Before(f.From),
			!f.To.IsZero() && !j.CreatedAt.Before(f.To),
			f.Model != "" && !strings.Contains(strings.ToLower(j.Spec.Model), strings.ToLower(f.Model)),
			f.Cluster != "" && j.Cluster != f.Cluster:
			continue
		}
		all = append(all, *j)
	}
	sort.Slice(all, func(a, b int) bool {
		if !all[a].CreatedAt.Equal(all[b].CreatedAt) {
			return all[a].CreatedAt.After(all[b].CreatedAt)
		}
		return all[a].ID > all[b].ID
	})
	start := 0
	if f.Cursor != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(f.Cursor, "c"))
		if err != nil {
			return nil, "", job.Errorf(job.EInvalid, "cursor: malformed")
		}
		start = min(n, len(all))
	}
	end := min(start+f.Limit, len(all))
	next := ""
	if end < len(all) {
		next = "c" + strconv.Itoa(end)
	}
	return all[start:end], next, nil
}

func (s *memStore) Transition(ctx context.Context, id string, c job.Change) (job.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return job.Job{}, job.Errorf(job.ENotFound, "job %s not found", id)
	}
	if j.State != c.From {
		return job.Job{}, job.Errorf(job.EConflict, "job is %s, not %s", j.State, c.From)
	}
	if err := job.Transition(c.From, c.To); err != nil {
		return job.Job{}, err
	}
	j.State = c.To
	switch c.Reason {
	case "":
	case job.ClearReason:
		j.Reason = ""
	default:
		j.Reason = c.Reason
	}
	if c.SlurmID != "" {
		j.SlurmID = c.SlurmID
	}
	if c.SlurmState != "" {
		j.SlurmState = c.SlurmState
	}
	if c.RestartCount != nil {
		j.RestartCount = *c.RestartCount
	}
	now := s.now()
	if c.SetPause {
		j.PauseRequested = &now
	}
	if c.ClearPause {
		j.PauseRequested = nil
	}
	if c.To.Terminal() {
		j.EndedAt = &now
	}
	j.UpdatedAt = now
	return *j, nil
}

func (s *memStore) CountByState(ctx context.Context) ([]postgres.StateCount, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := map[[2]string]int{}
	for _, j := range s.jobs {
		n[[2]string{j.Cluster, string(j.State)}]++
	}
	var out []postgres.StateCount
	for k, v := range n {
		out = append(out, postgres.StateCount{Cluster: k[0], State: job.State(k[1]), N: v})
	}
	return out, nil
}

func (s *memStore) Runs(ctx context.Context) (map[string]postgres.Run, error) {
	return map[string]postgres.Run{}, nil
}

func (s *memStore) Ping(ctx context.Context) error { return nil }

// CountActive, SetPinned and MarkPurged complete api.Store; the ftctl tests do not
// use pins or purges.
func (s *memStore) CountActive(ctx context.Context, owner string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, j := range s.jobs {
		if j.OwnerSubject == owner && j.State.Active() {
			n++
		}
	}
	return n, nil
}

func (s *memStore) SetPinned(ctx context.Context, id string, pinned bool) error { return nil }

func (s *memStore) MarkPurged(ctx context.Context, id string, at time.Time) error { return nil }

// fakeSlurm implements api.Slurm and records control calls.
type fakeSlurm struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeSlurm) record(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
	return nil
}

func (f *fakeSlurm) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeSlurm) Render(req slurm.Request) (string, error) {
	// The dry run's job id is random: the script names it only by its tag's prefix.
	return fmt.Sprintf("#!/bin/bash\n#SBATCH --job-name=%s...\n#SBATCH --partition=%s\n#SBATCH --gres=gpu:%d\n#SBATCH --cpus-per-task=%d\n#SBATCH --mem=%dM\n#SBATCH --time=%d\nexec python -m ftgate_trainer --job-dir \"$FTGATE_JOB_DIR\"\n",
		slurm.Tag(""), req.Partition, req.GPUs, req.CPUs, req.MemoryMB, req.TimeLimitMinutes), nil
}
func (f *fakeSlurm) Cancel(ctx context.Context, user, id string) error {
	return f.record("Cancel " + user + " " + id)
}
func (f *fakeSlurm) Signal(ctx context.Context, user, id string) error {
	return f.record("Signal " + user + " " + id)
}
func (f *fakeSlurm) Hold(ctx context.Context, user, id string) error {
	return f.record("Hold " + user + " " + id)
}
func (f *fakeSlurm) Release(ctx context.Context, user, id string) error {
	return f.record("Release " + user + " " + id)
}
func (f *fakeSlurm) Poll(ctx context.Context, user string, ids []string) (map[string]slurm.Status, error) {
	out := map[string]slurm.Status{}
	for _, id := range ids {
		out[id] = slurm.Status{ID: id, State: "PENDING", Held: true, RequeuedHeld: true}
	}
	return out, nil
}
func (f *fakeSlurm) CachedCapacity(ctx context.Context) (*slurm.Capacity, error) {
	return &slurm.Capacity{Partitions: []slurm.Partition{
		{Name: "gpu", State: "UP", GPUs: 4, GPUsAlloc: 1, MaxNodeGPUs: 4, MaxNodeCPUs: 16, MaxNodeMemoryMB: 16000},
		{Name: "urgent", State: "UP", GPUs: 4, GPUsAlloc: 3, MaxNodeGPUs: 4, MaxNodeCPUs: 16, MaxNodeMemoryMB: 16000},
	}}, nil
}

// localFiles is the cluster filesystem as a local directory: api.Files plus the
// methods the artifact routes need (artifact.FS).
type localFiles struct{}

func (localFiles) WriteFile(ctx context.Context, user, path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, perm)
}
func (localFiles) Lstat(ctx context.Context, user, path string) (os.FileInfo, error) {
	return os.Lstat(path)
}
func (localFiles) ReadDir(ctx context.Context, user, path string) ([]os.FileInfo, error) {
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var out []os.FileInfo
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			return nil, err
		}
		out = append(out, fi)
	}
	return out, nil
}
func (localFiles) RealPath(ctx context.Context, user, path string) (string, error) {
	return filepath.EvalSymlinks(path)
}
func (localFiles) Open(ctx context.Context, user, path string, offset int64) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
func (localFiles) ReadFile(ctx context.Context, user, path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}
func (localFiles) Run(ctx context.Context, user string, argv []string, stdin io.Reader) ([]byte, []byte, error) {
	return nil, nil, errors.New("no commands in tests")
}

// tokenAuth: "Bearer <user>" is that user; "admin" is an admin.
type tokenAuth struct{}

func (tokenAuth) Authenticate(r *http.Request) (job.Identity, error) {
	name, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || name == "" || name == "expired" {
		return job.Identity{}, job.Errorf(job.EUnauthorized, "token expired")
	}
	return job.Identity{Subject: "sub-" + name, Username: name, Admin: name == "admin"}, nil
}

// env is one gateway with its fakes, and ftctl's config pointing at it.
type env struct {
	t       *testing.T
	store   *memStore
	slurm   *fakeSlurm
	srv     *httptest.Server
	root    string // job root
	cfgDir  string
	token   string
	server  string // FTCTL_SERVER; the test server by default
	workdir string
	// events, when set, serves GET /api/training/{id}/events instead of the gateway
	// (whose streams need Postgres' LISTEN).
	events http.HandlerFunc
	// requests records method, path and query of each request.
	mu       sync.Mutex
	requests []*http.Request
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, store: newMemStore(), slurm: &fakeSlurm{}, root: t.TempDir(), cfgDir: t.TempDir(), token: "alice", workdir: t.TempDir()}
	for _, u := range []string{"alice", "bob"} {
		if err := os.MkdirAll(filepath.Join(e.root, u), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := &api.Server{
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Version: "test",
		Auth:    tokenAuth{},
		Store:   e.store,
		Clusters: []*api.Cluster{{
			Config: config.Cluster{Name: "dev", Partitions: []string{"gpu", "urgent"}, DefaultPartition: "gpu", JobRoot: e.root},
			Slurm:  e.slurm,
			Files:  localFiles{},
		}},
		MaxBody: 1 << 20,
	}
	h := s.Handler()
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.requests = append(e.requests, r.Clone(context.Background()))
		ev := e.events
		e.mu.Unlock()
		if ev != nil && strings.HasPrefix(r.URL.Path, "/api/training/") && strings.HasSuffix(r.URL.Path, "/events") {
			if _, err := tokenAuth.Authenticate(tokenAuth{}, r); err != nil {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			ev(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	e.server = e.srv.URL
	return e
}

// login writes a token cache holding a session whose bearer token is e.token.
func (e *env) login() {
	e.t.Helper()
	f := map[string]any{"sessions": map[string]any{e.server: map[string]any{
		"server": e.server, "issuer": "http://127.0.0.1:1/dex", "client_id": "ftctl", "token_url": "http://127.0.0.1:1/dex/token",
		"access_token": e.token, "expiry": t0.Add(time.Hour),
	}}}
	b, _ := json.Marshal(f)
	if err := os.WriteFile(filepath.Join(e.cfgDir, "tokens.json"), b, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// run runs ftctl with args and returns its exit code, stdout and stderr.
func (e *env) run(args ...string) (int, string, string) {
	return e.runIn("", args...)
}

func (e *env) runIn(stdin string, args ...string) (int, string, string) {
	e.t.Helper()
	if _, err := os.Stat(filepath.Join(e.cfgDir, "tokens.json")); errors.Is(err, os.ErrNotExist) && e.token != "" {
		e.login()
	}
	var out, errb bytes.Buffer
	f := NewFactory(strings.NewReader(stdin), &out, &errb)
	f.Getenv = func(k string) string {
		switch k {
		case "FTCTL_SERVER":
			return e.server
		case "FTCTL_CONFIG_DIR":
			return e.cfgDir
		}
		return ""
	}
	f.Now = func() time.Time { return t0 }
	done := make(chan int, 1)
	go func() { done <- Run(f, args) }()
	select {
	case code := <-done:
		return code, out.String(), errb.String()
	case <-time.After(20 * time.Second):
		e.t.Fatalf("ftctl %s did not finish in 20s; stdout %q stderr %q", strings.Join(args, " "), out.String(), errb.String())
	}
	return 0, "", ""
}

// seed adds a job owned by user in state st.
func (e *env) seed(id, user string, st job.State, mod func(j *job.Job)) job.Job {
	e.t.Helper()
	spec := job.Spec{Name: "tiny-" + id, Method: "sft", Model: job.BuiltinTiny, Dataset: job.Dataset{Path: "/data/train.jsonl"},
		Resources: job.Resources{Cluster: "dev", Partition: "gpu", GPUs: 1}}
	spec.Normalize()
	j := job.Job{ID: id, OwnerSubject: "sub-" + user, User: user, Cluster: "dev", Spec: spec, State: st,
		JobDir: filepath.Join(e.root, user, id), CreatedAt: t0.Add(-time.Hour), UpdatedAt: t0}
	if st != job.Submitting {
		j.SlurmID = "100" + strings.TrimPrefix(id, "j")
	}
	if mod != nil {
		mod(&j)
	}
	e.store.put(j)
	return j
}

// golden compares got with testdata/golden/<name>, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -run %s -update): %v", t.Name(), err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (-update rewrites it)\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func ptr[T any](v T) *T { return &v }

// Package ftctltest runs ftctl in tests: against the gateway's real handlers over
// in-memory fakes of the store and Slurm (Env), against an embedded OpenID provider
// (AuthEnv), and through Dex's pages on the stack (DexBrowser). Only tests import it.
package ftctltest

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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/api"
	"github.com/ftgate/ftgate/internal/api/apitest"
	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/root"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/quota"
	"github.com/ftgate/ftgate/internal/slurm"
)

var update = flag.Bool("update", false, "rewrite golden files")

// T0 is the tests' fixed clock.
var T0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// MemStore implements api.Store in memory.
type MemStore struct {
	mu   sync.Mutex
	jobs map[string]*job.Job
	runs map[string][]quota.Run // by Unix user
	next int
	gets int
	now  func() time.Time
}

func newMemStore() *MemStore {
	return &MemStore{jobs: map[string]*job.Job{}, now: func() time.Time { return T0 }}
}

func (s *MemStore) Create(ctx context.Context, j job.Job, lim quota.Limits) (job.Job, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := lim.Check(s.usage(j.User), quota.Add{Active: 1, Queued: 1, GPUs: j.Spec.Resources.TotalGPUs()}); err != nil {
		return job.Job{}, false, err
	}
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

// Put stores j as it is.
func (s *MemStore) Put(j job.Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs[j.ID] = &j
}

// Update changes the stored job id with fn.
func (s *MemStore) Update(id string, fn func(j *job.Job)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.jobs[id])
}

// Gets is the number of Get calls served.
func (s *MemStore) Gets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets
}

func (s *MemStore) Get(ctx context.Context, id string) (job.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	j, ok := s.jobs[id]
	if !ok {
		return job.Job{}, job.Errorf(job.ENotFound, "job %s not found", id)
	}
	return *j, nil
}

func (s *MemStore) List(ctx context.Context, f postgres.Filter) ([]job.Job, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make([]job.Job, 0, len(s.jobs))
	for _, j := range s.jobs {
		all = append(all, *j)
	}
	return postgres.Page(f, all, s.now())
}

func (s *MemStore) Transition(ctx context.Context, id string, c job.Change) (job.Job, error) {
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

func (s *MemStore) CountByState(ctx context.Context) ([]postgres.StateCount, error) {
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

func (s *MemStore) Runs(ctx context.Context) (map[string]postgres.Run, error) {
	return map[string]postgres.Run{}, nil
}

func (s *MemStore) Ping(ctx context.Context) error { return nil }

// Created is the number of jobs Create created.
func (s *MemStore) Created() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// AddRun records a run of user's for GPU-hours (the Postgres store writes them as
// the reconciler sees runs start and end).
func (s *MemStore) AddRun(user string, r quota.Run) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runs == nil {
		s.runs = map[string][]quota.Run{}
	}
	s.runs[user] = append(s.runs[user], r)
}

func (s *MemStore) usage(user string) quota.Usage {
	u := quota.Usage{At: s.now(), Runs: s.runs[user]}
	for _, j := range s.jobs {
		if j.User == user {
			u.Count(j.State, j.Spec.Resources.TotalGPUs())
		}
	}
	return u
}

// Usage, UserGroups, ByIdempotencyKey, SetPinned and MarkPurged complete api.Store;
// the ftctl tests do not use pins or purges.
func (s *MemStore) Usage(ctx context.Context, user string, lim quota.Limits) (quota.Usage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usage(user), nil
}

func (s *MemStore) UserGroups(ctx context.Context, user string) ([]string, error) { return nil, nil }

func (s *MemStore) ByIdempotencyKey(ctx context.Context, owner, key string) (job.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.jobs {
		if j.OwnerSubject == owner && j.IdempotencyKey == key {
			return *j, nil
		}
	}
	return job.Job{}, job.Errorf(job.ENotFound, "job not found")
}

func (s *MemStore) SetPinned(ctx context.Context, id string, pinned bool) error { return nil }

func (s *MemStore) MarkPurged(ctx context.Context, id string, at time.Time) error { return nil }

// FakeSlurm implements api.Slurm and records control calls.
type FakeSlurm struct {
	mu    sync.Mutex
	calls []string
}

func (f *FakeSlurm) record(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
	return nil
}

// Calls are the control calls made, as "Verb user slurm-id".
func (f *FakeSlurm) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *FakeSlurm) Render(req slurm.Request) (string, error) {
	// The dry run's job id is random: the script names it only by its tag's prefix.
	return fmt.Sprintf("#!/bin/bash\n#SBATCH --job-name=%s...\n#SBATCH --partition=%s\n#SBATCH --gres=gpu:%d\n#SBATCH --cpus-per-task=%d\n#SBATCH --mem=%dM\n#SBATCH --time=%d\nexec python -m ftgate_trainer --job-dir \"$FTGATE_JOB_DIR\"\n",
		slurm.Tag(""), req.Partition, req.GPUs, req.CPUs, req.MemoryMB, req.TimeLimitMinutes), nil
}
func (f *FakeSlurm) Cancel(ctx context.Context, user, id string) error {
	return f.record("Cancel " + user + " " + id)
}
func (f *FakeSlurm) Signal(ctx context.Context, user, id string) error {
	return f.record("Signal " + user + " " + id)
}
func (f *FakeSlurm) Hold(ctx context.Context, user, id string) error {
	return f.record("Hold " + user + " " + id)
}
func (f *FakeSlurm) Release(ctx context.Context, user, id string) error {
	return f.record("Release " + user + " " + id)
}
func (f *FakeSlurm) Poll(ctx context.Context, user string, ids []string) (map[string]slurm.Status, error) {
	out := map[string]slurm.Status{}
	for _, id := range ids {
		out[id] = slurm.Status{ID: id, State: "PENDING", Held: true, RequeuedHeld: true}
	}
	return out, nil
}
func (f *FakeSlurm) FreshCapacity(ctx context.Context) (*slurm.Capacity, error) {
	return f.CachedCapacity(ctx)
}
func (f *FakeSlurm) CachedCapacity(ctx context.Context) (*slurm.Capacity, error) {
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

// Env is one gateway with its fakes, and ftctl's config pointing at it.
type Env struct {
	t         *testing.T
	Store     *MemStore
	Templates *apitest.MemTemplates
	Webhooks  *MemWebhooks
	Slurm     *FakeSlurm
	Srv       *httptest.Server
	// API is the gateway under test; a test may set its Limits before running ftctl.
	API  *api.Server
	Root string // job root
	// CfgDir is FTCTL_CONFIG_DIR; Token the bearer token of the session Login writes.
	CfgDir string
	Token  string
	Server string // FTCTL_SERVER; the test server by default
	// events, when set, serves GET /api/training/{id}/events instead of the gateway
	// (whose streams need Postgres' LISTEN).
	events http.HandlerFunc
	// requests records method, path and query of each request.
	mu       sync.Mutex
	requests []*http.Request
}

// NewEnv starts a gateway over fakes for users alice and bob; ftctl runs as alice.
func NewEnv(t *testing.T) *Env {
	t.Helper()
	e := &Env{t: t, Store: newMemStore(), Templates: apitest.NewMemTemplates(func() time.Time { return T0 }), Webhooks: newMemWebhooks(),
		Slurm: &FakeSlurm{}, Root: t.TempDir(), CfgDir: t.TempDir(), Token: "alice"}
	for _, u := range []string{"alice", "bob"} {
		if err := os.MkdirAll(filepath.Join(e.Root, u), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := &api.Server{
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Version:   "test",
		Auth:      tokenAuth{},
		Store:     e.Store,
		Templates: e.Templates,
		Clusters: []*api.Cluster{{
			Config: config.Cluster{Name: "dev", Partitions: []string{"gpu", "urgent"}, DefaultPartition: "gpu", JobRoot: e.Root},
			Slurm:  e.Slurm,
			Files:  localFiles{},
		}},
		MaxBody:  1 << 20,
		Webhooks: api.Webhooks{Store: e.Webhooks, Check: webhookGuard().Check, MaxPerUser: 3},
	}
	e.API = s
	h := s.Handler()
	e.Srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	t.Cleanup(e.Srv.Close)
	e.Server = e.Srv.URL
	return e
}

// SetEvents serves the job event streams with h instead of the gateway.
func (e *Env) SetEvents(h http.HandlerFunc) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = h
}

// Requests are the requests the gateway received since the last ResetRequests.
func (e *Env) Requests() []*http.Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.requests)
}

// ResetRequests forgets the recorded requests.
func (e *Env) ResetRequests() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests = nil
}

// Login writes a token cache holding a session whose bearer token is e.Token.
func (e *Env) Login() {
	e.t.Helper()
	f := map[string]any{"sessions": map[string]any{e.Server: map[string]any{
		"server": e.Server, "issuer": "http://127.0.0.1:1/dex", "client_id": "ftctl", "token_url": "http://127.0.0.1:1/dex/token",
		"access_token": e.Token, "expiry": T0.Add(time.Hour),
	}}}
	b, _ := json.Marshal(f)
	if err := os.WriteFile(filepath.Join(e.CfgDir, "tokens.json"), b, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// Run runs ftctl with args and returns its exit code, stdout and stderr.
func (e *Env) Run(args ...string) (int, string, string) {
	return e.RunIn("", args...)
}

// RunIn runs ftctl with stdin and args.
func (e *Env) RunIn(stdin string, args ...string) (int, string, string) {
	e.t.Helper()
	if _, err := os.Stat(filepath.Join(e.CfgDir, "tokens.json")); errors.Is(err, os.ErrNotExist) && e.Token != "" {
		e.Login()
	}
	var out, errb bytes.Buffer
	f := cmdutil.NewFactory(strings.NewReader(stdin), &out, &errb)
	f.Getenv = func(k string) string {
		switch k {
		case "FTCTL_SERVER":
			return e.Server
		case "FTCTL_CONFIG_DIR":
			return e.CfgDir
		}
		return ""
	}
	f.Now = func() time.Time { return T0 }
	done := make(chan int, 1)
	go func() { done <- root.Run(f, args) }()
	select {
	case code := <-done:
		return code, out.String(), errb.String()
	case <-time.After(20 * time.Second):
		e.t.Fatalf("ftctl %s did not finish in 20s; stdout %q stderr %q", strings.Join(args, " "), out.String(), errb.String())
	}
	return 0, "", ""
}

// Seed adds a job owned by user in state st, changed by mod.
func (e *Env) Seed(id, user string, st job.State, mod func(j *job.Job)) job.Job {
	e.t.Helper()
	spec := job.Spec{Name: "tiny-" + id, Method: "sft", Model: job.BuiltinTiny, Dataset: job.Dataset{Path: "/data/train.jsonl"},
		Resources: job.Resources{Cluster: "dev", Partition: "gpu", GPUs: 1}}
	spec.Normalize()
	j := job.Job{ID: id, OwnerSubject: "sub-" + user, User: user, Cluster: "dev", Spec: spec, State: st,
		JobDir: filepath.Join(e.Root, user, id), CreatedAt: T0.Add(-time.Hour), UpdatedAt: T0}
	if st != job.Submitting {
		j.SlurmID = "100" + strings.TrimPrefix(id, "j")
	}
	if mod != nil {
		mod(&j)
	}
	e.Store.Put(j)
	return j
}

// Golden compares got with testdata/golden/<name>, or rewrites it with -update.
func Golden(t *testing.T, name, got string) {
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

// Ptr returns a pointer to v.
func Ptr[T any](v T) *T { return &v }

// SeedList adds four jobs: alice's succeeded j1, running j2 (dpo, 4 GPUs, no name)
// and queued j3, and bob's failed j4.
func SeedList(e *Env) {
	loss := 1.2345
	e.Seed("j1", "alice", job.Succeeded, func(j *job.Job) {
		j.CreatedAt = T0.Add(-3 * 24 * time.Hour)
		j.StartedAt, j.EndedAt = Ptr(j.CreatedAt.Add(time.Minute)), Ptr(j.CreatedAt.Add(13*time.Minute+5*time.Second))
		j.Progress = job.Progress{Phase: "completed", Step: 300, TotalSteps: 300, Loss: &loss}
	})
	e.Seed("j2", "alice", job.Running, func(j *job.Job) {
		j.CreatedAt = T0.Add(-10 * time.Minute)
		j.StartedAt = Ptr(T0.Add(-8 * time.Minute))
		j.Spec.Method, j.Spec.Name, j.Spec.Model = "dpo", "", "/models/llama-3-8b"
		j.Spec.Resources.GPUs = 4
		j.Progress = job.Progress{Phase: "training", Step: 120, TotalSteps: 400, Loss: Ptr(0.5)}
	})
	e.Seed("j3", "alice", job.Queued, func(j *job.Job) { j.CreatedAt = T0.Add(-30 * time.Second) })
	e.Seed("j4", "bob", job.Failed, func(j *job.Job) { j.CreatedAt = T0.Add(-2 * time.Hour) })
}

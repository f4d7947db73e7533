package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/metrics"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/slurm"
)

const tinySpec = `{"method":"sft","model":"builtin:tiny","dataset":{"path":"/data/train.jsonl"},
 "hyperparameters":{"max_steps":20},"resources":{"gpus":1}}`

type harness struct {
	t     *testing.T
	h     http.Handler
	store *postgres.Store
	slurm *fakeSlurm
	srv   *Server
}

func newHarness(t *testing.T) *harness {
	pool := pgtest.Schema(t)
	fs := newFakeSlurm()
	store := postgres.New(pool)
	srv := &Server{
		Auth: tokenAuth{}, Store: store, Metrics: metrics.New(), Version: "test", MaxBody: 4096, Limits: config.Limits{MaxActiveJobsPerUser: 3},
		Clusters: []*Cluster{{
			Config: config.Cluster{Name: "dev", JobRoot: "/jobs", Partitions: []string{"gpu", "urgent"}, DefaultPartition: "gpu", ProbeUser: "alice"},
			Slurm:  fs, Files: fs, Ping: func(context.Context) error { return nil },
		}},
	}
	return &harness{t: t, h: srv.Handler(), store: store, slurm: fs, srv: srv}
}

func (h *harness) do(method, path, user, body string, hdr ...string) (int, map[string]any, http.Header) {
	h.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+user)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	var m map[string]any
	b, _ := io.ReadAll(rec.Body)
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &m); err != nil {
			h.t.Fatalf("%s %s: response is not JSON: %v: %s", method, path, err, b)
		}
	}
	if m == nil {
		m = map[string]any{"raw": string(b)}
	}
	return rec.Code, m, rec.Header()
}

func errMsg(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	return fmt.Sprintf("%v: %v", e["code"], e["message"])
}

// submit creates a job for user and returns its id.
func (h *harness) submit(user string) string {
	h.t.Helper()
	code, m, _ := h.do("POST", "/api/training/execute", user, tinySpec)
	if code != http.StatusAccepted {
		h.t.Fatalf("execute: %d %v", code, m)
	}
	return m["id"].(string)
}

// force moves a job through legal transitions to state (test setup).
func (h *harness) force(id string, path ...job.State) {
	h.t.Helper()
	j, err := h.store.Get(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, to := range path {
		c := job.Change{From: j.State, To: to}
		if to == job.Queued && j.SlurmID == "" {
			c.SlurmID = "77"
		}
		if j, err = h.store.Transition(context.Background(), id, c); err != nil {
			h.t.Fatalf("force %s->%s: %v", c.From, to, err)
		}
	}
}

func TestIntegrationExecuteValidation(t *testing.T) {
	h := newHarness(t)
	big := `{"name":"` + strings.Repeat("x", 5000) + `"}`
	tests := []struct {
		name, body string
		hdr        []string
		code       int
		want       string
	}{
		{"malformed", `{"method":`, nil, 400, "invalid: body: truncated JSON"},
		{"unknown field", `{"method":"sft","foo":1}`, nil, 400, `unknown field "foo"`},
		{"wrong type", `{"method":"sft","resources":{"gpus":"two"}}`, nil, 400, `"resources.gpus"`},
		{"wrong content type", tinySpec, []string{"Content-Type", "text/plain"}, 400, "Content-Type"},
		{"too large", big, nil, 413, "too_large"},
		{"bad value", strings.Replace(tinySpec, `"sft"`, `"ppo"`, 1), nil, 422, "method: must be sft or dpo"},
		{"unknown cluster", strings.Replace(tinySpec, `"gpus":1`, `"gpus":1,"cluster":"nope"`, 1), nil, 422, "resources.cluster: unknown cluster"},
		{"partition not allowed", strings.Replace(tinySpec, `"gpus":1`, `"gpus":1,"partition":"debug"`, 1), nil, 422, "resources.partition"},
		{"too many GPUs for any node", strings.Replace(tinySpec, `"gpus":1`, `"gpus":5`, 1), nil, 422, "resources.gpus: 5 GPUs requested, but the largest node in partition gpu has 4"},
		{"too much memory", strings.Replace(tinySpec, `"gpus":1`, `"gpus":1,"memory_mb":20000`, 1), nil, 422, "resources.memory_mb"},
		{"bad dry_run", tinySpec, nil, 400, "dry_run"},
		{"bad idempotency key", tinySpec, []string{"Idempotency-Key", "a b"}, 400, "Idempotency-Key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/api/training/execute"
			if tt.name == "bad dry_run" {
				path += "?dry_run=maybe"
			}
			code, m, _ := h.do("POST", path, "alice", tt.body, tt.hdr...)
			if code != tt.code || !strings.Contains(errMsg(m), tt.want) {
				t.Fatalf("got %d %s, want %d containing %q", code, errMsg(m), tt.code, tt.want)
			}
		})
	}
	if jobs, _, _ := h.store.List(context.Background(), postgres.Filter{}); len(jobs) != 0 {
		t.Fatalf("rejected requests created %d jobs", len(jobs))
	}
}

func TestIntegrationExecuteDryRunIdempotencyQuota(t *testing.T) {
	h := newHarness(t)
	code, m, _ := h.do("POST", "/api/training/execute?dry_run=1", "alice", tinySpec)
	if code != 200 || !strings.Contains(m["script"].(string), "#SBATCH --partition=gpu") {
		t.Fatalf("dry run: %d %v", code, m)
	}
	spec := m["spec"].(map[string]any)
	if spec["quantization"] != "none" || spec["resources"].(map[string]any)["cluster"] != "dev" {
		t.Fatalf("dry run spec not normalised: %v", spec)
	}
	code, a, hdr := h.do("POST", "/api/training/execute", "alice", tinySpec, "Idempotency-Key", "abc")
	if code != 202 || a["state"] != "submitting" || hdr.Get("Location") == "" || a["job_dir"] != "/jobs/alice/"+a["id"].(string) {
		t.Fatalf("execute: %d %v", code, a)
	}
	// Same key and body (even formatted differently): the same job.
	code, b, hdr := h.do("POST", "/api/training/execute", "alice", strings.ReplaceAll(tinySpec, "\n", " "), "Idempotency-Key", "abc")
	if code != 202 || b["id"] != a["id"] || hdr.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %v", code, b)
	}
	// Same key, different body: 409.
	code, c, _ := h.do("POST", "/api/training/execute", "alice", strings.Replace(tinySpec, "20", "21", 1), "Idempotency-Key", "abc")
	if code != 409 || !strings.Contains(errMsg(c), "Idempotency-Key") {
		t.Fatalf("key reuse: %d %v", code, c)
	}
	// Quota is 3 active jobs.
	h.submit("alice")
	h.submit("alice")
	code, d, _ := h.do("POST", "/api/training/execute", "alice", tinySpec)
	if code != 429 || !strings.Contains(errMsg(d), "limit is 3") {
		t.Fatalf("quota: %d %v", code, d)
	}
	// Another user is not affected; a finished job frees a slot.
	h.submit("bob")
	h.force(a["id"].(string), job.Cancelled)
	h.submit("alice")
}

func TestIntegrationOwnershipAndList(t *testing.T) {
	h := newHarness(t)
	a := h.submit("alice")
	b := h.submit("bob")
	for _, path := range []string{"/api/training/status/", "/api/training/cancel/", "/api/training/pause/", "/api/training/resume/"} {
		method := "POST"
		if strings.Contains(path, "status") {
			method = "GET"
		}
		if code, m, _ := h.do(method, path+b, "alice", ""); code != 404 {
			t.Errorf("%s bob's job as alice: %d %v, want 404", path, code, m)
		}
		if code, m, _ := h.do(method, path+"not-a-uuid", "alice", ""); code != 404 {
			t.Errorf("%s bad id: %d %v, want 404", path, code, m)
		}
	}
	if code, m, _ := h.do("GET", "/api/training/status/"+b, "admin", ""); code != 200 || m["user"] != "bob" {
		t.Fatalf("admin status: %d %v", code, m)
	}
	if code, m, _ := h.do("GET", "/api/training/status/"+a, "alice", ""); code != 200 || m["id"] != a {
		t.Fatalf("own status: %d %v", code, m)
	}
	count := func(user, query string) int {
		code, m, _ := h.do("GET", "/api/jobs"+query, user, "")
		if code != 200 {
			t.Fatalf("list %s as %s: %d %v", query, user, code, m)
		}
		return len(m["jobs"].([]any))
	}
	if n := count("alice", ""); n != 1 {
		t.Errorf("alice sees %d jobs, want 1", n)
	}
	if n := count("admin", ""); n != 2 {
		t.Errorf("admin sees %d jobs, want 2", n)
	}
	if n := count("admin", "?user=bob"); n != 1 {
		t.Errorf("admin user=bob: %d, want 1", n)
	}
	if n := count("alice", "?status=submitting,queued&model=TINY&cluster=dev&from=2020-01-01&to="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); n != 1 {
		t.Errorf("alice filtered: %d, want 1", n)
	}
	if n := count("alice", "?status=running"); n != 0 {
		t.Errorf("alice status=running: %d, want 0", n)
	}
	for _, q := range []string{"?status=bogus", "?limit=0", "?limit=x", "?from=yesterday", "?cursor=zzz", "?sort=asc"} {
		if code, m, _ := h.do("GET", "/api/jobs"+q, "alice", ""); code != 400 {
			t.Errorf("list %s: %d %v, want 400", q, code, m)
		}
	}
	if code, _, _ := h.do("GET", "/api/jobs?user=bob", "alice", ""); code != 403 {
		t.Errorf("alice user=bob: %d, want 403", code)
	}
	// Keyset pagination.
	h.submit("alice")
	h.submit("alice")
	code, m, _ := h.do("GET", "/api/jobs?limit=2", "alice", "")
	next, _ := m["next_cursor"].(string)
	if code != 200 || len(m["jobs"].([]any)) != 2 || next == "" {
		t.Fatalf("page 1: %d %v", code, m)
	}
	_, m, _ = h.do("GET", "/api/jobs?limit=2&cursor="+next, "alice", "")
	if len(m["jobs"].([]any)) != 1 || m["next_cursor"] != "" {
		t.Fatalf("page 2: %v", m)
	}
}

func TestIntegrationCancelFromEachState(t *testing.T) {
	h := newHarness(t)
	paths := map[job.State][]job.State{
		job.Submitting: nil,
		job.Queued:     {job.Queued},
		job.Running:    {job.Queued, job.Running},
		job.Pausing:    {job.Queued, job.Running, job.Pausing},
		job.Paused:     {job.Queued, job.Paused},
	}
	for state, path := range paths {
		t.Run(string(state), func(t *testing.T) {
			id := h.submit("alice")
			h.force(id, path...)
			before := h.slurm.Calls()
			code, m, _ := h.do("POST", "/api/training/cancel/"+id, "alice", "")
			if code != 200 || m["state"] != "cancelled" {
				t.Fatalf("cancel from %s: %d %v", state, code, m)
			}
			calls := strings.TrimPrefix(h.slurm.Calls(), before)
			if state == job.Submitting && strings.Contains(calls, "Cancel") {
				t.Errorf("cancel of a submitting job called Slurm: %s", calls)
			}
			if state != job.Submitting && !strings.Contains(calls, "Cancel alice 77") {
				t.Errorf("cancel from %s did not scancel: %q", state, calls)
			}
			if code, m, _ := h.do("POST", "/api/training/cancel/"+id, "alice", ""); code != 200 || m["state"] != "cancelled" {
				t.Fatalf("second cancel: %d %v", code, m)
			}
		})
	}
	id := h.submit("alice")
	h.force(id, job.Queued, job.Running, job.Succeeded)
	if code, m, _ := h.do("POST", "/api/training/cancel/"+id, "alice", ""); code != 409 {
		t.Fatalf("cancel succeeded job: %d %v", code, m)
	}
	// Slurm unreachable: 503, the job stays as it was.
	id = h.submit("alice")
	h.force(id, job.Queued)
	h.slurm.fail["Cancel"] = job.Errorf(job.EUnavailable, "slurm controller unreachable")
	if code, m, _ := h.do("POST", "/api/training/cancel/"+id, "alice", ""); code != 503 {
		t.Fatalf("cancel with Slurm down: %d %v", code, m)
	}
	if j, _ := h.store.Get(context.Background(), id); j.State != job.Queued {
		t.Fatalf("job is %s after a failed cancel", j.State)
	}
}

func TestIntegrationPauseResume(t *testing.T) {
	h := newHarness(t)
	// Submitting: 409.
	id := h.submit("alice")
	if code, m, _ := h.do("POST", "/api/training/pause/"+id, "alice", ""); code != 409 {
		t.Fatalf("pause submitting: %d %v", code, m)
	}
	// Queued: held, paused at once.
	h.force(id, job.Queued)
	code, m, _ := h.do("POST", "/api/training/pause/"+id, "alice", "")
	if code != 200 || m["state"] != "paused" || !strings.Contains(h.slurm.Calls(), "Hold alice 77") {
		t.Fatalf("pause queued: %d %v calls %s", code, m, h.slurm.Calls())
	}
	if strings.Contains(h.slurm.Calls(), "Signal") {
		t.Fatal("a pending job must never be signalled")
	}
	// Paused again: 200 unchanged.
	if code, m, _ := h.do("POST", "/api/training/pause/"+id, "alice", ""); code != 200 || m["state"] != "paused" {
		t.Fatalf("pause paused: %d %v", code, m)
	}
	// Resume while Slurm still holds it: release, queued.
	h.slurm.status["77"] = slurm.Status{ID: "77", State: slurm.StatePending, Held: true}
	code, m, _ = h.do("POST", "/api/training/resume/"+id, "alice", "")
	if code != 200 || m["state"] != "queued" || !strings.Contains(h.slurm.Calls(), "Release alice 77") {
		t.Fatalf("resume: %d %v calls %s", code, m, h.slurm.Calls())
	}
	if h.slurm.files["/jobs/alice/"+id+"/control.json"] != "{\"action\":\"run\"}\n" {
		t.Fatalf("control.json after resume: %q", h.slurm.files["/jobs/alice/"+id+"/control.json"])
	}
	// Resume of a queued or running job: 409 saying why.
	code, m, _ = h.do("POST", "/api/training/resume/"+id, "alice", "")
	if code != 409 || !strings.Contains(errMsg(m), "only a paused job can be resumed") {
		t.Fatalf("resume queued: %d %v", code, m)
	}
	// Running: control.json then the signal; pausing.
	h.force(id, job.Running)
	code, m, _ = h.do("POST", "/api/training/pause/"+id, "alice", "")
	if code != 202 || m["state"] != "pausing" || m["pause_requested_at"] == nil {
		t.Fatalf("pause running: %d %v", code, m)
	}
	calls := h.slurm.Calls()
	w := strings.LastIndex(calls, "WriteFile alice /jobs/alice/"+id+"/control.json")
	sig := strings.LastIndex(calls, "Signal alice 77")
	if w < 0 || sig < w || h.slurm.files["/jobs/alice/"+id+"/control.json"] != "{\"action\":\"pause\"}\n" {
		t.Fatalf("want control.json written before the signal: %s", calls)
	}
	if code, m, _ := h.do("POST", "/api/training/pause/"+id, "alice", ""); code != 200 || m["state"] != "pausing" {
		t.Fatalf("pause pausing: %d %v", code, m)
	}
	if code, m, _ := h.do("POST", "/api/training/resume/"+id, "alice", ""); code != 409 || !strings.Contains(errMsg(m), "still pausing") {
		t.Fatalf("resume pausing: %d %v", code, m)
	}
	// The reconciler finishes the pause; Slurm then purges the job: resume resubmits.
	h.force(id, job.Paused)
	delete(h.slurm.status, "77")
	code, m, _ = h.do("POST", "/api/training/resume/"+id, "alice", "")
	if code != 200 || m["state"] != "submitting" {
		t.Fatalf("resume of a purged job: %d %v", code, m)
	}
	// A failed signal reverts the pause.
	id2 := h.submit("alice")
	h.force(id2, job.Queued, job.Running)
	h.slurm.fail["Signal"] = job.Errorf(job.EUnavailable, "ssh down")
	if code, m, _ := h.do("POST", "/api/training/pause/"+id2, "alice", ""); code != 503 {
		t.Fatalf("pause with failing signal: %d %v", code, m)
	}
	if j, _ := h.store.Get(context.Background(), id2); j.State != job.Running || j.PauseRequested != nil {
		t.Fatalf("after failed pause: %s %v", j.State, j.PauseRequested)
	}
	// Finished jobs: 409.
	h.force(id2, job.Succeeded)
	for _, op := range []string{"pause", "resume"} {
		if code, m, _ := h.do("POST", "/api/training/"+op+"/"+id2, "alice", ""); code != 409 {
			t.Fatalf("%s succeeded: %d %v", op, code, m)
		}
	}
}

func TestIntegrationReadySystemMetrics(t *testing.T) {
	h := newHarness(t)
	if code, m, _ := h.do("GET", "/ready", "", ""); code != 200 || m["status"] != "ready" {
		t.Fatalf("ready: %d %v", code, m)
	}
	h.srv.Clusters[0].Ping = func(context.Context) error { return fmt.Errorf("scontrol ping: Slurmctld(primary) is DOWN") }
	h.srv.readyCache.at = time.Time{} // past the cache
	code, m, _ := h.do("GET", "/ready", "", "")
	if code != 503 || m["status"] != "not ready" || strings.Contains(fmt.Sprint(m), "Slurmctld") {
		t.Fatalf("ready with cluster down: %d %v", code, m)
	}
	h.submit("alice")
	if err := h.store.RecordRun(context.Background(), "dev", time.Now(), 5*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	code, m, _ = h.do("GET", "/api/system/status", "alice", "")
	if code != 200 || m["version"] != "test" {
		t.Fatalf("system status: %d %v", code, m)
	}
	cl := m["clusters"].([]any)[0].(map[string]any)
	p := cl["partitions"].([]any)[0].(map[string]any)
	if cl["jobs"].(map[string]any)["submitting"].(float64) != 1 || p["gpus_free"].(float64) != 3 || cl["reconciler_lag_seconds"] == nil {
		t.Fatalf("system status cluster: %v", cl)
	}
	code, m, _ = h.do("GET", "/metrics", "", "")
	raw := m["raw"].(string)
	if code != 200 || !strings.Contains(raw, `ftgate_http_requests_total{method="POST",route="/api/training/execute",status="202"} 1`) {
		t.Fatalf("metrics: %d %s", code, raw)
	}
	if code, m, _ := h.do("DELETE", "/api/jobs", "alice", ""); code != 405 {
		t.Fatalf("DELETE /api/jobs: %d %v", code, m)
	}
	if code, m, _ := h.do("GET", "/nope", "", ""); code != 404 || errMsg(m) == "" {
		t.Fatalf("unknown route: %d %v", code, m)
	}
}

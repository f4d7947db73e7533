package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/metrics"
	"github.com/ftgate/ftgate/internal/quota"
	"github.com/ftgate/ftgate/internal/slurm"
)

// groupAuth is tokenAuth with groups: "Bearer alice+lab" is alice in group lab.
type groupAuth struct{}

func (groupAuth) Authenticate(r *http.Request) (job.Identity, error) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	name, groups, _ := strings.Cut(tok, "+")
	id, err := tokenAuth{}.Authenticate(r)
	if err != nil || name == "" {
		return id, err
	}
	id = job.Identity{Subject: "sub-" + name, Username: name, Admin: name == "admin"}
	if groups != "" {
		id.Groups = strings.Split(groups, ",")
	}
	return id, nil
}

// quotaServer is a gateway over memStore (alice: job-a queued and job-p paused, one
// GPU each; bob: job-b queued) and a fake Slurm, with lim.
func quotaServer(t *testing.T, lim config.Limits, allowNoWait bool) (*httptest.Server, *memStore, *fakeSlurm) {
	t.Helper()
	store, fs := newMemStore(), newFakeSlurm()
	store.runs, store.groups = map[string][]quota.Run{}, map[string][]string{}
	srv := &Server{Auth: groupAuth{}, Store: store, Log: slog.New(slog.DiscardHandler), MaxBody: 4096, Version: "test",
		Metrics: metrics.New(), Limits: lim,
		Clusters: []*Cluster{{Config: config.Cluster{Name: "dev", JobRoot: "/jobs", Partitions: []string{"gpu"}, DefaultPartition: "gpu",
			ProbeUser: "ftgate-probe", AllowNoWait: allowNoWait}, Slurm: fs, Files: fs}}}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts, store, fs
}

// call sends method path as token with body (a spec or nil) and decodes the answer.
func call(t *testing.T, ts *httptest.Server, token, method, path string, body any, hdr ...string) (int, map[string]any) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, ts.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func gpuSpec(gpus int, noWait bool) map[string]any {
	return map[string]any{"method": "sft", "model": "builtin:tiny", "dataset": map[string]any{"path": "/data/train.jsonl"},
		"resources": map[string]any{"gpus": gpus, "no_wait": noWait}}
}

// errorOf returns the error answer's code, message and details.
func errorOf(m map[string]any) (string, string, map[string]any) {
	e, _ := m["error"].(map[string]any)
	code, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	d, _ := e["details"].(map[string]any)
	return code, msg, d
}

// TestExecuteOverLimits: each limit answers 429 with its code, a message giving the
// limit and the usage, and the details; group overrides apply; under the limits the
// job is accepted.
func TestExecuteOverLimits(t *testing.T) {
	t.Parallel()
	week := 168 * time.Hour
	tests := []struct {
		name    string
		lim     config.Limits
		token   string
		gpus    int
		runs    []quota.Run
		status  int
		limit   string
		msg     string
		details map[string]any
	}{
		{name: "active jobs", lim: config.Limits{MaxActiveJobsPerUser: 2}, token: "alice", gpus: 1, status: 429, limit: quota.LimitActive,
			msg: "you have 2 unfinished jobs (paused ones included), the limit is 2", details: map[string]any{"max": 2.0, "used": 2.0, "requested": 1.0}},
		{name: "queue cap", lim: config.Limits{MaxQueuedJobsPerUser: 1}, token: "alice", gpus: 1, status: 429, limit: quota.LimitQueued,
			msg: "queue cap reached: you have 1 jobs waiting to start", details: map[string]any{"max": 1.0, "used": 1.0}},
		{name: "queue cap is per user", lim: config.Limits{MaxQueuedJobsPerUser: 2}, token: "bob", gpus: 1, status: 202},
		{name: "gpus at once", lim: config.Limits{MaxGPUsPerUser: 2}, token: "alice", gpus: 2, status: 429, limit: quota.LimitGPUs,
			msg: "hold 1 GPUs and this job asks for 2 more, the limit is 2", details: map[string]any{"max": 2.0, "used": 1.0, "requested": 2.0}},
		{name: "gpus fit", lim: config.Limits{MaxGPUsPerUser: 2}, token: "alice", gpus: 1, status: 202},
		{name: "group raises the gpu limit", lim: config.Limits{MaxGPUsPerUser: 2, Groups: map[string]config.LimitOverride{"lab": {MaxGPUsPerUser: ptr(8)}}},
			token: "alice+lab", gpus: 4, status: 202},
		{name: "gpu hours", lim: config.Limits{GPUHoursPerWindow: 10, Window: week}, token: "alice", gpus: 1,
			runs: []quota.Run{{Start: time.Now().Add(-167 * time.Hour), End: ptr(time.Now().Add(-161 * time.Hour)), GPUs: 2}}, status: 429, limit: quota.LimitGPUHours,
			msg: "GPU-hour limit reached: you used 12.0 of 10 GPU-hours in the last 7d; it frees up at ", details: map[string]any{"max": 10.0, "used": 12.0, "window_seconds": 604800.0}},
		{name: "gpu hours of a running job", lim: config.Limits{GPUHoursPerWindow: 10, Window: week}, token: "alice", gpus: 1,
			runs: []quota.Run{{Start: time.Now().Add(-6 * time.Hour), GPUs: 2}}, status: 429, limit: quota.LimitGPUHours, msg: "your running jobs alone hold it"},
		{name: "gpu hours under", lim: config.Limits{GPUHoursPerWindow: 10, Window: week}, token: "alice", gpus: 1,
			runs: []quota.Run{{Start: time.Now().Add(-2 * time.Hour), GPUs: 2}}, status: 202},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts, store, _ := quotaServer(t, tt.lim, false)
			store.runs["alice"] = tt.runs
			code, m := call(t, ts, tt.token, "POST", "/api/training/execute", gpuSpec(tt.gpus, false))
			if code != tt.status {
				t.Fatalf("status %d, want %d: %v", code, tt.status, m)
			}
			if tt.status != 429 {
				return
			}
			ec, msg, d := errorOf(m)
			if ec != job.ETooMany || d["limit"] != tt.limit || !strings.Contains(msg, tt.msg) {
				t.Errorf("error %s %q %v, want too_many for %s with %q", ec, msg, d, tt.limit, tt.msg)
			}
			for k, v := range tt.details {
				if d[k] != v {
					t.Errorf("details.%s = %v, want %v (all: %v)", k, d[k], v, d)
				}
			}
			if tt.limit == quota.LimitGPUHours && strings.Contains(tt.msg, "frees up at") {
				// The run leaves the window from +1h on (2 GPUs): 12 -> 10 after an hour.
				at, err := time.Parse(time.RFC3339, d["frees_at"].(string))
				if want := time.Now().Add(2 * time.Hour); err != nil || at.Sub(want).Abs() > time.Minute {
					t.Errorf("frees_at %v, want about %v", d["frees_at"], want)
				}
			}
			if n := len(store.jobs); n != 3 {
				t.Errorf("%d jobs stored after a refusal, want 3", n)
			}
		})
	}
}

// TestResumeOverLimits: a resume that would pass the queue cap answers 429 and leaves
// the job paused; under it the job resumes.
func TestResumeOverLimits(t *testing.T) {
	t.Parallel()
	ts, store, fs := quotaServer(t, config.Limits{MaxQueuedJobsPerUser: 1}, false)
	fs.status["102"] = slurm.Status{ID: "102", State: slurm.StatePending, Held: true}
	code, m := call(t, ts, "alice", "POST", "/api/training/resume/job-p", nil)
	if ec, msg, d := errorOf(m); code != 429 || ec != job.ETooMany || d["limit"] != quota.LimitQueued || !strings.Contains(msg, "queue cap") {
		t.Fatalf("resume over the queue cap: %d %v", code, m)
	}
	if st := store.jobs["job-p"].State; st != job.Paused || fs.Calls() != "" {
		t.Fatalf("refused resume: state %s, slurm calls %q", st, fs.Calls())
	}
	j := store.jobs["job-a"]
	j.State = job.Running
	store.jobs["job-a"] = j
	if code, m := call(t, ts, "alice", "POST", "/api/training/resume/job-p", nil); code != 200 || m["state"] != "queued" {
		t.Fatalf("resume under the cap: %d %v", code, m)
	}
}

// TestExecuteNoWait: with allow_no_wait, a no_wait job is refused with 409 and the
// free GPU count when no node has room, accepted when one has; a repeated request
// answers its job; without allow_no_wait, or without GPUs, no_wait is a 422.
func TestExecuteNoWait(t *testing.T) {
	t.Parallel()
	full := &slurm.Capacity{
		Nodes: []slurm.Node{{Name: "n1", Available: true, GPUs: 4, GPUsAlloc: 3}, {Name: "n2", Available: false, GPUs: 4},
			{Name: "n3", Available: true, GPUs: 2, GPUsAlloc: 1}},
		Partitions: []slurm.Partition{{Name: "gpu", State: "UP", Nodes: []string{"n1", "n2", "n3"}, GPUs: 10, GPUsAlloc: 4,
			MaxNodeGPUs: 4, MaxNodeCPUs: 16, MaxNodeMemoryMB: 16000}},
	}
	ts, store, fs := quotaServer(t, config.Limits{}, true)
	fs.capacity = full
	// 1 GPU free on n1 and 1 on n3 (n2 is down): 2 GPUs on one node do not fit.
	code, m := call(t, ts, "alice", "POST", "/api/training/execute", gpuSpec(2, true), "Idempotency-Key", "k1")
	ec, msg, d := errorOf(m)
	if code != 409 || ec != job.EConflict || d["free_gpus"] != 2.0 || d["requested_gpus"] != 2.0 || d["partition"] != "gpu" ||
		!strings.Contains(msg, "partition gpu has 2 free GPUs and this job needs 2") {
		t.Fatalf("no room: %d %v", code, m)
	}
	if len(store.jobs) != 3 {
		t.Fatalf("refused job stored")
	}
	if code, m := call(t, ts, "alice", "POST", "/api/training/execute", gpuSpec(1, true), "Idempotency-Key", "k2"); code != 202 {
		t.Fatalf("1 GPU fits on n1: %d %v", code, m)
	}
	// The same request again, once its job took the last GPU: its job, not a 409.
	fs.mu.Lock()
	fs.capacity = &slurm.Capacity{Partitions: []slurm.Partition{{Name: "gpu", State: "UP", GPUs: 4, GPUsAlloc: 4, MaxNodeGPUs: 4, MaxNodeCPUs: 16, MaxNodeMemoryMB: 16000}}}
	fs.mu.Unlock()
	if code, m := call(t, ts, "alice", "POST", "/api/training/execute", gpuSpec(1, true), "Idempotency-Key", "k2"); code != 202 {
		t.Fatalf("repeated request: %d %v", code, m)
	}
	if code, m := call(t, ts, "alice", "POST", "/api/training/execute", gpuSpec(1, true)); code != 409 {
		t.Fatalf("full partition: %d %v", code, m)
	}
	if code, m := call(t, ts, "alice", "POST", "/api/training/execute", gpuSpec(1, false)); code != 202 {
		t.Fatalf("without no_wait the job queues: %d %v", code, m)
	}
	if code, m := call(t, ts, "alice", "POST", "/api/training/execute", gpuSpec(0, true)); code != 422 || !strings.Contains(m["error"].(map[string]any)["message"].(string), "resources.no_wait: needs resources.gpus > 0") {
		t.Fatalf("no_wait without GPUs: %d %v", code, m)
	}
	fs.mu.Lock()
	fs.capacity, fs.capErr = nil, job.Errorf(job.EUnavailable, "ssh down")
	fs.mu.Unlock()
	if code, m := call(t, ts, "alice", "POST", "/api/training/execute", gpuSpec(1, true)); code != 503 {
		t.Fatalf("capacity unknown: %d %v", code, m)
	}

	ts2, _, _ := quotaServer(t, config.Limits{}, false)
	code, m = call(t, ts2, "alice", "POST", "/api/training/execute", gpuSpec(1, true))
	if _, msg, _ := errorOf(m); code != 422 || !strings.Contains(msg, "resources.no_wait: cluster dev does not offer it") {
		t.Fatalf("cluster without allow_no_wait: %d %v", code, m)
	}
}

// TestUsageRoute: the caller's usage with its limits (group overrides applied); an
// admin's ?user= uses the groups recorded with that user's jobs; others get 403.
func TestUsageRoute(t *testing.T) {
	t.Parallel()
	lim := config.Limits{MaxActiveJobsPerUser: 10, MaxQueuedJobsPerUser: 4, MaxGPUsPerUser: 4, GPUHoursPerWindow: 10, Window: 24 * time.Hour,
		Groups: map[string]config.LimitOverride{"lab": {MaxGPUsPerUser: ptr(16)}}}
	ts, store, _ := quotaServer(t, lim, false)
	j := store.jobs["job-a"]
	j.State, j.Spec.Resources.GPUs = job.Running, 3
	store.jobs["job-a"] = j
	store.runs["alice"] = []quota.Run{{Start: time.Now().Add(-25 * time.Hour), End: ptr(time.Now().Add(-22 * time.Hour)), GPUs: 4},
		{Start: time.Now().Add(-2 * time.Hour), GPUs: 3}}
	store.groups["alice"] = []string{"lab"}
	get := func(token, path string) (int, client.Usage, map[string]any) {
		t.Helper()
		code, m := call(t, ts, token, "GET", path, nil)
		b, _ := json.Marshal(m)
		var u client.Usage
		_ = json.Unmarshal(b, &u)
		return code, u, m
	}
	code, u, m := get("alice", "/api/usage")
	// 4 GPUs × 2 h of the ended run in the window, 3 GPUs × 2 h running: 14 GPU-hours.
	if code != 200 || u.User != "alice" || u.ActiveJobs != 2 || u.QueuedJobs != 0 || u.GPUsInUse != 3 || u.GPUsHeld != 3 ||
		u.GPUHours < 13.99 || u.GPUHours > 14.01 || u.Limits.MaxGPUs != 4 || u.Limits.WindowSeconds != 86400 || len(u.Groups) != 0 {
		t.Fatalf("alice: %d %+v %v", code, u, m)
	}
	// 14 used, limit 10: over the next 2 h the ended run leaves the window (-4 GPU-h
	// an hour) while the running one adds 3 an hour, 12 at best, then only grows:
	// never below 10 while the running job runs, so frees_at is absent.
	if u.GPUHoursFreesAt != nil {
		t.Errorf("frees_at %v, want none while the running job alone passes the limit", u.GPUHoursFreesAt)
	}
	if code, u, _ := get("alice+lab", "/api/usage"); code != 200 || u.Limits.MaxGPUs != 16 || len(u.Groups) != 1 {
		t.Errorf("alice in lab: %d %+v", code, u)
	}
	if code, u, _ := get("admin", "/api/usage?user=alice"); code != 200 || u.User != "alice" || u.Limits.MaxGPUs != 16 || u.GPUsInUse != 3 {
		t.Errorf("admin ?user=alice (recorded groups lab): %d %+v", code, u)
	}
	if code, _, m := get("bob", "/api/usage?user=alice"); code != 403 {
		t.Errorf("bob ?user=alice: %d %v", code, m)
	}
	if code, u, _ := get("bob", "/api/usage?user=bob"); code != 200 || u.User != "bob" || u.QueuedJobs != 1 {
		t.Errorf("bob ?user=bob: %d %+v", code, u)
	}
	if code, _, m := get("admin", "/api/usage?user=Bad!"); code != 400 {
		t.Errorf("admin ?user=Bad!: %d %v", code, m)
	}
}

func ptr[T any](v T) *T { return &v }

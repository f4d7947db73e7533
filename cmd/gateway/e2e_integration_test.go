package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/slurm"
	"github.com/ftgate/ftgate/internal/sshconn"
	"github.com/ftgate/ftgate/internal/stacktest"
	"github.com/ftgate/ftgate/internal/submit"
	"github.com/ftgate/ftgate/internal/wiring"
)

// e2e is the whole gateway in-process against the real stack: Postgres (own schema),
// Dex tokens, sshd with user certificates, Slurm and the real trainer.
type e2e struct {
	t     testing.TB
	url   string
	token string
	slurm *slurm.Client
	app   *app // the gateway under test (benchmarks reach its SSH pool)
	cfg   *config.Config
	// hooks wraps the submitter's Slurm access, so a test can act at the exact moment
	// the submitter is about to run sbatch, or has just run it.
	hooks *submitHooks
}

// submitHooks holds test hooks around the submitter's sbatch, per gateway job; each
// cluster's Slurm is wrapped in its own hookedSlurm sharing them.
type submitHooks struct {
	mu     sync.Mutex
	before map[string]func()               // runs before sbatch
	after  map[string]func(slurmID string) // runs after a successful sbatch
}

// hookedSlurm is one cluster's submitter Slurm with the shared hooks around Submit.
type hookedSlurm struct {
	submit.Slurm
	h *submitHooks
}

func (h *submitHooks) hook(jobID string) (func(), func(string)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.before[jobID], h.after[jobID]
}

// onSubmit sets the hooks for the next job to be executed (its id is not known yet):
// they apply to the first job whose sbatch the submitter reaches after this call.
func (h *submitHooks) onSubmit(before func(), after func(slurmID string)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.before["*"], h.after["*"] = before, after
}

func (s hookedSlurm) Submit(ctx context.Context, user string, req slurm.Request) (slurm.Submitted, error) {
	return s.h.around(req, func() (slurm.Submitted, error) { return s.Slurm.Submit(ctx, user, req) })
}

func (s hookedSlurm) SubmitInDir(ctx context.Context, user string, req slurm.Request, dir string, jobJSON []byte) (slurm.Submitted, error) {
	return s.h.around(req, func() (slurm.Submitted, error) { return s.Slurm.SubmitInDir(ctx, user, req, dir, jobJSON) })
}

// around runs sbatch (one of the two ways) between the job's hooks.
func (h *submitHooks) around(req slurm.Request, sbatch func() (slurm.Submitted, error)) (slurm.Submitted, error) {
	h.mu.Lock()
	if b, a := h.before["*"], h.after["*"]; b != nil || a != nil {
		h.before[req.JobID], h.after[req.JobID] = b, a
		delete(h.before, "*")
		delete(h.after, "*")
	}
	h.mu.Unlock()
	before, after := h.hook(req.JobID)
	if before != nil {
		before()
	}
	sub, err := sbatch()
	if err == nil && after != nil {
		after(sub.ID)
	}
	return sub, err
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

func startE2E(t testing.TB, mods ...func(*config.Config)) *e2e {
	st := stacktest.Require(t)
	pool, _ := pgtest.Open(t, st.PGURL, true)
	return startE2EOn(t, pool, mods...)
}

// startE2EOn starts the gateway on pool, a schema of its own or one another gateway
// of the test uses (a replica, e.g. with another config).
func startE2EOn(t testing.TB, pool *pgxpool.Pool, mods ...func(*config.Config)) *e2e {
	st := stacktest.Require(t)
	cfg, err := config.Load(st.GatewayConfig, nil)
	if err != nil {
		t.Fatalf("load %s: %v", st.GatewayConfig, err)
	}
	cl := &cfg.Clusters[0]
	cl.PollInterval = 500 * time.Millisecond
	cl.PauseGrace = time.Minute
	if d := st.Env["STACK_TRAINER_DIR"]; d != "" {
		cl.TrainerDir = d
	}
	for _, m := range mods {
		m(cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	a, err := assemble(ctx, cfg, pool, log)
	if err != nil {
		cancel()
		t.Fatalf("assemble: %v", err)
	}
	a.sub.Interval = 300 * time.Millisecond
	hooks := &submitHooks{before: map[string]func(){}, after: map[string]func(string){}}
	for name, c := range a.sub.Clusters {
		c.Slurm = hookedSlurm{Slurm: c.Slurm, h: hooks}
		a.sub.Clusters[name] = c
	}
	done := make(chan struct{})
	go func() { defer close(done); a.run(ctx) }()
	hs := httptest.NewServer(a.handler)
	t.Cleanup(func() {
		hs.Close()
		cancel()
		<-done
		a.close()
	})
	scfg, err := wiring.SSHConfig(cl)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := sshconn.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sp.Close() })
	sc, err := slurm.New(sp, wiring.SlurmOptions(cl))
	if err != nil {
		t.Fatal(err)
	}
	e := &e2e{t: t, url: hs.URL, token: dexToken(t, st, "alice"), slurm: sc, app: a, cfg: cfg, hooks: hooks}
	t.Cleanup(e.cancelAll)
	return e
}

// cancelAll cancels the test's unfinished jobs so they do not hold the shared GPUs.
func (e *e2e) cancelAll() {
	_, m := e.do("GET", "/api/jobs?limit=200&status=submitting,queued,running,pausing,paused", nil)
	jobs, _ := m["jobs"].([]any)
	for _, j := range jobs {
		id := j.(map[string]any)["id"].(string)
		if code, m := e.do("POST", "/api/training/cancel/"+id, nil); code != 200 {
			e.t.Logf("cleanup: cancel %s: %d %v", id, code, m)
		}
	}
}

// dexToken logs user in at the stack's Dex with the password grant, asking for the
// API's audience.
func dexToken(t testing.TB, st *stacktest.Stack, user string) string {
	form := url.Values{"grant_type": {"password"}, "username": {user + "@example.com"}, "password": {st.Password},
		"client_id": {st.OIDCClientID}, "scope": {"openid profile email groups audience:server:client_id:" + st.OIDCAudience}}
	resp, err := http.PostForm(st.OIDCIssuer+"/token", form)
	if err != nil {
		t.Fatalf("dex token: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.AccessToken == "" {
		t.Fatalf("dex token: status %d, %v", resp.StatusCode, err)
	}
	return out.AccessToken
}

func (e *e2e) do(method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	return e.doAs(e.token, method, path, body)
}

// doAs is do with another user's bearer token.
func (e *e2e) doAs(token, method, path string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func (e *e2e) spec(steps, gpus int) map[string]any {
	data := filepath.Join(repoRoot(), "examples", "data", "sft-train.jsonl")
	return map[string]any{"method": "sft", "model": "builtin:tiny", "dataset": map[string]any{"path": data},
		"hyperparameters": map[string]any{"learning_rate": 0.003, "max_steps": steps, "batch_size": 8, "max_length": 96, "warmup_steps": 5},
		"logging":         map[string]any{"log_every": 10, "eval_every": 1000, "save_every": 20, "progress_interval_seconds": 1},
		"resources":       map[string]any{"gpus": gpus, "cpus": 1, "memory_mb": 1024, "time_limit_minutes": 10}}
}

func (e *e2e) execute(steps, gpus int) string {
	e.t.Helper()
	code, m := e.do("POST", "/api/training/execute", e.spec(steps, gpus))
	if code != http.StatusAccepted {
		e.t.Fatalf("execute: %d %v", code, m)
	}
	return m["id"].(string)
}

// wait polls the job's status until cond holds, for at most d.
func (e *e2e) wait(id string, d time.Duration, what string, cond func(m map[string]any) bool) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(d)
	var m map[string]any
	for time.Now().Before(deadline) {
		var code int
		code, m = e.do("GET", "/api/training/status/"+id, nil)
		if code != 200 {
			e.t.Fatalf("status: %d %v", code, m)
		}
		if cond(m) {
			return m
		}
		if s := m["state"]; s == "failed" && !strings.Contains(what, "failed") {
			e.t.Fatalf("waiting for %s: job failed: %v", what, m["reason"])
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.t.Fatalf("job %s: no %s within %s; last: state=%v slurm=%v reason=%v progress=%v", id, what, d, m["state"], m["slurm_state"], m["reason"], m["progress"])
	return nil
}

func stateIs(states ...string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		for _, s := range states {
			if m["state"] == s {
				return true
			}
		}
		return false
	}
}

func step(m map[string]any) float64 {
	p, _ := m["progress"].(map[string]any)
	f, _ := p["step"].(float64)
	return f
}

func (e *e2e) slurmStatus(m map[string]any) slurm.Status {
	e.t.Helper()
	id := m["slurm_id"].(string)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := e.slurm.Poll(ctx, "alice", []string{id})
	if err != nil {
		e.t.Fatalf("poll slurm %s: %v", id, err)
	}
	return st[id]
}

func TestIntegrationEndToEndPauseResume(t *testing.T) {
	e := startE2E(t)
	id := e.execute(250, 1)
	m := e.wait(id, 3*time.Minute, "running", stateIs("running"))
	slurmID := m["slurm_id"].(string)
	m = e.wait(id, 60*time.Second, "progress", func(m map[string]any) bool { return step(m) >= 30 })
	t.Logf("running as Slurm job %s, step %v", slurmID, step(m))

	code, m := e.do("POST", "/api/training/pause/"+id, nil)
	if code != http.StatusAccepted || m["state"] != "pausing" {
		t.Fatalf("pause: %d %v", code, m)
	}
	m = e.wait(id, 60*time.Second, "paused", stateIs("paused"))
	pausedAt := step(m)
	st := e.slurmStatus(m)
	if st.State != slurm.StatePending || !(st.Held || st.RequeuedHeld) {
		t.Fatalf("paused job in Slurm: %+v, want PENDING and held", st)
	}
	if code, m2 := e.do("POST", "/api/training/pause/"+id, nil); code != 200 || m2["state"] != "paused" {
		t.Fatalf("second pause: %d %v", code, m2)
	}
	t.Logf("paused at step %v: %v", pausedAt, m["reason"])

	code, m = e.do("POST", "/api/training/resume/"+id, nil)
	if code != 200 || m["state"] != "queued" {
		t.Fatalf("resume: %d %v", code, m)
	}
	m = e.wait(id, 60*time.Second, "running again", stateIs("running", "succeeded"))
	if m["slurm_id"] != slurmID {
		t.Errorf("resumed as Slurm job %v, want the same id %s", m["slurm_id"], slurmID)
	}
	m = e.wait(id, 120*time.Second, "succeeded", stateIs("succeeded"))
	if step(m) != 250 || m["ended_at"] == nil {
		t.Fatalf("succeeded with step %v: %v", step(m), m)
	}
	if code, m := e.do("POST", "/api/training/resume/"+id, nil); code != 409 {
		t.Fatalf("resume succeeded job: %d %v", code, m)
	}
	// The trainer resumed from the checkpoint rather than starting over.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	files, err := e.slurm.ReadFiles(ctx, "alice", []string{m["job_dir"].(string) + "/progress.json"}, 1<<16)
	if err != nil || !files[0].Exists {
		t.Fatalf("read progress.json: %v", err)
	}
	var p struct {
		ResumedFrom  *string `json:"resumed_from"`
		RestartCount int     `json:"restart_count"`
	}
	_ = json.Unmarshal(files[0].Data, &p)
	if p.ResumedFrom == nil || p.RestartCount < 1 {
		t.Errorf("progress.json after resume: resumed_from=%v restart_count=%d", p.ResumedFrom, p.RestartCount)
	}
	code, sys := e.do("GET", "/api/system/status", nil)
	if code != 200 {
		t.Fatalf("system status: %d %v", code, sys)
	}
	t.Logf("system status: %v", sys["clusters"])
}

func TestIntegrationEndToEndCancelFromEachState(t *testing.T) {
	e := startE2E(t)
	cancelled := 0
	cancelJob := func(id, from string) {
		t.Helper()
		cancelled++
		code, m := e.do("POST", "/api/training/cancel/"+id, nil)
		if code != 200 || m["state"] != "cancelled" {
			t.Fatalf("cancel from %s: %d %v", from, code, m)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// slurmCancelled waits until the Slurm job of gateway job id is CANCELLED.
	slurmCancelled := func(id, from string) {
		t.Helper()
		_, m := e.do("GET", "/api/training/status/"+id, nil)
		deadline := time.Now().Add(30 * time.Second)
		for {
			st := e.slurmStatus(m)
			if st.State == slurm.StateCancelled {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Slurm job %v of job %s cancelled from %s is %s", m["slurm_id"], id, from, st.State)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}

	// submitting: the submitter is stopped right before its sbatch; the job is cancelled
	// then; sbatch runs, the submitter finds the job cancelled when it records the
	// result, and cancels the Slurm job it just created.
	reached, release := make(chan struct{}), make(chan struct{})
	sbatched := make(chan string, 1)
	e.hooks.onSubmit(func() { close(reached); <-release }, func(id string) { sbatched <- id })
	sid := e.execute(3000, 1)
	select {
	case <-reached:
	case <-time.After(60 * time.Second):
		t.Fatal("the submitter never reached sbatch")
	}
	if _, m := e.do("GET", "/api/training/status/"+sid, nil); m["state"] != "submitting" {
		t.Fatalf("job at the submitter's sbatch is %v, want submitting", m["state"])
	}
	cancelJob(sid, "submitting")
	close(release)
	var f *slurm.Found
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		var err error
		if f, err = e.slurm.FindByTag(ctx, "alice", sid, time.Now().Add(-10*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if f != nil && f.State == slurm.StateCancelled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job cancelled while submitting: its Slurm job is %+v, want one, cancelled", f)
		}
	}
	if id := <-sbatched; f.ID != id {
		t.Fatalf("found Slurm job %s by the tag, the submitter's sbatch made %s", f.ID, id)
	}

	// queued: the job is held in Slurm right after its sbatch, so it is still pending
	// (held) when it is cancelled. A job the scheduler started in the moment before the
	// hold is cancelled and replaced (at most three tries).
	var q string
	for try := 0; ; try++ {
		held := make(chan error, 1)
		e.hooks.onSubmit(nil, func(id string) { held <- e.slurm.Hold(ctx, "alice", id) })
		q = e.execute(3000, 1)
		herr := <-held
		m := e.wait(q, 60*time.Second, "queued", stateIs("queued", "running"))
		if st := e.slurmStatus(m); herr == nil && st.State == slurm.StatePending && st.Held {
			if m["state"] != "queued" {
				t.Fatalf("job held in Slurm is %v, want queued", m["state"])
			}
			break
		} else if try == 2 {
			t.Fatalf("could not hold a job before it started: hold %v, Slurm %+v", herr, st)
		}
		cancelJob(q, "running")
	}
	cancelJob(q, "queued")
	slurmCancelled(q, "queued")

	// running.
	r := e.execute(3000, 1)
	e.wait(r, 3*time.Minute, "running", stateIs("running"))
	cancelJob(r, "running")
	slurmCancelled(r, "running")

	// pausing and paused.
	p1 := e.execute(3000, 1)
	e.wait(p1, 3*time.Minute, "progress", func(m map[string]any) bool { return m["state"] == "running" && step(m) >= 1 })
	code, m := e.do("POST", "/api/training/pause/"+p1, nil)
	if code != http.StatusAccepted {
		t.Fatalf("pause: %d %v", code, m)
	}
	if _, m := e.do("GET", "/api/training/status/"+p1, nil); m["state"] != "pausing" {
		t.Fatalf("job is %v right after the pause request, want pausing", m["state"])
	}
	cancelJob(p1, "pausing")
	slurmCancelled(p1, "pausing")
	p2 := e.execute(3000, 1)
	e.wait(p2, 3*time.Minute, "progress", func(m map[string]any) bool { return m["state"] == "running" && step(m) >= 25 })
	if code, m := e.do("POST", "/api/training/pause/"+p2, nil); code != http.StatusAccepted {
		t.Fatalf("pause: %d %v", code, m)
	}
	m = e.wait(p2, 60*time.Second, "paused", stateIs("paused"))
	if st := e.slurmStatus(m); st.State != slurm.StatePending || !(st.Held || st.RequeuedHeld) {
		t.Fatalf("paused job in Slurm: %+v, want pending and held", st)
	}
	cancelJob(p2, "paused")
	slurmCancelled(p2, "paused")

	_, m = e.do("GET", "/api/jobs?status=cancelled", nil)
	if n := len(m["jobs"].([]any)); n != cancelled {
		t.Fatalf("%d cancelled jobs listed, want %d", n, cancelled)
	}
}

// TestIntegrationEndToEndTimeLimitResume: a job with a 2-minute limit and the stack's 60 s
// signal lead gets the checkpoint signal before its limit, checkpoints, is requeued by its
// batch script and continues from the checkpoint by itself, as the same Slurm job.
func TestIntegrationEndToEndTimeLimitResume(t *testing.T) {
	e := startE2E(t)
	spec := e.spec(1000000, 0) // far more steps than fit in two minutes
	spec["resources"].(map[string]any)["time_limit_minutes"] = 2
	code, m := e.do("POST", "/api/training/execute", spec)
	if code != http.StatusAccepted {
		t.Fatalf("execute: %d %v", code, m)
	}
	id := m["id"].(string)
	m = e.wait(id, 3*time.Minute, "running", stateIs("running"))
	slurmID := m["slurm_id"].(string)
	// slurmctld sends the signal 60-90 s before the limit (its 30 s check grid).
	m = e.wait(id, 4*time.Minute, "a restart after the time-limit checkpoint", func(m map[string]any) bool {
		rc, _ := m["restart_count"].(float64)
		return rc >= 1 && m["state"] == "running"
	})
	if m["slurm_id"] != slurmID {
		t.Fatalf("continued as Slurm job %v, want the same id %s", m["slurm_id"], slurmID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var p struct {
		ResumedFrom  *string `json:"resumed_from"`
		RestartCount int     `json:"restart_count"`
		Step         int     `json:"step"`
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		files, err := e.slurm.ReadFiles(ctx, "alice", []string{m["job_dir"].(string) + "/progress.json"}, 1<<16)
		if err != nil || !files[0].Exists {
			t.Fatalf("read progress.json: %v", err)
		}
		_ = json.Unmarshal(files[0].Data, &p)
		if p.RestartCount >= 1 && p.ResumedFrom != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if p.ResumedFrom == nil || p.RestartCount < 1 {
		t.Fatalf("after the requeue: resumed_from=%v restart_count=%d, want a resume from the checkpoint", p.ResumedFrom, p.RestartCount)
	}
	t.Logf("Slurm job %s requeued itself at its time limit and resumed from %s (step %d now)", slurmID, *p.ResumedFrom, p.Step)
	if code, m := e.do("POST", "/api/training/cancel/"+id, nil); code != 200 {
		t.Fatalf("cancel: %d %v", code, m)
	}
}

// TestIntegrationEndToEndPreemptionResume: a job holding all GPUs of partition gpu is
// preempted (PreemptMode=REQUEUE) by a job in the higher-priority partition urgent; it
// checkpoints on Slurm's SIGTERM, and once the urgent job is done it runs again as the
// same Slurm job and continues from its checkpoint.
func TestIntegrationEndToEndPreemptionResume(t *testing.T) {
	e := startE2E(t)
	low := e.spec(1000000, 4)
	low["resources"].(map[string]any)["partition"] = "gpu"
	code, m := e.do("POST", "/api/training/execute", low)
	if code != http.StatusAccepted {
		t.Fatalf("execute low: %d %v", code, m)
	}
	lowID := m["id"].(string)
	m = e.wait(lowID, 3*time.Minute, "running", stateIs("running"))
	slurmID := m["slurm_id"].(string)
	e.wait(lowID, time.Minute, "progress", func(m map[string]any) bool { return step(m) >= 10 })

	high := e.spec(30, 4)
	high["resources"].(map[string]any)["partition"] = "urgent"
	code, m = e.do("POST", "/api/training/execute", high)
	if code != http.StatusAccepted {
		t.Fatalf("execute high: %d %v", code, m)
	}
	highID := m["id"].(string)
	e.wait(highID, 2*time.Minute, "urgent job succeeded", stateIs("succeeded"))
	m = e.wait(lowID, 2*time.Minute, "the preempted job running again", func(m map[string]any) bool {
		rc, _ := m["restart_count"].(float64)
		return rc >= 1 && m["state"] == "running"
	})
	if m["slurm_id"] != slurmID {
		t.Fatalf("preempted job continued as Slurm job %v, want %s", m["slurm_id"], slurmID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var p struct {
		ResumedFrom *string `json:"resumed_from"`
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && p.ResumedFrom == nil; time.Sleep(500 * time.Millisecond) {
		files, err := e.slurm.ReadFiles(ctx, "alice", []string{m["job_dir"].(string) + "/progress.json"}, 1<<16)
		if err != nil || !files[0].Exists {
			t.Fatalf("read progress.json: %v", err)
		}
		_ = json.Unmarshal(files[0].Data, &p)
	}
	if p.ResumedFrom == nil {
		t.Fatal("the preempted job did not resume from a checkpoint")
	}
	t.Logf("Slurm job %s was preempted and resumed from %s", slurmID, *p.ResumedFrom)
	if code, m := e.do("POST", "/api/training/cancel/"+lowID, nil); code != 200 {
		t.Fatalf("cancel: %d %v", code, m)
	}
}

package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/stacktest"
)

// TestIntegrationQuotaAndUsage: on the real stack (Postgres, Slurm, the trainer), the
// queue cap and the GPU limit answer 429 with their details while a job waits and
// runs, GET /api/usage reports the job's GPUs and the GPU-hours of its run as Slurm
// runs it, and a finished job frees the GPUs but keeps its GPU-hours.
func TestIntegrationQuotaAndUsage(t *testing.T) {
	e := startE2E(t, func(c *config.Config) {
		c.Limits.MaxQueuedJobsPerUser = 1
		c.Limits.MaxGPUsPerUser = 2
		c.Limits.GPUHoursPerWindow = 1000
		c.Limits.Window = 24 * time.Hour
	})
	refused := func(code int, m map[string]any, limit string) map[string]any {
		t.Helper()
		er, _ := m["error"].(map[string]any)
		d, _ := er["details"].(map[string]any)
		if code != http.StatusTooManyRequests || er["code"] != "too_many" || d["limit"] != limit {
			t.Fatalf("want 429 too_many for %s, got %d %v", limit, code, m)
		}
		return d
	}
	a := e.execute(3000, 2)
	// a waits (submitting or queued): a second job passes the queue cap of 1.
	code, m := e.do("POST", "/api/training/execute", e.spec(20, 0))
	if d := refused(code, m, "queued_jobs"); d["max"] != 1.0 || d["used"] != 1.0 {
		t.Errorf("queue cap details: %v", d)
	}
	e.wait(a, 3*time.Minute, "running", stateIs("running"))
	// a holds 2 GPUs: one more passes the GPU limit; a CPU job does not.
	code, m = e.do("POST", "/api/training/execute", e.spec(20, 1))
	if d := refused(code, m, "gpus"); d["max"] != 2.0 || d["used"] != 2.0 || d["requested"] != 1.0 {
		t.Errorf("GPU limit details: %v", d)
	}
	time.Sleep(3 * time.Second)
	code, u := e.do("GET", "/api/usage", nil)
	lim, _ := u["limits"].(map[string]any)
	if code != 200 || u["user"] != "alice" || u["active_jobs"] != 1.0 || u["queued_jobs"] != 0.0 || u["gpus_in_use"] != 2.0 ||
		u["gpus_held"] != 2.0 || lim["max_gpus"] != 2.0 || lim["max_queued_jobs"] != 1.0 || lim["window_seconds"] != 86400.0 {
		t.Fatalf("usage while a runs: %d %v", code, u)
	}
	running, _ := u["gpu_hours"].(float64)
	// 2 GPUs for at least the 3 s slept, and not more than since a was created.
	if running < 2*3.0/3600 || running > 2*10.0/60 {
		t.Errorf("gpu_hours while a runs: %v", running)
	}
	if code, m := e.do("POST", "/api/training/cancel/"+a, nil); code != 200 {
		t.Fatalf("cancel a: %d %v", code, m)
	}
	e.wait(a, time.Minute, "cancelled", stateIs("cancelled"))
	code, u = e.do("GET", "/api/usage", nil)
	if after, _ := u["gpu_hours"].(float64); code != 200 || u["gpus_held"] != 0.0 || u["active_jobs"] != 0.0 || after < running {
		t.Fatalf("usage after the cancel: %d %v (gpu_hours while running %v)", code, u, running)
	}
	// The run is closed: its GPU-hours no longer grow.
	time.Sleep(1500 * time.Millisecond)
	_, u2 := e.do("GET", "/api/usage", nil)
	if u2["gpu_hours"] != u["gpu_hours"] {
		t.Errorf("gpu_hours grew after the job ended: %v -> %v", u["gpu_hours"], u2["gpu_hours"])
	}
	b := e.execute(20, 1)
	t.Logf("with a finished, a 1-GPU job is accepted: %s; usage %v", b, u2)
	// bob may not see alice's usage (alice's token back for the cleanup's cancels).
	alice := e.token
	e.token = dexToken(t, stacktest.Require(t), "bob")
	code, m = e.do("GET", "/api/usage?user=alice", nil)
	e.token = alice
	if code != http.StatusForbidden {
		t.Errorf("bob ?user=alice: %d %v", code, m)
	}
}

package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/slurm"
)

// guardStore is an in-memory Store with the Postgres store's transition guard: the
// transition table is checked and the job must still be in c.From (EConflict
// otherwise), and the pause time is set and cleared as the change says.
type guardStore struct {
	mu   sync.Mutex
	jobs map[string]job.Job
}

func newGuardStore(jobs ...job.Job) *guardStore {
	s := &guardStore{jobs: map[string]job.Job{}}
	for _, j := range jobs {
		if j.Cluster == "" {
			j.Cluster = "dev"
		}
		if j.OwnerSubject == "" {
			j.OwnerSubject = "sub-" + j.User
		}
		if j.JobDir == "" {
			j.JobDir = "/jobs/" + j.User + "/" + j.ID
		}
		s.jobs[j.ID] = j
	}
	return s
}

func (s *guardStore) job(id string) job.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jobs[id]
}

func (s *guardStore) Create(_ context.Context, j job.Job, _ int) (job.Job, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs[j.ID] = j
	return j, true, nil
}

func (s *guardStore) Get(_ context.Context, id string) (job.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return job.Job{}, job.Errorf(job.ENotFound, "job %s not found", id)
	}
	return j, nil
}

func (s *guardStore) List(context.Context, postgres.Filter) ([]job.Job, string, error) {
	return nil, "", nil
}

func (s *guardStore) Transition(_ context.Context, id string, c job.Change) (job.Job, error) {
	if err := job.Transition(c.From, c.To); err != nil {
		return job.Job{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return job.Job{}, job.Errorf(job.ENotFound, "job %s not found", id)
	}
	if j.State != c.From {
		return job.Job{}, job.Errorf(job.EConflict, "job is %s, not %s", j.State, c.From)
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
	now := time.Now()
	switch {
	case c.SetPause:
		j.PauseRequested = &now
	case c.ClearPause:
		j.PauseRequested = nil
	}
	s.jobs[id] = j
	return j, nil
}

func (s *guardStore) CountByState(context.Context) ([]postgres.StateCount, error) { return nil, nil }
func (s *guardStore) Runs(context.Context) (map[string]postgres.Run, error) {
	return map[string]postgres.Run{}, nil
}
func (s *guardStore) Ping(context.Context) error { return nil }

// TestGuardStoreTransitionGuard: the in-memory store refuses what the transition table
// refuses and what no longer holds, like the Postgres store (whose guard the
// integration test TestIntegrationStoreTransitionsAndEvents checks).
func TestGuardStoreTransitionGuard(t *testing.T) {
	st := newGuardStore(job.Job{ID: "j", User: "alice", State: job.Queued})
	ctx := context.Background()
	if _, err := st.Transition(ctx, "j", job.Change{From: job.Queued, To: job.Pausing}); job.ErrorCode(err) == "" {
		t.Fatal("queued -> pausing accepted: not in the transition table")
	}
	if _, err := st.Transition(ctx, "j", job.Change{From: job.Running, To: job.Succeeded}); job.ErrorCode(err) != job.EConflict {
		t.Fatalf("running -> succeeded of a queued job: %v, want EConflict", err)
	}
	if j, err := st.Transition(ctx, "j", job.Change{From: job.Queued, To: job.Running}); err != nil || j.State != job.Running {
		t.Fatalf("queued -> running: %+v %v", j, err)
	}
}

type controlEnv struct {
	t     *testing.T
	st    *guardStore
	fs    *fakeSlurm
	h     http.Handler
	kicks int
}

func newControlEnv(t *testing.T, jobs ...job.Job) *controlEnv {
	e := &controlEnv{t: t, st: newGuardStore(jobs...), fs: newFakeSlurm()}
	srv := &Server{Auth: tokenAuth{}, Store: e.st, MaxBody: 4096, Kick: func() { e.kicks++ },
		Clusters: []*Cluster{{Config: config.Cluster{Name: "dev", JobRoot: "/jobs", Partitions: []string{"gpu"}, DefaultPartition: "gpu"},
			Slurm: e.fs, Files: e.fs}}}
	e.h = srv.Handler()
	return e
}

// post sends POST path as alice and returns the status and the error code (if any).
func (e *controlEnv) post(path string) (int, string) {
	e.t.Helper()
	req := httptest.NewRequest("POST", path, nil)
	req.Header.Set("Authorization", "Bearer alice")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	return rec.Code, body.Error.Code
}

// TestPauseRevertsWhenTheTrainerCannotBeTold: a running job is marked pausing first;
// when control.json cannot be written or the signal cannot be sent, the pause is
// reverted (running again, no pause time) and the caller gets the error.
func TestPauseRevertsWhenTheTrainerCannotBeTold(t *testing.T) {
	for _, failing := range []string{"WriteFile", "Signal"} {
		t.Run(failing, func(t *testing.T) {
			e := newControlEnv(t, job.Job{ID: "r", User: "alice", State: job.Running, SlurmID: "41"})
			e.fs.fail[failing] = job.Errorf(job.EUnavailable, "ssh: connection reset")
			if code, ecode := e.post("/api/training/pause/r"); code != http.StatusServiceUnavailable || ecode == "" {
				t.Fatalf("pause = %d %q, want 503 with an error body", code, ecode)
			}
			j := e.st.job("r")
			if j.State != job.Running || j.PauseRequested != nil || j.Reason != "" {
				t.Fatalf("after a failed pause: %s pause=%v reason=%q; want running, no pause time, no reason", j.State, j.PauseRequested, j.Reason)
			}
		})
	}
	e := newControlEnv(t, job.Job{ID: "r", User: "alice", State: job.Running, SlurmID: "41"})
	if code, _ := e.post("/api/training/pause/r"); code != http.StatusAccepted {
		t.Fatalf("pause = %d, want 202", code)
	}
	if j := e.st.job("r"); j.State != job.Pausing || j.PauseRequested == nil {
		t.Fatalf("after pause: %s pause=%v", j.State, j.PauseRequested)
	}
	if calls := e.fs.Calls(); calls != "WriteFile alice /jobs/alice/r/control.json; Signal alice 41" {
		t.Fatalf("calls %q", calls)
	}
}

// TestResumeOfSlurmTerminalJobResubmits: a paused job whose Slurm job ended (cancelled
// after the pause grace, or purged) is resubmitted, never released.
func TestResumeOfSlurmTerminalJobResubmits(t *testing.T) {
	tests := []struct {
		name   string
		status *slurm.Status
		to     job.State
		calls  string
	}{
		{"held in Slurm", &slurm.Status{State: slurm.StatePending, Held: true}, job.Queued,
			"WriteFile alice /jobs/alice/p/control.json; Poll alice 42; Release alice 42"},
		{"cancelled in Slurm", &slurm.Status{State: slurm.StateCancelled}, job.Submitting,
			"WriteFile alice /jobs/alice/p/control.json; Poll alice 42"},
		{"completed in Slurm", &slurm.Status{State: slurm.StateCompleted}, job.Submitting,
			"WriteFile alice /jobs/alice/p/control.json; Poll alice 42"},
		{"purged", nil, job.Submitting, "WriteFile alice /jobs/alice/p/control.json; Poll alice 42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newControlEnv(t, job.Job{ID: "p", User: "alice", State: job.Paused, SlurmID: "42"})
			if tt.status != nil {
				e.fs.status["42"] = *tt.status
			}
			if code, _ := e.post("/api/training/resume/p"); code != http.StatusOK {
				t.Fatalf("resume = %d", code)
			}
			if j := e.st.job("p"); j.State != tt.to {
				t.Fatalf("resumed job is %s, want %s", j.State, tt.to)
			}
			if calls := e.fs.Calls(); calls != tt.calls {
				t.Fatalf("calls %q, want %q", calls, tt.calls)
			}
			if wantKick := tt.to == job.Submitting; (e.kicks == 1) != wantKick {
				t.Fatalf("%d kicks, want the submitter woken: %v", e.kicks, wantKick)
			}
		})
	}
}

// TestCancelOfResubmittingJob: a paused job being resubmitted keeps its old Slurm id
// until the submitter records the new one; cancelling it cancels it in the store only
// (the submitter cancels what its sbatch created), never the old id in Slurm.
func TestCancelOfResubmittingJob(t *testing.T) {
	e := newControlEnv(t, job.Job{ID: "s", User: "alice", State: job.Submitting, SlurmID: "43"})
	if code, _ := e.post("/api/training/cancel/s"); code != http.StatusOK {
		t.Fatalf("cancel = %d", code)
	}
	if j := e.st.job("s"); j.State != job.Cancelled || !strings.Contains(j.Reason, "cancelled by alice") {
		t.Fatalf("job %s %q", j.State, j.Reason)
	}
	if calls := e.fs.Calls(); calls != "" {
		t.Fatalf("cancel of a submitting job called Slurm: %q", calls)
	}
	// A queued job is cancelled in Slurm first.
	e = newControlEnv(t, job.Job{ID: "q", User: "alice", State: job.Queued, SlurmID: "44"})
	if code, _ := e.post("/api/training/cancel/q"); code != http.StatusOK || e.fs.Calls() != "Cancel alice 44" {
		t.Fatalf("cancel queued = %d, calls %q", code, e.fs.Calls())
	}
}

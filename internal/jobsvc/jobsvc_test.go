package jobsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/quota"
	"github.com/ftgate/ftgate/internal/slurm"
	"github.com/ftgate/ftgate/internal/submit"
)

// fakeStore keeps jobs in memory; onTransition runs before each transition (to move
// a job under the service's feet).
type fakeStore struct {
	mu           sync.Mutex
	jobs         map[string]job.Job
	log          []string
	onTransition func(s *fakeStore, id string)
	failRevert   bool
	createErr    error
}

func (s *fakeStore) Create(_ context.Context, j job.Job, _ quota.Limits) (job.Job, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.createErr != nil {
		return job.Job{}, false, s.createErr
	}
	s.jobs[j.ID] = j
	return j, true, nil
}

func (s *fakeStore) Get(_ context.Context, id string) (job.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return j, job.Errorf(job.ENotFound, "job %s not found", id)
	}
	return j, nil
}

func (s *fakeStore) Transition(_ context.Context, id string, c job.Change) (job.Job, error) {
	if s.onTransition != nil {
		s.onTransition(s, id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j.State != c.From {
		return job.Job{}, job.Errorf(job.EConflict, "job %s is %s, not %s", id, j.State, c.From)
	}
	if err := job.Transition(c.From, c.To); err != nil {
		return job.Job{}, err
	}
	if s.failRevert && c.From == job.Pausing && c.To == job.Running {
		return job.Job{}, errors.New("database gone")
	}
	j.State = c.To
	if c.Reason != "" {
		j.Reason = c.Reason
	}
	s.jobs[id] = j
	s.log = append(s.log, fmt.Sprintf("%s->%s", c.From, c.To))
	return j, nil
}

func (s *fakeStore) Usage(_ context.Context, user string, _ quota.Limits) (quota.Usage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := quota.Usage{At: time.Now()}
	for _, j := range s.jobs {
		if j.User == user {
			u.Count(j.State, j.Spec.Resources.TotalGPUs())
		}
	}
	return u, nil
}

func (s *fakeStore) ByIdempotencyKey(_ context.Context, owner, key string) (job.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.jobs {
		if j.OwnerSubject == owner && j.IdempotencyKey == key {
			return j, nil
		}
	}
	return job.Job{}, job.Errorf(job.ENotFound, "job not found")
}

func (s *fakeStore) SetPinned(context.Context, string, bool) error       { return nil }
func (s *fakeStore) MarkPurged(context.Context, string, time.Time) error { return nil }

// fakeSlurm records Slurm calls and file writes; fail makes a call fail.
type fakeSlurm struct {
	mu     sync.Mutex
	calls  []string
	fail   map[string]error
	status map[string]slurm.Status
}

func (f *fakeSlurm) rec(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	name, _, _ := strings.Cut(call, " ")
	return f.fail[name]
}

func (f *fakeSlurm) Cancel(_ context.Context, _, id string) error  { return f.rec("Cancel " + id) }
func (f *fakeSlurm) Signal(_ context.Context, _, id string) error  { return f.rec("Signal " + id) }
func (f *fakeSlurm) Hold(_ context.Context, _, id string) error    { return f.rec("Hold " + id) }
func (f *fakeSlurm) Release(_ context.Context, _, id string) error { return f.rec("Release " + id) }
func (f *fakeSlurm) Poll(_ context.Context, _ string, ids []string) (map[string]slurm.Status, error) {
	if err := f.rec("Poll " + strings.Join(ids, ",")); err != nil {
		return nil, err
	}
	out := map[string]slurm.Status{}
	for _, id := range ids {
		if st, ok := f.status[id]; ok {
			out[id] = st
		}
	}
	return out, nil
}
func (f *fakeSlurm) WriteFile(_ context.Context, _, path string, data []byte, _ os.FileMode) error {
	return f.rec("WriteFile " + path + " " + strings.TrimSpace(string(data)))
}

type fakePurger struct{ purged *bool }

func (p fakePurger) Purge(context.Context) error { *p.purged = true; return nil }

type env struct {
	svc    *Service
	store  *fakeStore
	slurm  *fakeSlurm
	kicks  int
	purged bool
}

// kicker counts kicks and has no free slot: jobs are created due.
type kicker struct{ n *int }

func (k kicker) Kick()                 { *k.n++ }
func (k kicker) Reserve() *submit.Slot { return nil }

func newEnv(t *testing.T, jobs ...job.Job) *env {
	t.Helper()
	e := &env{store: &fakeStore{jobs: map[string]job.Job{}}, slurm: &fakeSlurm{fail: map[string]error{}, status: map[string]slurm.Status{}}}
	for _, j := range jobs {
		j.OwnerSubject, j.User, j.Cluster, j.JobDir = "sub-alice", "alice", "dev", "/jobs/alice/"+j.ID
		e.store.jobs[j.ID] = j
	}
	e.svc = &Service{Store: e.store, Log: slog.New(slog.DiscardHandler), Submitter: kicker{&e.kicks},
		Cluster: func(name string) (*Cluster, error) {
			if name != "dev" {
				return nil, job.Errorf(job.EUnavailable, "cluster %s is not configured on this gateway", name)
			}
			return &Cluster{Slurm: e.slurm, Files: e.slurm, Dir: func(job.Job) (Purger, error) { return fakePurger{&e.purged}, nil }}, nil
		}}
	return e
}

func (e *env) job(t *testing.T, id string) job.Job {
	t.Helper()
	j, err := e.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func (e *env) calls() string { return strings.Join(e.slurm.calls, "; ") }

func TestPause(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		state    job.State
		fail     string // Slurm or file call that fails
		revertKO bool
		want     job.State // stored state afterwards
		pending  bool
		code     string
		calls    string
	}{
		{name: "queued is held", state: job.Queued, want: job.Paused, calls: "Hold 7"},
		{name: "running checkpoints", state: job.Running, want: job.Pausing, pending: true,
			calls: `WriteFile /jobs/alice/j/control.json {"action":"pause"}; Signal 7`},
		{name: "control file fails: pausing reverted", state: job.Running, fail: "WriteFile", want: job.Running, code: job.EUnavailable,
			calls: `WriteFile /jobs/alice/j/control.json {"action":"pause"}`},
		{name: "signal fails: pausing reverted", state: job.Running, fail: "Signal", want: job.Running, code: job.EUnavailable,
			calls: `WriteFile /jobs/alice/j/control.json {"action":"pause"}; Signal 7`},
		{name: "revert fails too: the Slurm error is answered", state: job.Running, fail: "Signal", revertKO: true, want: job.Pausing, code: job.EUnavailable,
			calls: `WriteFile /jobs/alice/j/control.json {"action":"pause"}; Signal 7`},
		{name: "hold fails: stays queued", state: job.Queued, fail: "Hold", want: job.Queued, code: job.EUnavailable, calls: "Hold 7"},
		{name: "paused already", state: job.Paused, want: job.Paused},
		{name: "pausing already", state: job.Pausing, want: job.Pausing},
		{name: "submitting", state: job.Submitting, want: job.Submitting, code: job.EConflict},
		{name: "finished", state: job.Succeeded, want: job.Succeeded, code: job.EConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, job.Job{ID: "j", State: tt.state, SlurmID: "7"})
			e.store.failRevert = tt.revertKO
			if tt.fail != "" {
				e.slurm.fail[tt.fail] = job.Errorf(job.EUnavailable, "%s failed", tt.fail)
			}
			_, pending, err := e.svc.Pause(context.Background(), e.job(t, "j"), "alice")
			if job.ErrorCode(err) != tt.code && !(tt.code == "" && err == nil) {
				t.Fatalf("err %v, want code %q", err, tt.code)
			}
			if pending != tt.pending {
				t.Errorf("pending %v, want %v", pending, tt.pending)
			}
			if got := e.job(t, "j").State; got != tt.want {
				t.Errorf("state %s, want %s (transitions %v)", got, tt.want, e.store.log)
			}
			if got := e.calls(); got != tt.calls {
				t.Errorf("calls %q, want %q", got, tt.calls)
			}
		})
	}
}

func TestResume(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		state      job.State
		slurmState slurm.State // "" : Slurm does not know the job
		others     []job.State // alice's other jobs
		max        int
		maxQueued  int
		want       job.State
		code       string
		calls      string
		kicks      int
	}{
		{name: "held job is released", state: job.Paused, slurmState: slurm.StatePending, want: job.Queued,
			calls: `WriteFile /jobs/alice/j/control.json {"action":"run"}; Poll 7; Release 7`},
		{name: "Slurm-terminal job is resubmitted", state: job.Paused, slurmState: slurm.StateCompleted, want: job.Submitting, kicks: 1,
			calls: `WriteFile /jobs/alice/j/control.json {"action":"run"}; Poll 7`},
		{name: "job Slurm forgot is resubmitted", state: job.Paused, want: job.Submitting, kicks: 1,
			calls: `WriteFile /jobs/alice/j/control.json {"action":"run"}; Poll 7`},
		{name: "at the quota: resumes (the paused job holds its place)", state: job.Paused, slurmState: slurm.StatePending,
			others: []job.State{job.Running}, max: 2, want: job.Queued,
			calls: `WriteFile /jobs/alice/j/control.json {"action":"run"}; Poll 7; Release 7`},
		{name: "over the quota: refused", state: job.Paused, slurmState: slurm.StatePending,
			others: []job.State{job.Running, job.Paused, job.Succeeded}, max: 2, want: job.Paused, code: job.ETooMany},
		{name: "queue cap: refused (the resumed job would wait again)", state: job.Paused, slurmState: slurm.StatePending,
			others: []job.State{job.Queued, job.Submitting}, maxQueued: 2, want: job.Paused, code: job.ETooMany},
		{name: "under the queue cap: resumes", state: job.Paused, slurmState: slurm.StatePending,
			others: []job.State{job.Queued, job.Running}, maxQueued: 2, want: job.Queued,
			calls: `WriteFile /jobs/alice/j/control.json {"action":"run"}; Poll 7; Release 7`},
		{name: "pausing", state: job.Pausing, want: job.Pausing, code: job.EConflict},
		{name: "running", state: job.Running, want: job.Running, code: job.EConflict},
		{name: "finished", state: job.Failed, want: job.Failed, code: job.EConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			jobs := []job.Job{{ID: "j", State: tt.state, SlurmID: "7"}}
			for i, st := range tt.others {
				jobs = append(jobs, job.Job{ID: fmt.Sprintf("o%d", i), State: st})
			}
			e := newEnv(t, jobs...)
			e.svc.Limits = func(string, []string) quota.Limits { return quota.Limits{MaxActive: tt.max, MaxQueued: tt.maxQueued} }
			if tt.slurmState != "" {
				e.slurm.status["7"] = slurm.Status{State: tt.slurmState}
			}
			_, err := e.svc.Resume(context.Background(), e.job(t, "j"), "alice")
			if job.ErrorCode(err) != tt.code && !(tt.code == "" && err == nil) {
				t.Fatalf("err %v, want code %q", err, tt.code)
			}
			if got := e.job(t, "j").State; got != tt.want {
				t.Errorf("state %s, want %s", got, tt.want)
			}
			if got := e.calls(); got != tt.calls {
				t.Errorf("calls %q, want %q", got, tt.calls)
			}
			if e.kicks != tt.kicks {
				t.Errorf("%d kicks, want %d", e.kicks, tt.kicks)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	t.Run("queued: scancel then cancelled", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, job.Job{ID: "j", State: job.Queued, SlurmID: "7"})
		out, err := e.svc.Cancel(context.Background(), e.job(t, "j"), "alice")
		if err != nil || out.State != job.Cancelled || e.calls() != "Cancel 7" || out.Reason != "cancelled by alice" {
			t.Fatalf("%v %s %q %q", err, out.State, e.calls(), out.Reason)
		}
	})
	t.Run("submitting: store only", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, job.Job{ID: "j", State: job.Submitting})
		out, err := e.svc.Cancel(context.Background(), e.job(t, "j"), "alice")
		if err != nil || out.State != job.Cancelled || e.calls() != "" {
			t.Fatalf("%v %s %q", err, out.State, e.calls())
		}
	})
	t.Run("resubmitting job gets its Slurm id meanwhile: cancelled in Slurm too", func(t *testing.T) {
		t.Parallel()
		// A resume found the Slurm job gone (paused -> submitting); while the cancel
		// runs, the submitter records the new sbatch (submitting -> queued, id 8).
		e := newEnv(t, job.Job{ID: "j", State: job.Submitting, SlurmID: "7"})
		first := true
		e.store.onTransition = func(s *fakeStore, id string) {
			if first {
				first = false
				s.mu.Lock()
				j := s.jobs[id]
				j.State, j.SlurmID = job.Queued, "8"
				s.jobs[id] = j
				s.mu.Unlock()
			}
		}
		out, err := e.svc.Cancel(context.Background(), e.job(t, "j"), "alice")
		if err != nil || out.State != job.Cancelled || e.calls() != "Cancel 8" {
			t.Fatalf("%v %s calls %q", err, out.State, e.calls())
		}
	})
	t.Run("keeps changing: conflict after 5 tries", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, job.Job{ID: "j", State: job.Queued, SlurmID: "7"})
		e.store.onTransition = func(s *fakeStore, id string) {
			s.mu.Lock()
			defer s.mu.Unlock()
			j := s.jobs[id]
			j.State = map[job.State]job.State{job.Queued: job.Running, job.Running: job.Queued}[j.State]
			s.jobs[id] = j
		}
		_, err := e.svc.Cancel(context.Background(), e.job(t, "j"), "alice")
		if job.ErrorCode(err) != job.EConflict || strings.Count(e.calls(), "Cancel 7") != 5 {
			t.Fatalf("%v calls %q", err, e.calls())
		}
	})
	t.Run("cancelled: as it is", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, job.Job{ID: "j", State: job.Cancelled})
		if out, err := e.svc.Cancel(context.Background(), e.job(t, "j"), "alice"); err != nil || out.State != job.Cancelled {
			t.Fatalf("%v %s", err, out.State)
		}
	})
	t.Run("succeeded: conflict", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, job.Job{ID: "j", State: job.Succeeded})
		if _, err := e.svc.Cancel(context.Background(), e.job(t, "j"), "alice"); job.ErrorCode(err) != job.EConflict {
			t.Fatalf("%v", err)
		}
	})
	t.Run("scancel fails: not cancelled", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, job.Job{ID: "j", State: job.Running, SlurmID: "7"})
		e.slurm.fail["Cancel"] = job.Errorf(job.EUnavailable, "ssh down")
		if _, err := e.svc.Cancel(context.Background(), e.job(t, "j"), "alice"); job.ErrorCode(err) != job.EUnavailable || e.job(t, "j").State != job.Running {
			t.Fatalf("%v %s", err, e.job(t, "j").State)
		}
	})
	t.Run("unknown cluster", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, job.Job{ID: "j", State: job.Running, SlurmID: "7"})
		j := e.job(t, "j")
		j.Cluster = "gone"
		if _, err := e.svc.Cancel(context.Background(), j, "alice"); job.ErrorCode(err) != job.EUnavailable {
			t.Fatalf("%v", err)
		}
	})
}

func TestCreateKicksOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, created, err := e.svc.Create(context.Background(), job.Job{ID: "n", State: job.Submitting}); err != nil || !created || e.kicks != 1 {
		t.Fatalf("%v created=%v kicks=%d", err, created, e.kicks)
	}
}

// subStore is the fake store as the real submitter sees it: nothing is ever due.
type subStore struct{ *fakeStore }

func (subStore) ClaimSubmissions(context.Context, int, time.Duration) ([]job.Job, error) {
	return nil, nil
}
func (subStore) RetrySubmission(context.Context, string, time.Time, string) error { return nil }

// TestCreateHandsJobToAFreeSlot: with a free slot in this replica's submitter the job
// is created claimed (attempt 1, leased) and submitted from the slot (no claim pass
// could: this store has nothing due); a failed create gives the slot back.
func TestCreateHandsJobToAFreeSlot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// The submitter knows no cluster, so its attempt fails the job: proof that the
	// slot ran it (nothing else would, as no claim pass finds it due).
	sub := &submit.Submitter{Store: subStore{e.store}, Clusters: map[string]submit.Cluster{}, Batch: 1, Interval: time.Hour,
		Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go sub.Run(ctx)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if sl := sub.Reserve(); sl != nil {
			sl.Release()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the submitter never ran")
		}
	}
	e.svc.Submitter = sub
	e.store.createErr = errors.New("database gone")
	if _, _, err := e.svc.Create(context.Background(), job.Job{ID: "x", State: job.Submitting}); err == nil {
		t.Fatal("create with a failing store succeeded")
	}
	e.store.createErr = nil
	out, created, err := e.svc.Create(context.Background(), job.Job{ID: "n", Cluster: "nowhere", State: job.Submitting})
	if err != nil || !created {
		t.Fatalf("create: %v created=%v", err, created) // Batch 1: the failed create must have released its slot
	}
	if out.SubmitAttempts != 1 || time.Until(out.NextAttempt) < time.Minute {
		t.Errorf("created job: attempts %d, next attempt in %v; want 1 and the lease", out.SubmitAttempts, time.Until(out.NextAttempt))
	}
	for deadline := time.Now().Add(5 * time.Second); e.job(t, "n").State != job.Failed; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("job is %s: the slot never submitted it", e.job(t, "n").State)
		}
	}
}

func TestPurge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, job.Job{ID: "live", State: job.Running}, job.Job{ID: "done", State: job.Failed})
	if err := e.svc.Purge(context.Background(), e.job(t, "live"), "alice"); job.ErrorCode(err) != job.EConflict || e.purged {
		t.Fatalf("purge of a running job: %v purged=%v", err, e.purged)
	}
	if err := e.svc.Purge(context.Background(), e.job(t, "done"), "alice"); err != nil || !e.purged {
		t.Fatalf("purge of a failed job: %v purged=%v", err, e.purged)
	}
}

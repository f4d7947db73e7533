package reconcile

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/slurm"
)

// memStore is an in-memory Store that enforces the transition table.
type memStore struct {
	mu     sync.Mutex
	jobs   map[string]*job.Job
	runs   int
	writes int       // updates Apply received, over all passes
	now    time.Time // the time Apply records as LastSeen
}

func (m *memStore) Live(ctx context.Context, cluster string) ([]job.Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []job.Job
	for _, j := range m.jobs {
		if j.Cluster == cluster && !j.State.Terminal() {
			out = append(out, *j)
		}
	}
	return out, nil
}

func (m *memStore) Apply(ctx context.Context, ups []postgres.Update) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var conflicts []string
	m.writes += len(ups)
	for _, u := range ups {
		j := m.jobs[u.ID]
		if u.Seen {
			at := m.now
			j.LastSeen = &at
		}
		if u.SlurmState != "" {
			j.SlurmState = u.SlurmState
		}
		if u.RestartCount != nil {
			j.RestartCount = *u.RestartCount
		}
		if u.Progress != nil {
			j.Progress = *u.Progress
		}
		if c := u.Change; c != nil {
			if j.State != c.From || job.Transition(c.From, c.To) != nil {
				conflicts = append(conflicts, u.ID)
				continue
			}
			j.State = c.To
			if c.Reason != "" {
				j.Reason = c.Reason
			}
			if c.RestartCount != nil {
				j.RestartCount = *c.RestartCount
			}
		}
	}
	return conflicts, nil
}

func (m *memStore) RecordRun(ctx context.Context, cluster string, at time.Time, d time.Duration, err error) error {
	m.runs++
	return nil
}

// fakeSlurm answers Poll and ReadFiles from maps and records actions.
type fakeSlurm struct {
	status    map[string]slurm.Status
	files     map[string]string
	actions   []string
	pollErr   error
	actErr    error
	polls     int
	pollUsers []string
	readRuns  int
}

func (f *fakeSlurm) PollAs(ctx context.Context, user string, owners, ids []string) (map[string]slurm.Status, error) {
	f.polls++
	if f.pollErr != nil {
		return nil, f.pollErr
	}
	f.pollUsers = append(f.pollUsers, user)
	out := map[string]slurm.Status{}
	for _, id := range ids {
		if s, ok := f.status[id]; ok {
			if s.User == "" {
				s.User = "alice" // the owner of setup's jobs
			}
			out[id] = s
		}
	}
	return out, nil
}

func (f *fakeSlurm) ReadFiles(ctx context.Context, user string, paths []string, maxEach int64) ([]slurm.File, error) {
	f.readRuns++
	out := make([]slurm.File, len(paths))
	for i, p := range paths {
		d, ok := f.files[p]
		out[i] = slurm.File{Path: p, Exists: ok, Data: []byte(d)}
	}
	return out, nil
}

func (f *fakeSlurm) act(name, id string) error {
	f.actions = append(f.actions, name+" "+id)
	return f.actErr
}
func (f *fakeSlurm) RequeueHold(ctx context.Context, user, id string) error {
	return f.act("requeuehold", id)
}
func (f *fakeSlurm) Hold(ctx context.Context, user, id string) error    { return f.act("hold", id) }
func (f *fakeSlurm) Cancel(ctx context.Context, user, id string) error  { return f.act("cancel", id) }
func (f *fakeSlurm) Requeue(ctx context.Context, user, id string) error { return f.act("requeue", id) }

func setup() (*Reconciler, *memStore, *fakeSlurm) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	st := &memStore{jobs: map[string]*job.Job{}}
	fs := &fakeSlurm{status: map[string]slurm.Status{}, files: map[string]string{}}
	r := &Reconciler{Store: st, Now: func() time.Time { return now },
		Clusters: []Cluster{{Name: "dev", Slurm: fs, Policy: Policy{RestartBudget: 1, PauseGrace: time.Minute, LostGrace: time.Minute}}}}
	add := func(id string, s job.State, slurmID string) {
		st.jobs[id] = &job.Job{ID: id, Cluster: "dev", User: "alice", State: s, SlurmID: slurmID, JobDir: "/jobs/alice/" + id, UpdatedAt: now.Add(-time.Hour)}
	}
	add("a", job.Queued, "1")
	add("b", job.Running, "2")
	add("c", job.Pausing, "3")
	add("d", job.Running, "4")
	add("e", job.Submitting, "")
	add("f", job.Running, "6")
	add("g", job.Paused, "7")
	st.jobs["c"].PauseRequested = &now
	return r, st, fs
}

func TestRunOnce(t *testing.T) {
	r, st, fs := setup()
	fs.status["1"] = slurm.Status{State: slurm.StateRunning}
	fs.status["2"] = slurm.Status{State: slurm.StateRunning, Restarts: 2} // requeued twice between passes
	fs.status["3"] = slurm.Status{State: slurm.StateCompleted}
	fs.status["4"] = slurm.Status{State: slurm.StateTimeout}
	// "6" is gone from squeue and sacct for longer than the grace: lost.
	fs.status["7"] = slurm.Status{State: slurm.StatePending, RequeuedHeld: true}
	fs.files["/jobs/alice/b/progress.json"] = `{"phase":"training","step":40,"total_steps":100,"loss":1.5,"updated_at":"2026-01-01T11:59:59Z"}`
	fs.files["/jobs/alice/c/progress.json"] = `{"phase":"paused","step":60,"latest_checkpoint":"checkpoints/step-60"}`
	if err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string]job.State{"a": job.Running, "b": job.Running, "c": job.Paused, "d": job.Queued, "e": job.Submitting, "f": job.Failed, "g": job.Paused}
	for id, s := range want {
		if st.jobs[id].State != s {
			t.Errorf("job %s is %s (%s), want %s", id, st.jobs[id].State, st.jobs[id].Reason, s)
		}
	}
	if got := strings.Join(fs.actions, ","); got != "requeuehold 3,requeue 4" && got != "requeue 4,requeuehold 3" {
		t.Errorf("actions %q", got)
	}
	if fs.polls != 1 || fs.readRuns != 1 {
		t.Errorf("%d polls and %d progress reads in one pass, want 1 and 1", fs.polls, fs.readRuns)
	}
	if st.jobs["b"].RestartCount != 2 {
		t.Errorf("restart count of b: %d, want 2 from squeue", st.jobs["b"].RestartCount)
	}
	if p := st.jobs["b"].Progress; p.Step != 40 || *p.Loss != 1.5 {
		t.Errorf("progress of b: %+v", p)
	}
	if st.jobs["d"].RestartCount != 1 || !strings.Contains(st.jobs["d"].Reason, "TIMEOUT") {
		t.Errorf("d: restarts %d reason %q", st.jobs["d"].RestartCount, st.jobs["d"].Reason)
	}
	if !strings.Contains(st.jobs["f"].Reason, "lost") {
		t.Errorf("f reason %q", st.jobs["f"].Reason)
	}
	// Second pass: d is pending after its requeue; TIMEOUT again now exhausts the budget.
	fs.status["4"] = slurm.Status{State: slurm.StateTimeout, Restarts: 1}
	st.jobs["d"].State = job.Running
	fs.actions = nil
	if err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st.jobs["d"].State != job.Failed || !strings.Contains(st.jobs["d"].Reason, "budget 1 exhausted") || len(fs.actions) != 0 {
		t.Errorf("d after budget: %s %q actions %v", st.jobs["d"].State, st.jobs["d"].Reason, fs.actions)
	}
}

func TestRunOnceSlurmErrors(t *testing.T) {
	r, st, fs := setup()
	fs.pollErr = fmt.Errorf("slurm controller unreachable")
	if err := r.RunOnce(context.Background()); err == nil || !strings.Contains(err.Error(), "cluster dev") {
		t.Fatalf("RunOnce with Slurm down: %v", err)
	}
	for id, j := range st.jobs {
		if j.State.Terminal() {
			t.Errorf("job %s became %s while Slurm was unreachable", id, j.State)
		}
	}
	if st.runs != 1 {
		t.Errorf("pass not recorded: %d", st.runs)
	}
	// A failing action leaves the job for the next pass.
	fs.pollErr = nil
	fs.actErr = fmt.Errorf("ssh: connection reset")
	fs.status["3"] = slurm.Status{State: slurm.StateCompleted}
	fs.files["/jobs/alice/c/progress.json"] = `{"phase":"paused","step":60,"latest_checkpoint":"checkpoints/step-60"}`
	if err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st.jobs["c"].State != job.Pausing {
		t.Errorf("c is %s after a failed requeuehold, want pausing", st.jobs["c"].State)
	}
	// The job purged meanwhile: requeuehold's ErrInvalidJob still ends the pause.
	fs.actErr = &job.Error{Code: job.ENotFound, Message: "gone", Err: slurm.ErrInvalidJob}
	if err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st.jobs["c"].State != job.Paused {
		t.Errorf("c is %s after requeuehold of a purged job, want paused", st.jobs["c"].State)
	}
}

type fakeLease struct{ checks, released int }

func (l *fakeLease) Check(ctx context.Context) error {
	l.checks++
	if l.checks > 2 {
		return fmt.Errorf("connection lost")
	}
	return nil
}
func (l *fakeLease) Release() { l.released++ }

func TestRunLeadsAndStopsOnLostLease(t *testing.T) {
	r, st, _ := setup()
	r.Clusters[0].Interval = time.Millisecond
	lease := &fakeLease{}
	tries := 0
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r.Lead = func(ctx context.Context) (Lease, error) {
		tries++
		switch tries {
		case 1:
			return nil, nil // another replica leads
		case 2:
			return lease, nil
		}
		cancel()
		return nil, nil
	}
	r.Run(ctx)
	if lease.released != 1 || st.runs != 2 || tries < 3 {
		t.Fatalf("released %d, passes %d, tries %d; want 1, 2, >=3", lease.released, st.runs, tries)
	}
}

// TestRunOnceReadsGPUSample: gpu.json is read in the same batched read as progress.json
// and its GPUs travel with the progress; a new GPU sample alone is new progress.
func TestRunOnceReadsGPUSample(t *testing.T) {
	r, st, fs := setup()
	fs.status["2"] = slurm.Status{State: slurm.StateRunning}
	fs.files["/jobs/alice/b/progress.json"] = `{"phase":"training","step":40,"total_steps":100,"learning_rate":0.0005,"updated_at":"2026-01-01T11:59:59Z"}`
	fs.files["/jobs/alice/b/gpu.json"] = `{"schema_version":1,"time":"2026-01-01T11:59:58Z","gpus":[{"index":0,"name":"H200","utilization_percent":87,"memory_used_mb":30000,"memory_total_mb":143771,"power_watts":410.5,"temperature_c":61}]}`
	if err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := st.jobs["b"].Progress
	if p.LearningRate == nil || *p.LearningRate != 0.0005 {
		t.Errorf("learning rate %v, want 0.0005", p.LearningRate)
	}
	want := []job.GPU{{Index: 0, Name: "H200", UtilizationPercent: 87, MemoryUsedMB: 30000, MemoryTotalMB: 143771, PowerWatts: 410.5, TemperatureC: 61}}
	if !slices.Equal(p.GPUs, want) {
		t.Fatalf("GPUs %+v, want %+v", p.GPUs, want)
	}
	if fs.readRuns != 1 {
		t.Errorf("%d reads, want one batched read for progress and GPU files", fs.readRuns)
	}
	if !progressChanged(p, job.Progress{Phase: p.Phase, Step: p.Step, UpdatedAt: p.UpdatedAt, GPUs: []job.GPU{{Index: 0, UtilizationPercent: 10}}}) {
		t.Error("a new GPU sample is not reported as changed progress")
	}
}

func TestParseGPUs(t *testing.T) {
	for in, want := range map[string]int{
		`{"gpus":[{"index":0},{"index":1}]}`:      2,
		`{"gpus":[],"error":"NVML: device lost"}`: 0,
		`{"gpus":[{"index":0}`:                    0, // partial
		`not json`:                                0,
	} {
		if got := len(ParseGPUs([]byte(in))); got != want {
			t.Errorf("ParseGPUs(%s): %d GPUs, want %d", in, got, want)
		}
	}
}

func TestSeenDue(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	pol := Policy{LostGrace: 80 * time.Second} // thresholds between 10 s and 20 s
	at := func(d time.Duration) *time.Time { x := now.Add(-d); return &x }
	for _, c := range []struct {
		name string
		seen *time.Time
		pol  Policy
		want bool
	}{
		{"never seen", nil, pol, true},
		{"no lost grace", at(time.Second), Policy{}, true},
		{"seen a second ago", at(time.Second), pol, false},
		{"seen just under an eighth ago", at(10*time.Second - time.Nanosecond), pol, false},
		{"seen a quarter ago", at(20 * time.Second), pol, true},
		{"seen a lost grace ago", at(80 * time.Second), pol, true},
	} {
		for _, id := range []string{"a", "job-1", "9f0c"} {
			if got := seenDue(job.Job{ID: id, LastSeen: c.seen}, now, c.pol); got != c.want {
				t.Errorf("%s (job %s): seenDue = %v, want %v", c.name, id, got, c.want)
			}
		}
	}
	// The thresholds differ between jobs: of 200 jobs seen 15 s ago, some are due, some not.
	due := 0
	for i := range 200 {
		if seenDue(job.Job{ID: fmt.Sprint("job-", i), LastSeen: at(15 * time.Second)}, now, pol) {
			due++
		}
	}
	if due == 0 || due == 200 {
		t.Errorf("of 200 jobs seen 15 s ago %d are due: the thresholds are not spread", due)
	}
}

// TestRunOnceWritesOnlyChanges: a second pass over held jobs that Slurm reports
// unchanged writes nothing; a state change and a due LastSeen refresh are written.
func TestRunOnceWritesOnlyChanges(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	st := &memStore{jobs: map[string]*job.Job{}, now: now}
	fs := &fakeSlurm{status: map[string]slurm.Status{}, files: map[string]string{}}
	clock := now
	r := &Reconciler{Store: st, Now: func() time.Time { return clock },
		Clusters: []Cluster{{Name: "dev", Slurm: fs, Policy: Policy{RestartBudget: 1, PauseGrace: time.Minute, LostGrace: time.Minute}}}}
	for i := range 50 {
		id := fmt.Sprint("q", i)
		st.jobs[id] = &job.Job{ID: id, Cluster: "dev", User: "alice", State: job.Queued, SlurmID: fmt.Sprint(100 + i), JobDir: "/jobs/alice/" + id}
		fs.status[fmt.Sprint(100+i)] = slurm.Status{State: slurm.StatePending, Held: true}
	}
	pass := func() int {
		before := st.writes
		if err := r.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		return st.writes - before
	}
	if n := pass(); n != 50 {
		t.Fatalf("first pass wrote %d updates, want 50 (state and first sighting)", n)
	}
	clock = now.Add(time.Second)
	if n := pass(); n != 0 {
		t.Fatalf("an unchanged pass a second later wrote %d updates, want 0", n)
	}
	fs.status["101"] = slurm.Status{State: slurm.StateCancelled}
	if n := pass(); n != 1 {
		t.Fatalf("a pass with one job cancelled in Slurm wrote %d updates, want 1", n)
	}
	if j := st.jobs["q1"]; j.State != job.Cancelled || j.SlurmState != string(slurm.StateCancelled) {
		t.Fatalf("cancelled in Slurm: state %s, slurm state %s", j.State, j.SlurmState)
	}
	clock = now.Add(time.Minute) // past every job's refresh threshold (at most LostGrace/4)
	st.now = clock
	if n := pass(); n != 49 {
		t.Fatalf("a pass a minute later wrote %d updates, want the 49 live jobs' LastSeen", n)
	}
	for _, j := range st.jobs {
		if j.State == job.Queued && (j.LastSeen == nil || !j.LastSeen.Equal(clock)) {
			t.Fatalf("job %s: LastSeen %v after the refresh, want %v", j.ID, j.LastSeen, clock)
		}
	}
}

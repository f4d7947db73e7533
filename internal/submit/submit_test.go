package submit

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/slurm"
)

type memStore struct {
	mu      sync.Mutex
	jobs    map[string]*job.Job
	retries map[string]string
	// transitionErr, when set, fails Transition (the database briefly down).
	transitionErr error
	claimed       []string // ids ClaimSubmissions returned
}

func (m *memStore) ClaimSubmissions(ctx context.Context, limit int, lease time.Duration) ([]job.Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []job.Job
	for _, j := range m.jobs {
		if j.State == job.Submitting && !j.NextAttempt.After(time.Now()) {
			j.SubmitAttempts++
			j.NextAttempt = time.Now().Add(lease)
			out = append(out, *j)
			m.claimed = append(m.claimed, j.ID)
		}
	}
	return out, nil
}

func (m *memStore) RetrySubmission(ctx context.Context, id string, at time.Time, reason string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs[id].NextAttempt = at
	m.retries[id] = reason
	return nil
}

func (m *memStore) Transition(ctx context.Context, id string, c job.Change) (job.Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.transitionErr != nil {
		return job.Job{}, m.transitionErr
	}
	j := m.jobs[id]
	if j.State != c.From {
		return job.Job{}, job.Errorf(job.EConflict, "job is %s", j.State)
	}
	if err := job.Transition(c.From, c.To); err != nil {
		return job.Job{}, err
	}
	j.State = c.To
	if c.SlurmID != "" {
		j.SlurmID = c.SlurmID
	}
	if c.Reason != "" {
		j.Reason = c.Reason
	}
	return *j, nil
}

type fakeSlurm struct {
	mu        sync.Mutex
	calls     []string
	files     map[string]string
	submitErr error
	found     *slurm.Found
	findErr   error
	onSubmit  func()
	bigScript bool // Render returns a script too large for one command line
	// block, when it has the job's id, holds SubmitInDir until the channel is closed;
	// entered receives the id first.
	block   map[string]chan struct{}
	entered chan string
}

func (f *fakeSlurm) rec(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakeSlurm) Render(req slurm.Request) (string, error) {
	s := "#!/bin/bash\n#SBATCH --job-name=" + slurm.Tag(req.JobID) + "\n"
	if f.bigScript {
		s += strings.Repeat("#\n", slurm.MaxInlineScript)
	}
	return s, nil
}
func (f *fakeSlurm) SubmitInDir(ctx context.Context, user string, req slurm.Request, dir string, jobJSON []byte) (slurm.Submitted, error) {
	f.rec("submit-in-dir " + user + " " + req.Partition + " " + dir)
	f.mu.Lock()
	f.files[dir+"/job.json"] = string(jobJSON)
	wait := f.block[req.JobID]
	f.mu.Unlock()
	if wait != nil {
		f.entered <- req.JobID
		<-wait
	}
	if f.onSubmit != nil {
		f.onSubmit()
	}
	if f.submitErr != nil {
		return slurm.Submitted{}, f.submitErr
	}
	return slurm.Submitted{ID: "500"}, nil
}
func (f *fakeSlurm) Submit(ctx context.Context, user string, req slurm.Request) (slurm.Submitted, error) {
	f.rec("sbatch " + user + " " + req.Partition)
	if f.onSubmit != nil {
		f.onSubmit()
	}
	if f.submitErr != nil {
		return slurm.Submitted{}, f.submitErr
	}
	return slurm.Submitted{ID: "500"}, nil
}
func (f *fakeSlurm) FindByTag(ctx context.Context, user, jobID string, since time.Time) (*slurm.Found, error) {
	f.rec("find " + jobID)
	return f.found, f.findErr
}
func (f *fakeSlurm) Cancel(ctx context.Context, user, id string) error {
	f.rec("cancel " + id)
	return nil
}
func (f *fakeSlurm) MkdirAll(ctx context.Context, user, path string, perm os.FileMode) error {
	f.rec("mkdir " + path)
	return nil
}
func (f *fakeSlurm) WriteFile(ctx context.Context, user, path string, data []byte, perm os.FileMode) error {
	f.rec("write " + path)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[path] = string(data)
	return nil
}

func setup(j job.Job) (*Submitter, *memStore, *fakeSlurm) {
	st := &memStore{jobs: map[string]*job.Job{j.ID: &j}, retries: map[string]string{}}
	fs := &fakeSlurm{files: map[string]string{}}
	s := &Submitter{Store: st, Clusters: map[string]Cluster{"dev": {Slurm: fs, Files: fs}}, MaxAttempts: 3,
		Backoff: func(int) time.Duration { return -time.Second }}
	return s, st, fs
}

func newJob() job.Job {
	spec := job.Spec{Method: "sft", Model: job.BuiltinTiny, Dataset: job.Dataset{Path: "/d.jsonl"}, Resources: job.Resources{Partition: "gpu", GPUs: 1}}
	spec.Normalize()
	return job.Job{ID: "11111111-2222-4333-8444-555555555555", User: "alice", Cluster: "dev", State: job.Submitting, Spec: spec, JobDir: "/jobs/alice/11111111-2222-4333-8444-555555555555"}
}

func TestSubmitSuccess(t *testing.T) {
	s, st, fs := setup(newJob())
	if n, err := s.RunOnce(context.Background()); n != 1 || err != nil {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	j := st.jobs[newJob().ID]
	if j.State != job.Queued || j.SlurmID != "500" {
		t.Fatalf("job %s slurm %q", j.State, j.SlurmID)
	}
	dir := newJob().JobDir
	want := "submit-in-dir alice gpu " + dir
	if got := strings.Join(fs.calls, "; "); got != want {
		t.Fatalf("calls\n got %s\nwant %s", got, want)
	}
	if !strings.Contains(fs.files[dir+"/job.json"], `"method": "sft"`) {
		t.Fatalf("job.json: %s", fs.files[dir+"/job.json"])
	}
	if n, _ := s.RunOnce(context.Background()); n != 0 {
		t.Fatalf("second pass claimed %d jobs", n)
	}
}

func TestSubmitLargeScriptGoesOverSFTP(t *testing.T) {
	s, st, fs := setup(newJob())
	fs.bigScript = true
	if n, err := s.RunOnce(context.Background()); n != 1 || err != nil {
		t.Fatalf("RunOnce = %d, %v", n, err)
	}
	if j := st.jobs[newJob().ID]; j.State != job.Queued {
		t.Fatalf("job %s", j.State)
	}
	dir := newJob().JobDir
	want := "mkdir " + dir + "; write " + dir + "/job.json; write " + dir + "/job.sbatch; sbatch alice gpu"
	if got := strings.Join(fs.calls, "; "); got != want {
		t.Fatalf("calls\n got %s\nwant %s", got, want)
	}
}

func TestSubmitErrors(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		passes  int
		state   job.State
		reason  string
		retried bool
	}{
		{"user error fails at once", &job.Error{Code: job.EUnprocessable, Message: "sbatch: invalid partition specified: gpu", Err: slurm.ErrUnknownPartition}, 1, job.Failed, "submission refused: sbatch: invalid partition", false},
		{"controller down is retried", &job.Error{Code: job.EUnavailable, Message: "slurm controller unreachable", Err: slurm.ErrController}, 1, job.Submitting, "", true},
		{"retries end in failure", &job.Error{Code: job.EUnavailable, Message: "slurm controller unreachable", Err: slurm.ErrController}, 3, job.Failed, "submission failed after 3 attempts", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, st, fs := setup(newJob())
			fs.submitErr = tt.err
			for range tt.passes {
				if _, err := s.RunOnce(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			j := st.jobs[newJob().ID]
			if j.State != tt.state || !strings.Contains(j.Reason, tt.reason) {
				t.Fatalf("job %s %q, want %s %q", j.State, j.Reason, tt.state, tt.reason)
			}
			if _, ok := st.retries[j.ID]; ok != tt.retried {
				t.Fatalf("retried %v, want %v", ok, tt.retried)
			}
			// Every attempt after the first looks the tag up first.
			if finds := strings.Count(strings.Join(fs.calls, ";"), "find "); finds != tt.passes-1 {
				t.Fatalf("%d tag lookups in %d passes: %v", finds, tt.passes, fs.calls)
			}
		})
	}
}

func TestSubmitAmbiguousRetryFindsExistingJob(t *testing.T) {
	j := newJob()
	j.SubmitAttempts = 1 // a previous attempt crashed after sbatch
	s, st, fs := setup(j)
	fs.found = &slurm.Found{ID: "321", State: slurm.StateRunning}
	if _, err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := st.jobs[j.ID]
	if got.State != job.Queued || got.SlurmID != "321" || strings.Contains(strings.Join(fs.calls, ";"), "sbatch") {
		t.Fatalf("job %s slurm %s calls %v: want the found job, no second sbatch", got.State, got.SlurmID, fs.calls)
	}
}

func TestResubmitIgnoresOldSlurmJob(t *testing.T) {
	j := newJob()
	j.SlurmID = "99" // paused job whose Slurm job was purged
	s, st, fs := setup(j)
	fs.found = &slurm.Found{ID: "99", State: slurm.StateCancelled}
	if _, err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := st.jobs[j.ID]; got.State != job.Queued || got.SlurmID != "500" {
		t.Fatalf("resubmission: %s %s calls %v", got.State, got.SlurmID, fs.calls)
	}
}

func TestCancelledDuringSubmission(t *testing.T) {
	s, st, fs := setup(newJob())
	fs.onSubmit = func() {
		if _, err := st.Transition(context.Background(), newJob().ID, job.Change{From: job.Submitting, To: job.Cancelled}); err != nil {
			t.Error(err)
		}
	}
	if _, err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := st.jobs[newJob().ID]; got.State != job.Cancelled || !strings.Contains(strings.Join(fs.calls, ";"), "cancel 500") {
		t.Fatalf("job %s, calls %v: the new Slurm job must be cancelled", got.State, fs.calls)
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 30: 5 * time.Minute} {
		got := Backoff(n)
		if got < want*8/10 || got > want*12/10 {
			t.Errorf("Backoff(%d) = %s, want %s ±20%%", n, got, want)
		}
	}
}

// TestRunDoesNotHoldJobsBehindASlowOne: while one sbatch hangs, a job submitted later
// is claimed (on the kick) and queued; Run returns only after the slow one ends.
func TestRunDoesNotHoldJobsBehindASlowOne(t *testing.T) {
	slow := newJob()
	s, st, fs := setup(slow)
	s.Interval = time.Hour // only kicks and finished submissions wake the loop
	release := make(chan struct{})
	fs.block = map[string]chan struct{}{slow.ID: release}
	fs.entered = make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	<-fs.entered // the slow job is in sbatch

	fast := newJob()
	fast.ID = "22222222-2222-4333-8444-555555555555"
	fast.JobDir = "/jobs/alice/" + fast.ID
	st.mu.Lock()
	st.jobs[fast.ID] = &fast
	st.mu.Unlock()
	s.Kick()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st.mu.Lock()
		state := st.jobs[fast.ID].State
		st.mu.Unlock()
		if state == job.Queued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second job is %s while the first hangs in sbatch", state)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
		t.Fatal("Run returned with a submission in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-done
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.jobs[slow.ID].State != job.Queued {
		t.Errorf("slow job %s after its sbatch returned", st.jobs[slow.ID].State)
	}
}

// TestRunClaimsAgainWhenASlotFrees: a job that became due while every slot was busy
// is claimed as soon as one frees, not at the next interval.
func TestRunClaimsAgainWhenASlotFrees(t *testing.T) {
	a := newJob()
	s, st, fs := setup(a)
	s.Batch, s.Interval = 2, time.Hour
	add := func(id string) job.Job {
		j := newJob()
		j.ID, j.JobDir = id, "/jobs/alice/"+id
		st.mu.Lock()
		st.jobs[id] = &j
		st.mu.Unlock()
		return j
	}
	stateOf := func(id string) job.State {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.jobs[id].State
	}
	releaseA, releaseX := make(chan struct{}), make(chan struct{})
	xID := "33333333-2222-4333-8444-555555555555"
	fs.block = map[string]chan struct{}{a.ID: releaseA, xID: releaseX}
	fs.entered = make(chan string, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	<-fs.entered // a claimed alone
	add(xID)
	s.Kick()
	<-fs.entered // x in the second slot: both busy
	b := add("44444444-2222-4333-8444-555555555555")
	s.Kick()                          // finds no free slot
	time.Sleep(20 * time.Millisecond) // let the loop consume the kick
	close(releaseA)
	deadline := time.Now().Add(5 * time.Second)
	for stateOf(b.ID) != job.Queued {
		if time.Now().After(deadline) {
			t.Fatalf("job b is %s after a slot freed", stateOf(b.ID))
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(releaseX)
	cancel()
	<-done
}

// TestReserveStartsWithoutClaim: a slot reserved before its job exists submits the
// job created claimed (attempt 1, leased) without any claim pass picking it up; slots
// count against Batch; Run waits for a reserved slot; no slot outside Run.
func TestReserveStartsWithoutClaim(t *testing.T) {
	st := &memStore{jobs: map[string]*job.Job{}, retries: map[string]string{}}
	fs := &fakeSlurm{files: map[string]string{}}
	s := &Submitter{Store: st, Clusters: map[string]Cluster{"dev": {Slurm: fs, Files: fs}}, Batch: 2, Interval: time.Hour}
	if sl := s.Reserve(); sl != nil {
		t.Fatal("Reserve gave a slot before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	var sl *Slot
	for deadline := time.Now().Add(5 * time.Second); sl == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no slot while Run works")
		}
		sl = s.Reserve()
	}
	j := newJob()
	sl.Claim(&j, time.Now())
	if j.SubmitAttempts != 1 || time.Until(j.NextAttempt) < time.Minute {
		t.Fatalf("claimed job: attempts %d, next attempt in %v; want 1 and the lease", j.SubmitAttempts, time.Until(j.NextAttempt))
	}
	st.mu.Lock()
	st.jobs[j.ID] = &j // what the store creates
	st.mu.Unlock()
	sl.Start(j)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		st.mu.Lock()
		state := st.jobs[j.ID].State
		st.mu.Unlock()
		if state == job.Queued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reserved job is %s: Start did not submit it", state)
		}
	}
	st.mu.Lock()
	for _, id := range st.claimed {
		if id == j.ID {
			t.Errorf("a claim pass took the job its slot had started")
		}
	}
	st.mu.Unlock()

	a, b := s.Reserve(), s.Reserve()
	for deadline := time.Now().Add(5 * time.Second); a == nil || b == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("two free slots not reservable") // the first job's slot frees after its submission
		}
		if a == nil {
			a = s.Reserve()
		} else {
			b = s.Reserve()
		}
	}
	if c := s.Reserve(); c != nil {
		t.Fatal("a third slot with Batch 2")
	}
	a.Release()
	a.Release() // a second release is a no-op, not a second free slot
	c := s.Reserve()
	if c == nil {
		t.Fatal("no slot after a release")
	}
	if d := s.Reserve(); d != nil {
		t.Fatal("a double Release freed two slots")
	}
	c.Release()
	cancel()
	select {
	case <-done:
		t.Fatal("Run returned while a reserved slot was neither started nor released")
	case <-time.After(50 * time.Millisecond):
	}
	b.Release()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the last slot was released")
	}
	if sl := s.Reserve(); sl != nil {
		t.Error("Reserve gave a slot after Run returned")
	}
}

package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/metrics"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/slurm"
)

// leadTimes runs r.Run with a Lead that never leads and records when it was asked,
// until it was asked n times or ctx ends.
func leadTimes(ctx context.Context, r *Reconciler, n int) []time.Time {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var at []time.Time
	r.Lead = func(context.Context) (Lease, error) {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, time.Now())
		if len(at) >= n {
			cancel()
		}
		return nil, nil // another replica leads: Run waits one interval
	}
	r.Run(ctx)
	mu.Lock()
	defer mu.Unlock()
	return at
}

// TestRunDefaultInterval: clusters without an interval are polled every 2 s.
func TestRunDefaultInterval(t *testing.T) {
	r, _, _ := setup()
	r.Clusters = append(r.Clusters, Cluster{Name: "other", Slurm: r.Clusters[0].Slurm})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	at := leadTimes(ctx, r, 2)
	if len(at) != 2 {
		t.Fatalf("leadership asked %d times in 10 s, want 2 (2 s apart)", len(at))
	}
	if gap := at[1].Sub(at[0]); gap < 1900*time.Millisecond || gap > 8*time.Second {
		t.Errorf("Run waited %s between leadership tries, want the default 2 s", gap)
	}
}

// TestRunShortestInterval: Run uses the shortest interval set; a cluster without one
// does not make it zero.
func TestRunShortestInterval(t *testing.T) {
	r, _, _ := setup()
	fs := r.Clusters[0].Slurm
	r.Clusters = []Cluster{
		{Name: "slow", Slurm: fs, Interval: time.Hour},
		{Name: "fast", Slurm: fs, Interval: 20 * time.Millisecond},
		{Name: "unset", Slurm: fs},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	at := leadTimes(ctx, r, 4)
	if len(at) != 4 {
		t.Fatalf("leadership asked %d times in 5 s, want 4 (20 ms apart)", len(at))
	}
	if total := at[3].Sub(at[0]); total < 60*time.Millisecond {
		t.Errorf("three waits took %s, want at least 3 x 20 ms", total)
	}
}

// counter returns the value of the metric family name whose labels are exactly the
// given ones (name=value pairs), and whether such a series exists; histograms give
// their sample count.
func counter(t *testing.T, m *metrics.Metrics, name string, labels ...string) (float64, bool) {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, s := range mf.GetMetric() {
			if len(s.GetLabel()) != len(labels)/2 {
				continue
			}
			for i, l := range s.GetLabel() {
				if l.GetName() != labels[2*i] || l.GetValue() != labels[2*i+1] {
					continue series
				}
			}
			switch {
			case s.GetCounter() != nil:
				return s.GetCounter().GetValue(), true
			case s.GetGauge() != nil:
				return s.GetGauge().GetValue(), true
			case s.GetHistogram() != nil:
				return float64(s.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// conflictStore is memStore whose Apply first lets a user change some jobs (the
// updates for them then conflict).
type conflictStore struct {
	*memStore
	userSets map[string]job.State
}

func (c *conflictStore) Apply(ctx context.Context, ups []postgres.Update) ([]string, error) {
	c.mu.Lock()
	for id, s := range c.userSets {
		c.jobs[id].State = s
	}
	c.mu.Unlock()
	return c.memStore.Apply(ctx, ups)
}

// TestRunOnceMetrics: each cluster's pass is counted by result and timed; the last
// success time is set only for a pass that succeeded; transitions are counted, except
// those that conflicted with a user's change during the pass.
func TestRunOnceMetrics(t *testing.T) {
	r, st, fs := setup()
	m := metrics.New()
	r.Metrics = m
	for id := range st.jobs {
		delete(st.jobs, id)
	}
	add := func(id, cluster string, s job.State, slurmID string) {
		st.jobs[id] = &job.Job{ID: id, Cluster: cluster, User: "alice", State: s, SlurmID: slurmID, JobDir: "/jobs/alice/" + id}
	}
	add("a", "dev", job.Queued, "1") // queued -> running
	add("h", "dev", job.Paused, "8") // paused -> queued, but the user cancels it meanwhile
	add("z", "down", job.Running, "9")
	fs.status["1"] = slurm.Status{State: slurm.StateRunning}
	fs.status["8"] = slurm.Status{State: slurm.StateRunning}
	r.Store = &conflictStore{memStore: st, userSets: map[string]job.State{"h": job.Cancelled}}
	r.Clusters = append(r.Clusters, Cluster{Name: "down", Slurm: &fakeSlurm{pollErr: errors.New("slurmctld down")}})

	err := r.RunOnce(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cluster down") || strings.Contains(err.Error(), "cluster dev") {
		t.Fatalf("RunOnce: %v, want the error of cluster down only", err)
	}
	for _, c := range []struct {
		cluster, result string
		want            float64
	}{{"dev", "ok", 1}, {"dev", "error", 0}, {"down", "ok", 0}, {"down", "error", 1}} {
		if got, _ := counter(t, m, "ftgate_reconcile_runs_total", "cluster", c.cluster, "result", c.result); got != c.want {
			t.Errorf("runs{%s,%s} = %v, want %v", c.cluster, c.result, got, c.want)
		}
	}
	for _, cl := range []string{"dev", "down"} {
		if n, _ := counter(t, m, "ftgate_reconcile_duration_seconds", "cluster", cl); n != 1 {
			t.Errorf("duration samples of %s: %v, want 1", cl, n)
		}
	}
	if v, _ := counter(t, m, "ftgate_reconcile_last_success_timestamp_seconds", "cluster", "dev"); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last success of dev: %v, want about now", v)
	}
	if v, ok := counter(t, m, "ftgate_reconcile_last_success_timestamp_seconds", "cluster", "down"); ok {
		t.Errorf("last success of the failed cluster set to %v", v)
	}
	if got, _ := counter(t, m, "ftgate_job_transitions_total", "from", "queued", "to", "running"); got != 1 {
		t.Errorf("queued->running transitions: %v, want 1", got)
	}
	if got, ok := counter(t, m, "ftgate_job_transitions_total", "from", "paused", "to", "queued"); ok {
		t.Errorf("the conflicting paused->queued transition was counted (%v)", got)
	}
	if st.jobs["a"].State != job.Running || st.jobs["h"].State != job.Cancelled {
		t.Errorf("a is %s, h is %s; want running and the user's cancelled", st.jobs["a"].State, st.jobs["h"].State)
	}
}

func TestContains(t *testing.T) {
	for _, c := range []struct {
		list []string
		s    string
		want bool
	}{
		{nil, "a", false},
		{[]string{"a"}, "a", true},
		{[]string{"b", "c", "a"}, "a", true},
		{[]string{"b", "c"}, "a", false},
	} {
		if got := contains(c.list, c.s); got != c.want {
			t.Errorf("contains(%q, %q) = %v, want %v", c.list, c.s, got, c.want)
		}
	}
}

// actSlurm records the user and id of each action and fails them with err.
type actSlurm struct {
	fakeSlurm
	err error
}

func (a *actSlurm) do(name, user, id string) error {
	a.actions = append(a.actions, name+" "+user+" "+id)
	return a.err
}
func (a *actSlurm) RequeueHold(ctx context.Context, user, id string) error {
	return a.do("requeuehold", user, id)
}
func (a *actSlurm) Hold(ctx context.Context, user, id string) error { return a.do("hold", user, id) }
func (a *actSlurm) Cancel(ctx context.Context, user, id string) error {
	return a.do("cancel", user, id)
}
func (a *actSlurm) Requeue(ctx context.Context, user, id string) error {
	return a.do("requeue", user, id)
}

// TestAct: each action calls its Slurm command as the job's owner; the change is
// written when it succeeds, OnActionGone when Slurm no longer knows the job (nothing
// when the decision has none), and nothing on any other error.
func TestAct(t *testing.T) {
	ok := change(job.Pausing, job.Paused, "ok")
	gone := change(job.Pausing, job.Failed, "gone")
	invalid := fmt.Errorf("scontrol: %w", slurm.ErrInvalidJob)
	r := &Reconciler{}
	j := job.Job{ID: "j", User: "bob", SlurmID: "42"}
	for _, c := range []struct {
		action  Action
		err     error
		goneSet bool
		want    *job.Change
		call    string
	}{
		{None, nil, false, ok, ""},
		{None, errors.New("not called"), true, ok, ""},
		{RequeueHold, nil, true, ok, "requeuehold bob 42"},
		{Hold, nil, false, ok, "hold bob 42"},
		{Cancel, nil, true, ok, "cancel bob 42"},
		{Requeue, nil, true, ok, "requeue bob 42"},
		{RequeueHold, errors.New("ssh: reset"), true, nil, "requeuehold bob 42"},
		{Hold, errors.New("ssh: reset"), false, nil, "hold bob 42"},
		{Cancel, errors.New("ssh: reset"), true, nil, "cancel bob 42"},
		{Requeue, errors.New("ssh: reset"), true, nil, "requeue bob 42"},
		{Cancel, invalid, true, gone, "cancel bob 42"},
		{Requeue, invalid, true, gone, "requeue bob 42"},
		{Hold, invalid, false, nil, "hold bob 42"},
	} {
		s := &actSlurm{err: c.err}
		d := Decision{Action: c.action, Change: ok}
		if c.goneSet {
			d.OnActionGone = gone
		}
		got := r.act(context.Background(), Cluster{Name: "dev", Slurm: s}, j, d)
		if got != c.want {
			t.Errorf("act %q (err %v, gone %v) = %+v, want %+v", c.action, c.err, c.goneSet, got, c.want)
		}
		if calls := strings.Join(s.actions, ","); calls != c.call {
			t.Errorf("act %q called %q, want %q", c.action, calls, c.call)
		}
	}
}

// TestRunTimes: the times of a pending or requeued job are a forecast; a start or end
// after now is not used; an end is used only for a job that ended, not before its start.
func TestRunTimes(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	past, earlier, future := now.Add(-time.Hour), now.Add(-2*time.Hour), now.Add(time.Hour)
	for _, c := range []struct {
		name               string
		st                 slurm.Status
		wantStart, wantEnd time.Time
	}{
		{"pending", slurm.Status{State: slurm.StatePending, Start: past}, time.Time{}, time.Time{}},
		{"requeued", slurm.Status{State: slurm.StateRequeued, Start: past}, time.Time{}, time.Time{}},
		{"running", slurm.Status{State: slurm.StateRunning, Start: past, End: now}, past, time.Time{}},
		{"start now", slurm.Status{State: slurm.StateRunning, Start: now}, now, time.Time{}},
		{"start in the future", slurm.Status{State: slurm.StateRunning, Start: future}, time.Time{}, time.Time{}},
		{"ended", slurm.Status{State: slurm.StateCompleted, Start: earlier, End: past}, earlier, past},
		{"ended now", slurm.Status{State: slurm.StateFailed, Start: earlier, End: now}, earlier, now},
		{"ended at its start", slurm.Status{State: slurm.StateFailed, Start: past, End: past}, past, past},
		{"end in the future", slurm.Status{State: slurm.StateCompleted, Start: earlier, End: future}, earlier, time.Time{}},
		{"end before start", slurm.Status{State: slurm.StateCompleted, Start: past, End: earlier}, past, time.Time{}},
		{"end unknown", slurm.Status{State: slurm.StateCompleted, Start: past}, past, time.Time{}},
	} {
		var ch job.Change
		runTimes(&ch, &c.st, now)
		if !ch.RunStart.Equal(c.wantStart) || !ch.RunEnd.Equal(c.wantEnd) {
			t.Errorf("%s: start %v end %v, want %v and %v", c.name, ch.RunStart, ch.RunEnd, c.wantStart, c.wantEnd)
		}
	}
}

// failStore fails Live or Apply.
type failStore struct {
	*memStore
	liveErr, applyErr, recordErr error
}

func (f *failStore) RecordRun(ctx context.Context, cluster string, at time.Time, d time.Duration, err error) error {
	f.memStore.RecordRun(ctx, cluster, at, d, err)
	return f.recordErr
}

func (f *failStore) Live(ctx context.Context, cluster string) ([]job.Job, error) {
	if f.liveErr != nil {
		return nil, f.liveErr
	}
	return f.memStore.Live(ctx, cluster)
}

func (f *failStore) Apply(ctx context.Context, ups []postgres.Update) ([]string, error) {
	if f.applyErr != nil {
		return nil, f.applyErr
	}
	return f.memStore.Apply(ctx, ups)
}

// TestRunOnceStoreErrors: a failed read of the live jobs or a failed write fails the
// cluster's pass (and is recorded); a cluster with no job to follow polls nothing.
func TestRunOnceStoreErrors(t *testing.T) {
	r, st, fs := setup()
	fs.status["1"] = slurm.Status{State: slurm.StateRunning}
	r.Store = &failStore{memStore: st, liveErr: errors.New("db gone")}
	if err := r.RunOnce(context.Background()); err == nil || !strings.Contains(err.Error(), "db gone") || fs.polls != 0 {
		t.Errorf("RunOnce with Live failing: %v (%d polls)", err, fs.polls)
	}
	r.Store = &failStore{memStore: st, applyErr: errors.New("serialization failure")}
	if err := r.RunOnce(context.Background()); err == nil || !strings.Contains(err.Error(), "apply: serialization failure") {
		t.Errorf("RunOnce with Apply failing: %v", err)
	}
	if st.jobs["a"].State != job.Queued {
		t.Errorf("a is %s after a failed write", st.jobs["a"].State)
	}
	r.Store = &failStore{memStore: st, recordErr: errors.New("insert reconcile_runs")}
	if err := r.RunOnce(context.Background()); err == nil || !strings.Contains(err.Error(), "insert reconcile_runs") {
		t.Errorf("RunOnce with RecordRun failing: %v", err)
	}
	if st.runs != 3 {
		t.Errorf("%d passes recorded, want 3", st.runs)
	}
	for id, j := range st.jobs {
		if j.State != job.Submitting {
			delete(st.jobs, id)
		}
	}
	r.Store = st
	fs.polls, fs.readRuns = 0, 0
	if err := r.RunOnce(context.Background()); err != nil || fs.polls != 0 || fs.readRuns != 0 {
		t.Errorf("only a submitting job: err %v, %d polls, %d reads; want none", err, fs.polls, fs.readRuns)
	}
}

// TestServiceUserOwnsJobs: in service-account mode each job is polled and accepted as
// the service account's, not its gateway user's.
func TestServiceUserOwnsJobs(t *testing.T) {
	r, st, fs := setup()
	r.Clusters[0].ServiceUser = "svc"
	fs.status["1"] = slurm.Status{State: slurm.StateRunning, User: "svc"}
	fs.status["2"] = slurm.Status{State: slurm.StateCompleted, User: "alice"} // not the service account's
	if err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(fs.pollUsers, ","); got != "svc" {
		t.Errorf("polled as %q, want svc once", got)
	}
	if st.jobs["a"].State != job.Running {
		t.Errorf("a is %s, want running from the service account's row", st.jobs["a"].State)
	}
	if st.jobs["b"].State == job.Succeeded {
		t.Errorf("b is %s: a row not owned by the service account was trusted", st.jobs["b"].State)
	}
}

// shortSlurm is fakeSlurm whose ReadFiles fails or returns fewer files than asked.
type shortSlurm struct {
	*fakeSlurm
	err  error
	keep int
}

func (s *shortSlurm) ReadFiles(ctx context.Context, user string, paths []string, maxEach int64) ([]slurm.File, error) {
	if s.err != nil {
		return nil, s.err
	}
	out, err := s.fakeSlurm.ReadFiles(ctx, user, paths, maxEach)
	if s.keep < len(out) {
		out = out[:s.keep]
	}
	return out, err
}

// TestReadProgressFailures: a failed read or an unparsable progress.json leaves the
// progress as it was, and the job's state is still decided; a short answer applies only
// the files it holds.
func TestReadProgressFailures(t *testing.T) {
	onlyB := func(st *memStore) {
		for id := range st.jobs {
			if id != "b" && id != "d" {
				delete(st.jobs, id)
			}
		}
	}
	r, st, fs := setup()
	onlyB(st)
	fs.status["2"] = slurm.Status{State: slurm.StateRunning}
	fs.status["4"] = slurm.Status{State: slurm.StateCompleted}
	fs.files["/jobs/alice/b/progress.json"] = `{"phase":"training","step":40}`
	r.Clusters[0].Slurm = &shortSlurm{fakeSlurm: fs, err: errors.New("sftp: broken pipe")}
	if err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st.jobs["b"].Progress.Step != 0 || st.jobs["d"].State != job.Succeeded {
		t.Errorf("after a failed read: b step %d, d %s; want 0 and succeeded", st.jobs["b"].Progress.Step, st.jobs["d"].State)
	}

	r, st, fs = setup()
	onlyB(st)
	fs.status["2"] = slurm.Status{State: slurm.StateRunning}
	fs.status["4"] = slurm.Status{State: slurm.StateRunning}
	fs.files["/jobs/alice/b/progress.json"] = `{"phase":"training","step":40`
	fs.files["/jobs/alice/d/progress.json"] = `{"phase":"training","step":7}`
	if err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st.jobs["b"].Progress.Step != 0 || st.jobs["d"].Progress.Step != 7 {
		t.Errorf("bad progress.json of b: b step %d, d step %d; want 0 and 7", st.jobs["b"].Progress.Step, st.jobs["d"].Progress.Step)
	}

	// Three files for two jobs (b's two, d's progress.json without its gpu.json), then
	// one file only (b's progress.json).
	for keep, want := range map[int][2]int64{3: {40, 7}, 1: {40, 0}} {
		r, st, fs = setup()
		onlyB(st)
		fs.status["2"] = slurm.Status{State: slurm.StateRunning}
		fs.status["4"] = slurm.Status{State: slurm.StateRunning}
		fs.files["/jobs/alice/b/progress.json"] = `{"phase":"training","step":40}`
		fs.files["/jobs/alice/b/gpu.json"] = `{"gpus":[{"index":0}]}`
		fs.files["/jobs/alice/d/progress.json"] = `{"phase":"training","step":7}`
		fs.files["/jobs/alice/d/gpu.json"] = `{"gpus":[{"index":0},{"index":1}]}`
		// Readers ask in job order; make it b then d.
		r.Store = &orderedStore{memStore: st, order: []string{"b", "d"}}
		r.Clusters[0].Slurm = &shortSlurm{fakeSlurm: fs, keep: keep}
		if err := r.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		b, d := st.jobs["b"].Progress, st.jobs["d"].Progress
		if b.Step != want[0] || d.Step != want[1] || len(b.GPUs) != map[int]int{3: 1, 1: 0}[keep] || len(d.GPUs) != 0 {
			t.Errorf("%d of 4 files: b step %d (%d GPUs), d step %d (%d GPUs); want steps %v", keep, b.Step, len(b.GPUs), d.Step, len(d.GPUs), want)
		}
	}
}

// orderedStore is memStore whose Live returns the jobs in a fixed order.
type orderedStore struct {
	*memStore
	order []string
}

func (o *orderedStore) Live(ctx context.Context, cluster string) ([]job.Job, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []job.Job
	for _, id := range o.order {
		if j, ok := o.jobs[id]; ok && j.Cluster == cluster {
			out = append(out, *j)
		}
	}
	return out, nil
}

// TestProgressChangedUpdatedAt: a progress whose only difference is its update time
// (gained, lost, or another instant) has changed; the same instant has not.
func TestProgressChangedUpdatedAt(t *testing.T) {
	t1 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	t1z := t1.In(time.FixedZone("x", 3600))
	t2 := t1.Add(time.Second)
	for _, c := range []struct {
		old, new *time.Time
		want     bool
	}{
		{nil, nil, false},
		{nil, &t1, true},
		{&t1, nil, true},
		{&t1, &t2, true},
		{&t1, &t1z, false},
	} {
		if got := progressChanged(job.Progress{Step: 3, UpdatedAt: c.old}, job.Progress{Step: 3, UpdatedAt: c.new}); got != c.want {
			t.Errorf("progressChanged(%v, %v) = %v, want %v", c.old, c.new, got, c.want)
		}
	}
}

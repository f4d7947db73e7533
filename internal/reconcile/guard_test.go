package reconcile

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/slurm"
)

// TestDecidePauseEdges covers the pause decisions the main table leaves out.
func TestDecidePauseEdges(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	old := now.Add(-time.Hour)
	pol := Policy{RestartBudget: 2, PauseGrace: time.Minute, LostGrace: 30 * time.Second}
	pausedNoCkpt := job.Progress{Phase: "paused", Step: 0}
	pausedCkpt := job.Progress{Phase: "paused", Step: 50, LatestCheckpoint: "checkpoints/step-50"}
	tests := []struct {
		name   string
		j      job.Job
		st     *slurm.Status
		p      job.Progress
		pol    Policy
		action Action
		to     job.State
		reason string
	}{
		{
			// The pause was requested and the trainer checkpointed and exited while the
			// job still showed running here: the exit is a pause, not a success.
			name: "pause requested, running here, trainer paused",
			j:    job.Job{State: job.Running, PauseRequested: &old},
			st:   &slurm.Status{State: slurm.StateCompleted}, p: pausedCkpt, pol: pol,
			action: RequeueHold, to: job.Paused, reason: "paused at checkpoint checkpoints/step-50",
		},
		{
			name: "no pause requested, trainer says paused: a success",
			j:    job.Job{State: job.Running},
			st:   &slurm.Status{State: slurm.StateCompleted}, p: pausedCkpt, pol: pol,
			action: None, to: job.Succeeded,
		},
		{
			// Held (by the user, or an admin) while pausing: already where a pause
			// leaves it, no second hold.
			name: "held while pausing",
			j:    job.Job{State: job.Pausing, PauseRequested: &old},
			st:   &slurm.Status{State: slurm.StatePending, Held: true}, p: pausedCkpt, pol: pol,
			action: None, to: job.Paused, reason: "paused at checkpoint",
		},
		{
			name: "pause grace 0 never cancels",
			j:    job.Job{State: job.Pausing, PauseRequested: &old},
			st:   &slurm.Status{State: slurm.StateRunning}, p: pausedCkpt, pol: Policy{RestartBudget: 2, LostGrace: time.Minute},
			action: None, to: "",
		},
		{
			name: "pause grace not yet over",
			j:    job.Job{State: job.Pausing, PauseRequested: &old},
			st:   &slurm.Status{State: slurm.StateRunning}, p: pausedCkpt, pol: Policy{PauseGrace: 2 * time.Hour},
			action: None, to: "",
		},
		{
			name: "pausing without a pause time never cancels",
			j:    job.Job{State: job.Pausing},
			st:   &slurm.Status{State: slurm.StateRunning}, p: pausedCkpt, pol: pol,
			action: None, to: "",
		},
		{
			// The trainer paused before its first checkpoint: it restarts from the
			// beginning on resume, which is still a pause, not a failure.
			name: "paused without a checkpoint",
			j:    job.Job{State: job.Pausing, PauseRequested: &old},
			st:   &slurm.Status{State: slurm.StateCompleted}, p: pausedNoCkpt, pol: pol,
			action: RequeueHold, to: job.Paused, reason: "paused",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.j.ID, tt.j.SlurmID, tt.j.UpdatedAt = "j", "7", old
			d := Decide(tt.j, tt.st, tt.p, tt.pol, now)
			if d.Action != tt.action {
				t.Errorf("action %q, want %q", d.Action, tt.action)
			}
			got := job.State("")
			if d.Change != nil {
				got = d.Change.To
			}
			if got != tt.to {
				t.Fatalf("to %q, want %q (%+v)", got, tt.to, d.Change)
			}
			if tt.reason != "" && !strings.HasPrefix(d.Change.Reason, tt.reason) {
				t.Errorf("reason %q, want prefix %q", d.Change.Reason, tt.reason)
			}
			if tt.name == "paused without a checkpoint" && strings.Contains(d.Change.Reason, "checkpoint") {
				t.Errorf("reason %q names a checkpoint", d.Change.Reason)
			}
		})
	}
}

// TestDecideMissingUsesLastSeen: a job Slurm reported recently is not lost because its
// row has not changed for long; it is lost once Slurm has not reported it for the grace.
func TestDecideMissingUsesLastSeen(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	pol := Policy{LostGrace: time.Minute}
	recent, old := now.Add(-10*time.Second), now.Add(-time.Hour)
	for _, tt := range []struct {
		updated  time.Time
		lastSeen *time.Time
		lost     bool
	}{
		{old, &recent, false},
		{old, &old, true},
		{old, nil, true},
		{recent, &old, false},
	} {
		j := job.Job{ID: "j", State: job.Running, SlurmID: "7", UpdatedAt: tt.updated, LastSeen: tt.lastSeen}
		d := Decide(j, nil, job.Progress{}, pol, now)
		if lost := d.Change != nil && d.Change.To == job.Failed; lost != tt.lost {
			t.Errorf("updated %s last seen %v: lost %v, want %v", tt.updated, tt.lastSeen, lost, tt.lost)
		}
	}
	j := job.Job{ID: "j", State: job.Pausing, SlurmID: "7", UpdatedAt: old}
	if d := Decide(j, nil, job.Progress{}, pol, now); d.Change == nil || !strings.Contains(d.Change.Reason, "during a pause") {
		t.Errorf("lost while pausing: %+v", d.Change)
	}
}

// recStore records every pass's updates.
type recStore struct {
	*memStore
	ups []postgres.Update
}

func (r *recStore) Apply(ctx context.Context, ups []postgres.Update) ([]string, error) {
	r.ups = append(r.ups, ups...)
	return r.memStore.Apply(ctx, ups)
}

func (r *recStore) update(id string) (postgres.Update, bool) {
	for _, u := range r.ups {
		if u.ID == id {
			return u, true
		}
	}
	return postgres.Update{}, false
}

// fileSlurm is fakeSlurm whose ReadFiles can report files as truncated.
type fileSlurm struct {
	*fakeSlurm
	truncated map[string]bool
	read      []string
}

func (f *fileSlurm) ReadFiles(ctx context.Context, user string, paths []string, maxEach int64) ([]slurm.File, error) {
	f.read = append(f.read, paths...)
	out, err := f.fakeSlurm.ReadFiles(ctx, user, paths, maxEach)
	for i := range out {
		out[i].Truncated = f.truncated[out[i].Path]
	}
	return out, err
}

func guardSetup() (*Reconciler, *recStore, *fileSlurm) {
	r, st, fs := setup()
	rs := &recStore{memStore: st}
	f := &fileSlurm{fakeSlurm: fs, truncated: map[string]bool{}}
	r.Store = rs
	r.Clusters[0].Slurm = f
	return r, rs, f
}

// TestRunOnceRecordsSeen: a job Slurm reports is recorded as seen even when nothing
// else about it changed (that is what keeps it from being declared lost); a job Slurm
// does not report is not.
func TestRunOnceRecordsSeen(t *testing.T) {
	r, st, fs := guardSetup()
	fs.status["1"] = slurm.Status{State: slurm.StatePending}
	fs.status["2"] = slurm.Status{State: slurm.StateRunning}
	if err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"a": true, "b": true} {
		u, ok := st.update(id)
		if !ok || u.Seen != want || u.Change != nil {
			t.Errorf("job %s: update %+v (present %v), want seen=%v without a change", id, u, ok, want)
		}
	}
	if u, ok := st.update("f"); ok && u.Seen {
		t.Errorf("job f not reported by Slurm but recorded as seen: %+v", u)
	}
}

// TestRunOnceProgressReads: a queued job still pending in Slurm has no progress to
// read; a pausing job that Slurm requeued (pending) does, and its pause ends on the
// checkpoint read in this very pass.
func TestRunOnceProgressReads(t *testing.T) {
	r, st, fs := guardSetup()
	for id := range st.jobs {
		if id != "a" && id != "c" {
			delete(st.jobs, id)
		}
	}
	fs.status["1"] = slurm.Status{State: slurm.StatePending}
	fs.status["3"] = slurm.Status{State: slurm.StatePending} // requeued by Slurm during the pause
	fs.files["/jobs/alice/a/progress.json"] = `{"phase":"training","step":1}`
	fs.files["/jobs/alice/c/progress.json"] = `{"phase":"training","step":60,"latest_checkpoint":"checkpoints/step-60"}`
	if err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(fs.read, ","); strings.Contains(got, "/a/") || !strings.Contains(got, "/jobs/alice/c/progress.json") {
		t.Errorf("read %s: want c's progress and not a's", got)
	}
	if c := st.jobs["c"]; c.State != job.Paused || !strings.Contains(c.Reason, "step-60") {
		t.Errorf("c is %s (%q), want paused at step-60", c.State, c.Reason)
	}
	if got := strings.Join(fs.actions, ","); got != "hold 3" {
		t.Errorf("actions %q, want hold 3", got)
	}
	// Only pending queued jobs: no read at all.
	delete(st.jobs, "c")
	fs.read = nil
	if err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(fs.read) != 0 || fs.readRuns != 1 {
		t.Errorf("pending queued job read: %v (%d reads)", fs.read, fs.readRuns)
	}
}

// TestRunOnceIgnoresTruncatedFiles: a progress.json or gpu.json larger than the read
// limit is not trusted, even when its first bytes parse.
func TestRunOnceIgnoresTruncatedFiles(t *testing.T) {
	r, st, fs := guardSetup()
	fs.status["2"] = slurm.Status{State: slurm.StateRunning}
	fs.status["3"] = slurm.Status{State: slurm.StateCompleted}
	fs.files["/jobs/alice/b/progress.json"] = `{"phase":"training","step":40}`
	fs.truncated["/jobs/alice/b/progress.json"] = true
	// c's pause: a truncated progress.json claiming a checkpoint must not end it as paused.
	st.jobs["c"].Progress = job.Progress{Phase: "training", Step: 10}
	fs.files["/jobs/alice/c/progress.json"] = `{"phase":"paused","step":60,"latest_checkpoint":"checkpoints/step-60"}`
	fs.truncated["/jobs/alice/c/progress.json"] = true
	fs.files["/jobs/alice/d/progress.json"] = `{"phase":"training","step":7}`
	fs.files["/jobs/alice/d/gpu.json"] = `{"gpus":[{"index":0,"name":"H200"}]}`
	fs.truncated["/jobs/alice/d/gpu.json"] = true
	fs.status["4"] = slurm.Status{State: slurm.StateRunning}
	if err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := st.jobs["b"].Progress; p.Step != 0 {
		t.Errorf("truncated progress.json applied: %+v", p)
	}
	if c := st.jobs["c"]; c.State != job.Failed || !strings.Contains(c.Reason, "no checkpoint") {
		t.Errorf("c is %s (%q): a truncated progress.json decided its pause", c.State, c.Reason)
	}
	if p := st.jobs["d"].Progress; p.Step != 7 || len(p.GPUs) != 0 {
		t.Errorf("d progress %+v: want step 7 without the truncated GPU sample", p)
	}
}

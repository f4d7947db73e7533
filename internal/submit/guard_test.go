package submit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/slurm"
)

// TestFailedTagLookupDoesNotSubmitAgain: when the lookup of an earlier attempt's job
// fails, nothing is submitted (the earlier sbatch may have worked); the job is retried.
func TestFailedTagLookupDoesNotSubmitAgain(t *testing.T) {
	j := newJob()
	j.SubmitAttempts = 1 // a previous attempt may have reached sbatch
	s, st, fs := setup(j)
	fs.findErr = &job.Error{Code: job.EUnavailable, Message: "slurm controller unreachable", Err: slurm.ErrController}
	if _, err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls := strings.Join(fs.calls, "; ")
	if strings.Contains(calls, "submit") || strings.Contains(calls, "sbatch") || strings.Contains(calls, "mkdir") || !strings.Contains(calls, "find ") {
		t.Fatalf("calls %q: want the lookup only", calls)
	}
	got := st.jobs[j.ID]
	if got.State != job.Submitting || !strings.Contains(st.retries[j.ID], "slurm controller unreachable") {
		t.Fatalf("job %s, retry %q: want a scheduled retry", got.State, st.retries[j.ID])
	}
	// The lookup works again and finds the earlier job: it is recorded, not resubmitted.
	fs.findErr, fs.found, fs.calls = nil, &slurm.Found{ID: "321", State: slurm.StatePending}, nil
	if _, err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := st.jobs[j.ID]; got.State != job.Queued || got.SlurmID != "321" || strings.Join(fs.calls, ";") != "find "+j.ID {
		t.Fatalf("job %s slurm %s calls %v", got.State, got.SlurmID, fs.calls)
	}
}

// TestRecordingErrorKeepsSlurmJob: sbatch worked but the database was briefly down
// when the result was recorded. The new Slurm job is not cancelled (only a job the
// user cancelled meanwhile is); the next attempt finds it by its tag and records it.
func TestRecordingErrorKeepsSlurmJob(t *testing.T) {
	s, st, fs := setup(newJob())
	st.transitionErr = &job.Error{Code: job.EUnavailable, Message: "database unavailable"}
	if _, err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls := strings.Join(fs.calls, "; "); strings.Contains(calls, "cancel") || !strings.Contains(calls, "submit-in-dir") {
		t.Fatalf("calls %q: sbatch ran and nothing may be cancelled", calls)
	}
	if got := st.jobs[newJob().ID]; got.State != job.Submitting {
		t.Fatalf("job %s after a failed record, want submitting", got.State)
	}
	st.transitionErr = nil
	st.jobs[newJob().ID].NextAttempt = st.jobs[newJob().ID].NextAttempt.AddDate(-1, 0, 0) // lease over
	fs.found, fs.calls = &slurm.Found{ID: "500", State: slurm.StatePending}, nil
	if _, err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	calls := strings.Join(fs.calls, "; ")
	if got := st.jobs[newJob().ID]; got.State != job.Queued || got.SlurmID != "500" || calls != "find "+newJob().ID {
		t.Fatalf("second attempt: job %s slurm %s calls %q; want the first job found by its tag", got.State, got.SlurmID, calls)
	}
}

// TestResubmitLooksTagUpOnFirstAttempt: a resubmission (the job has an old Slurm id)
// looks its tag up even on its first attempt, and a newer job with its tag is taken
// instead of a second sbatch.
func TestResubmitLooksTagUpOnFirstAttempt(t *testing.T) {
	j := newJob()
	j.SlurmID = "99"
	s, st, fs := setup(j)
	fs.found = &slurm.Found{ID: "600", State: slurm.StatePending}
	if _, err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := st.jobs[j.ID]; got.State != job.Queued || got.SlurmID != "600" || strings.Join(fs.calls, ";") != "find "+j.ID {
		t.Fatalf("job %s slurm %s calls %v; want 600 found by its tag", got.State, got.SlurmID, fs.calls)
	}
}

// TestRunWorksOnKick: Run passes at once, again when kicked (long before its
// interval), and returns when ctx ends.
func TestRunWorksOnKick(t *testing.T) {
	s, st, _ := setup(newJob())
	s.Interval = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	waitState := func(want job.State) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			st.mu.Lock()
			got := st.jobs[newJob().ID].State
			st.mu.Unlock()
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s, want %s", got, want)
			}
		}
	}
	waitState(job.Queued)
	st.mu.Lock()
	st.jobs[newJob().ID].State = job.Submitting // a resume
	st.jobs[newJob().ID].SlurmID = ""
	st.jobs[newJob().ID].NextAttempt = time.Time{}
	st.mu.Unlock()
	s.Kick()
	waitState(job.Queued)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after ctx ended")
	}
}

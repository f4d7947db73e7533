package reconcile

import (
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/slurm"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	pol := Policy{RestartBudget: 2, PauseGrace: time.Minute, LostGrace: 30 * time.Second}
	recent := now.Add(-10 * time.Second)
	old := now.Add(-10 * time.Minute)
	ckpt := job.Progress{Phase: "training", Step: 50, LatestCheckpoint: "checkpoints/step-50"}
	pausedP := job.Progress{Phase: "paused", Step: 50, LatestCheckpoint: "checkpoints/step-50"}
	done := job.Progress{Phase: "completed", Step: 100}
	none := job.Progress{Phase: "training", Step: 3}
	st := func(s slurm.State) *slurm.Status { return &slurm.Status{State: s} }
	tests := []struct {
		name    string
		state   job.State
		pause   *time.Time
		updated time.Time
		st      *slurm.Status
		p       job.Progress
		action  Action
		to      job.State // "" = no change
		gone    job.State
		reason  string
	}{
		{"queued pending", job.Queued, nil, recent, st(slurm.StatePending), none, None, "", "", ""},
		{"queued starts", job.Queued, nil, recent, st(slurm.StateRunning), none, None, job.Running, "", ""},
		{"queued completing counts as running", job.Queued, nil, recent, st(slurm.StateCompleting), none, None, job.Running, "", ""},
		{"queued finished before seen running", job.Queued, nil, recent, st(slurm.StateCompleted), done, None, job.Succeeded, "", ""},
		{"running stays", job.Running, nil, recent, st(slurm.StateRunning), ckpt, None, "", "", ""},
		{"running completes", job.Running, nil, recent, st(slurm.StateCompleted), done, None, job.Succeeded, "", ""},
		{"running fails", job.Running, nil, recent, &slurm.Status{State: slurm.StateFailed, ExitCode: 2}, job.Progress{Error: "dataset.path: line 3: bad JSON"}, None, job.Failed, "", "exit 2:0): bad spec or dataset: dataset.path: line 3"},
		{"oom", job.Running, nil, recent, st(slurm.StateOutOfMemory), ckpt, None, job.Failed, "", "OUT_OF_MEMORY"},
		{"boot fail", job.Queued, nil, recent, st(slurm.StateBootFail), none, None, job.Failed, "", "BOOT_FAIL"},
		{"deadline", job.Queued, nil, recent, st(slurm.StateDeadline), none, None, job.Failed, "", "DEADLINE"},
		{"cancelled outside", job.Running, nil, recent, &slurm.Status{State: slurm.StateCancelled, CancelledBy: "1001"}, ckpt, None, job.Cancelled, "", "by uid 1001"},
		{"requeued by slurm", job.Running, nil, recent, &slurm.Status{State: slurm.StatePending, Restarts: 1}, ckpt, None, job.Queued, "", "restart 1"},
		{"timeout resumes", job.Running, nil, recent, &slurm.Status{State: slurm.StateTimeout, Restarts: 0}, ckpt, Requeue, job.Queued, job.Failed, "TIMEOUT: resumed from the last checkpoint (restart 1 of 2)"},
		{"preempted resumes", job.Running, nil, recent, &slurm.Status{State: slurm.StatePreempted, Restarts: 1}, ckpt, Requeue, job.Queued, job.Failed, "restart 2 of 2"},
		{"node fail budget exhausted", job.Running, nil, recent, &slurm.Status{State: slurm.StateNodeFail, Restarts: 2}, ckpt, None, job.Failed, "", "NODE_FAIL after 2 restarts (restart budget 2 exhausted)"},
		{"pause completes", job.Pausing, &recent, recent, st(slurm.StateCompleted), pausedP, RequeueHold, job.Paused, job.Paused, "checkpoint checkpoints/step-50"},
		{"pause raced completion", job.Pausing, &recent, recent, st(slurm.StateCompleted), done, None, job.Succeeded, "", "before the pause"},
		{"pausing still running", job.Pausing, &recent, recent, st(slurm.StateRunning), ckpt, None, "", "", ""},
		{"pause grace expired with checkpoint", job.Pausing, &old, old, st(slurm.StateRunning), ckpt, Cancel, job.Paused, job.Paused, "pause grace (1m0s) expired"},
		{"pause grace expired without checkpoint", job.Pausing, &old, old, st(slurm.StateRunning), none, Cancel, job.Failed, job.Failed, "no checkpoint"},
		{"pausing requeue-held already", job.Pausing, &recent, recent, &slurm.Status{State: slurm.StatePending, RequeuedHeld: true}, pausedP, None, job.Paused, "", ""},
		{"pausing but slurm requeued it", job.Pausing, &recent, recent, &slurm.Status{State: slurm.StatePending}, ckpt, Hold, job.Paused, "", "held after Slurm requeued"},
		{"pausing preempted", job.Pausing, &recent, recent, st(slurm.StatePreempted), ckpt, None, job.Paused, "", "PREEMPTED during the pause"},
		{"paused held", job.Paused, &recent, recent, &slurm.Status{State: slurm.StatePending, Held: true}, pausedP, None, "", "", ""},
		{"paused after grace cancel", job.Paused, &old, old, st(slurm.StateCancelled), pausedP, None, "", "", ""},
		{"paused released outside", job.Paused, &old, old, st(slurm.StateRunning), pausedP, None, job.Queued, "", ""},
		{"missing briefly (sacct lag)", job.Queued, nil, recent, nil, none, None, "", "", ""},
		{"lost", job.Running, nil, old, nil, ckpt, None, job.Failed, "", "lost: Slurm no longer knows job 7"},
		{"paused and purged is fine", job.Paused, &old, old, nil, pausedP, None, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := job.Job{ID: "j", State: tt.state, SlurmID: "7", PauseRequested: tt.pause, UpdatedAt: tt.updated}
			d := Decide(j, tt.st, tt.p, pol, now)
			if d.Action != tt.action {
				t.Errorf("action %q, want %q", d.Action, tt.action)
			}
			got := job.State("")
			if d.Change != nil {
				got = d.Change.To
				if d.Change.From != tt.state {
					t.Errorf("change from %s, want %s", d.Change.From, tt.state)
				}
				if err := job.Transition(d.Change.From, d.Change.To); err != nil {
					t.Errorf("decision breaks the transition table: %v", err)
				}
			}
			if got != tt.to {
				t.Fatalf("to %q, want %q (%+v)", got, tt.to, d.Change)
			}
			if tt.gone != "" && (d.OnActionGone == nil || d.OnActionGone.To != tt.gone) {
				t.Errorf("OnActionGone %+v, want -> %s", d.OnActionGone, tt.gone)
			}
			if tt.reason != "" && (d.Change == nil || !strings.Contains(d.Change.Reason, tt.reason)) {
				t.Errorf("change %+v, want a reason containing %q", d.Change, tt.reason)
			}
		})
	}
}

func TestParseProgress(t *testing.T) {
	p, err := ParseProgress([]byte(`{"schema_version":1,"phase":"training","step":12,"total_steps":200,"epoch":0.5,
		"loss":2.25,"eval_loss":2.5,"tokens_per_second":1234.5,"eta_seconds":null,"latest_checkpoint":null,"error":null,
		"updated_at":"2026-01-01T12:00:00.123Z","pid":42}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Phase != "training" || p.Step != 12 || p.TotalSteps != 200 || *p.Loss != 2.25 || p.EvalLoss == nil || *p.EvalLoss != 2.5 || p.TokensPerSecond != 1234.5 ||
		p.ETASeconds != nil || p.LatestCheckpoint != "" || p.UpdatedAt == nil || p.UpdatedAt.Nanosecond() != 123e6 {
		t.Fatalf("parsed %+v", p)
	}
	if _, err := ParseProgress([]byte(`{"step":"x"}`)); err == nil {
		t.Fatal("bad progress.json parsed")
	}
}

package reconcile

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/slurm"
)

// Action is a Slurm call a decision needs before its state change is written.
type Action string

// Actions.
const (
	None        Action = ""
	RequeueHold Action = "requeuehold" // pause completed: keep the job id, held
	Hold        Action = "hold"        // pausing job that Slurm requeued: hold it
	Cancel      Action = "cancel"      // pause grace expired
	Requeue     Action = "requeue"     // automatic resume after TIMEOUT/PREEMPTED/NODE_FAIL
)

// Policy holds one cluster's reconciler settings.
type Policy struct {
	RestartBudget int
	PauseGrace    time.Duration
	// LostGrace is how long a job may be missing from both squeue and sacct before it
	// is failed as lost (sacct lags behind squeue by up to seconds).
	LostGrace time.Duration
}

// Decision is what one pass does for one job.
type Decision struct {
	Action Action
	// Change is written after Action succeeds (or without one). Nil: no transition.
	Change *job.Change
	// OnActionGone is written instead of Change when Action finds the job purged.
	OnActionGone *job.Change
}

// Progress is progress.json as the trainer writes it.
type Progress struct {
	Phase            string   `json:"phase"`
	Step             int64    `json:"step"`
	TotalSteps       int64    `json:"total_steps"`
	Epoch            float64  `json:"epoch"`
	Loss             *float64 `json:"loss"`
	EvalLoss         *float64 `json:"eval_loss"`
	TokensPerSecond  *float64 `json:"tokens_per_second"`
	LearningRate     *float64 `json:"learning_rate"`
	ETASeconds       *float64 `json:"eta_seconds"`
	RestartCount     int      `json:"restart_count"`
	LatestCheckpoint *string  `json:"latest_checkpoint"`
	Error            *string  `json:"error"`
	UpdatedAt        string   `json:"updated_at"`
}

// ParseProgress decodes progress.json into the domain's Progress.
func ParseProgress(b []byte) (job.Progress, error) {
	var p Progress
	if err := json.Unmarshal(b, &p); err != nil {
		return job.Progress{}, fmt.Errorf("decode progress.json: %w", err)
	}
	out := job.Progress{Phase: p.Phase, Step: p.Step, TotalSteps: p.TotalSteps, Epoch: p.Epoch, Loss: p.Loss, EvalLoss: p.EvalLoss, ETASeconds: p.ETASeconds,
		LearningRate: p.LearningRate}
	if p.TokensPerSecond != nil {
		out.TokensPerSecond = *p.TokensPerSecond
	}
	if p.LatestCheckpoint != nil {
		out.LatestCheckpoint = *p.LatestCheckpoint
	}
	if p.Error != nil {
		out.Error = *p.Error
	}
	if t, err := time.Parse(time.RFC3339Nano, p.UpdatedAt); err == nil {
		out.UpdatedAt = &t
	}
	return out, nil
}

// ParseGPUs returns the GPU list of gpu.json as `ftctl gpustat` writes it, or nil when
// the file holds no usable sample (a sampler error, a partial write).
func ParseGPUs(b []byte) []job.GPU {
	var s struct {
		GPUs []job.GPU `json:"gpus"`
	}
	if json.Unmarshal(b, &s) != nil || len(s.GPUs) == 0 {
		return nil
	}
	return s.GPUs
}

func change(from, to job.State, reason string) *job.Change {
	return &job.Change{From: from, To: to, Reason: reason}
}

// Decide maps one job's gateway state, its Slurm status (nil: unknown to squeue and
// sacct) and its latest progress to a decision. It is pure: Run does the I/O.
func Decide(j job.Job, st *slurm.Status, p job.Progress, pol Policy, now time.Time) Decision {
	if st == nil {
		return decideMissing(j, pol, now)
	}
	s := st.State
	switch {
	case s == slurm.StatePending || s == slurm.StateRequeued:
		switch j.State {
		case job.Running:
			// Requeued by Slurm (preemption, node failure) or by the batch script
			// after a checkpoint on the time-limit signal.
			c := change(job.Running, job.Queued, fmt.Sprintf("requeued by Slurm (restart %d)", st.Restarts))
			c.RestartCount = &st.Restarts
			return Decision{Change: c}
		case job.Pausing:
			if st.Held || st.RequeuedHeld {
				return Decision{Change: pausedChange(j, p, "paused")}
			}
			return Decision{Action: Hold, Change: pausedChange(j, p, "paused (held after Slurm requeued the job)")}
		}
		return Decision{}
	case !s.Terminal():
		// RUNNING, COMPLETING, CONFIGURING, SUSPENDED...
		switch j.State {
		case job.Queued:
			return Decision{Change: change(job.Queued, job.Running, job.ClearReason)}
		case job.Paused:
			return Decision{Change: change(job.Paused, job.Queued, "released outside the gateway")}
		case job.Pausing:
			if j.PauseRequested != nil && pol.PauseGrace > 0 && now.Sub(*j.PauseRequested) > pol.PauseGrace {
				c := pausedChange(j, p, fmt.Sprintf("pause grace (%s) expired: cancelled", pol.PauseGrace))
				return Decision{Action: Cancel, Change: c, OnActionGone: c}
			}
		}
		return Decision{}
	}
	// Terminal Slurm states.
	if j.State == job.Paused {
		return Decision{}
	}
	switch s {
	case slurm.StateCompleted:
		if j.State == job.Pausing || (j.PauseRequested != nil && p.Phase == "paused") {
			if p.Phase == "completed" {
				return Decision{Change: change(j.State, job.Succeeded, "completed before the pause took effect")}
			}
			c := pausedChange(j, p, "paused")
			return Decision{Action: RequeueHold, Change: c, OnActionGone: c}
		}
		return Decision{Change: change(j.State, job.Succeeded, job.ClearReason)}
	case slurm.StateCancelled:
		reason := "cancelled in Slurm"
		if st.CancelledBy != "" {
			reason += " by uid " + st.CancelledBy
		}
		return Decision{Change: change(j.State, job.Cancelled, reason)}
	case slurm.StateTimeout, slurm.StatePreempted, slurm.StateNodeFail:
		if j.State == job.Pausing {
			return Decision{Change: pausedChange(j, p, "paused ("+string(s)+" during the pause)")}
		}
		if st.Restarts < pol.RestartBudget {
			n := st.Restarts + 1
			c := change(j.State, job.Queued, fmt.Sprintf("%s: resumed from the last checkpoint (restart %d of %d)", s, n, pol.RestartBudget))
			c.RestartCount = &n
			gone := change(j.State, job.Failed, fmt.Sprintf("%s, and Slurm purged the job before it could be requeued", s))
			return Decision{Action: Requeue, Change: c, OnActionGone: gone}
		}
		return Decision{Change: change(j.State, job.Failed, fmt.Sprintf("%s after %d restarts (restart budget %d exhausted)", s, st.Restarts, pol.RestartBudget))}
	default: // FAILED, OUT_OF_MEMORY, BOOT_FAIL, DEADLINE, REVOKED, ...
		return Decision{Change: change(j.State, job.Failed, failReason(st, p))}
	}
}

func failReason(st *slurm.Status, p job.Progress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Slurm %s", st.State)
	if st.ExitCode != 0 || st.ExitSignal != 0 {
		fmt.Fprintf(&b, " (exit %d:%d)", st.ExitCode, st.ExitSignal)
	}
	if st.ExitCode == 2 {
		b.WriteString(": bad spec or dataset")
	}
	if p.Error != "" {
		b.WriteString(": " + p.Error)
	}
	return b.String()
}

// pausedChange ends a pause: paused on the last checkpoint, or failed without one.
func pausedChange(j job.Job, p job.Progress, how string) *job.Change {
	if p.LatestCheckpoint == "" && p.Phase != "paused" {
		return change(j.State, job.Failed, how+", but the trainer reported no checkpoint to resume from")
	}
	reason := how
	if p.LatestCheckpoint != "" {
		reason += " at checkpoint " + p.LatestCheckpoint
	}
	return change(j.State, job.Paused, reason)
}

func decideMissing(j job.Job, pol Policy, now time.Time) Decision {
	if j.State == job.Paused {
		return Decision{} // purged while paused: resume resubmits
	}
	since := j.UpdatedAt
	if j.LastSeen != nil && j.LastSeen.After(since) {
		since = *j.LastSeen
	}
	if now.Sub(since) < pol.LostGrace {
		return Decision{}
	}
	if j.State == job.Pausing {
		return Decision{Change: change(j.State, job.Failed, "lost: Slurm no longer knows job "+j.SlurmID+" (during a pause)")}
	}
	return Decision{Change: change(j.State, job.Failed, "lost: Slurm no longer knows job "+j.SlurmID)}
}

package job

import "time"

// Job is one training job as the gateway tracks it.
type Job struct {
	ID             string     `json:"id"`
	OwnerSubject   string     `json:"owner_subject"`
	User           string     `json:"user"`
	Cluster        string     `json:"cluster"`
	Name           string     `json:"name,omitempty"`
	Spec           Spec       `json:"spec"`
	State          State      `json:"state"`
	SlurmID        string     `json:"slurm_id,omitempty"`
	SlurmState     string     `json:"slurm_state,omitempty"`
	Reason         string     `json:"reason,omitempty"`
	RestartCount   int        `json:"restart_count"`
	IdempotencyKey string     `json:"idempotency_key,omitempty"`
	SpecHash       string     `json:"-"`
	JobDir         string     `json:"job_dir,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	StartedAt      *time.Time `json:"started_at,omitempty"`
	EndedAt        *time.Time `json:"ended_at,omitempty"`
	PauseRequested *time.Time `json:"pause_requested_at,omitempty"`
	Progress       Progress   `json:"progress"`
	// Template is the template version the job was started from, if any.
	Template *TemplateRef `json:"template,omitempty"`
	// Webhook is the endpoint of the spec's notify.webhook with its signing secret:
	// only in the answer that created the job (the secret is shown once).
	Webhook *JobWebhook `json:"webhook,omitempty"`
	// SubmitAttempts and NextAttempt drive the submitter's retries.
	SubmitAttempts int       `json:"-"`
	NextAttempt    time.Time `json:"-"`
	// LastSeen is when Slurm last reported the job (squeue or sacct).
	LastSeen *time.Time `json:"-"`
	// OwnerGroups are the owner's groups (the OIDC groups claim) when the job was
	// submitted: the group limits of a resume and of an admin's usage query.
	OwnerGroups []string `json:"-"`
}

// JobWebhook is a job's own webhook endpoint as its submission answers it.
type JobWebhook struct {
	// ID names the endpoint in /api/webhooks/{id} (its deliveries, its removal).
	ID string `json:"id"`
	// URL is the checked target the deliveries go to.
	URL    string   `json:"url"`
	Events []string `json:"events"`
	// Secret signs the deliveries (webhook-signature; docs/webhooks.md).
	Secret string `json:"secret"`
}

// Progress is the latest progress the trainer reported (progress.json).
type Progress struct {
	Phase      string   `json:"phase,omitempty"`
	Step       int64    `json:"step"`
	TotalSteps int64    `json:"total_steps"`
	Epoch      float64  `json:"epoch,omitempty"`
	Loss       *float64 `json:"loss,omitempty"`
	// EvalLoss is the latest evaluation loss, when the job evaluates.
	EvalLoss         *float64   `json:"eval_loss,omitempty"`
	TokensPerSecond  float64    `json:"tokens_per_second,omitempty"`
	LearningRate     *float64   `json:"learning_rate,omitempty"`
	ETASeconds       *float64   `json:"eta_seconds,omitempty"`
	LatestCheckpoint string     `json:"latest_checkpoint,omitempty"`
	Error            string     `json:"error,omitempty"`
	UpdatedAt        *time.Time `json:"updated_at,omitempty"`
	// GPUs is the job's latest GPU sample (gpu.json), when the node has a sampler.
	GPUs []GPU `json:"gpus,omitempty"`
}

// GPU is one device's sample from the node-side sampler (`ftctl gpustat`).
type GPU struct {
	Index              int     `json:"index"`
	UUID               string  `json:"uuid,omitempty"`
	Name               string  `json:"name,omitempty"`
	UtilizationPercent int     `json:"utilization_percent"`
	MemoryUsedMB       int     `json:"memory_used_mb"`
	MemoryTotalMB      int     `json:"memory_total_mb"`
	PowerWatts         float64 `json:"power_watts"`
	TemperatureC       int     `json:"temperature_c"`
}

// Event is one entry of a job's append-only event log. ID is monotonic per job, so a
// stream can resume from Last-Event-ID.
type Event struct {
	JobID string    `json:"job_id"`
	ID    int64     `json:"id"`
	Kind  string    `json:"kind"` // "state" or "progress"
	State State     `json:"state,omitempty"`
	Data  []byte    `json:"data,omitempty"` // JSON
	At    time.Time `json:"at"`
}

// Event kinds.
const (
	EventState    = "state"
	EventProgress = "progress"
	// EventCheckpoint is a checkpoint the trainer completed; its data is a
	// CheckpointEvent.
	EventCheckpoint = "checkpoint"
)

// CheckpointEvent is the data of an EventCheckpoint.
type CheckpointEvent struct {
	Name string `json:"name"` // relative to the job directory: checkpoints/step-<N>
	Step int64  `json:"step"`
}

// Change is a state transition with the fields that change with it.
type Change struct {
	From, To     State
	Reason       string // empty: keep; ClearReason: clear
	SlurmID      string // empty: keep
	SlurmState   string // empty: keep
	RestartCount *int
	ClearPause   bool
	SetPause     bool
	// RunStart and RunEnd are when Slurm says the job's current run started and
	// ended, where it reported them; zero: unknown, and the store records the run's
	// start or end at the time of the write (see postgres job_runs).
	RunStart, RunEnd time.Time
}

// ClearReason, as Change.Reason, empties the job's reason.
const ClearReason = "\x00"

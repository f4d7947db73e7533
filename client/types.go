// Package client is ftgate's API contract: the request and response types of every
// route, used by the gateway's handlers and by the typed Go Client in this package.
// The gateway's openapi.json is checked against these types (internal/api tests), so
// the document, the server and the client cannot drift apart.
//
// Domain types that are sent as they are (jobs, specs, states, checkpoints,
// manifests) are aliases of their one home in the domain packages.
package client

import (
	"encoding/json"
	"time"

	"github.com/ftgate/ftgate/internal/artifact"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/webhook"
)

// Domain types sent as they are.
type (
	// Job is a training job: GET /api/training/status/{job_id} and the answers of
	// execute, cancel, pause and resume.
	Job = job.Job
	// Spec is a training request (POST /api/training/execute).
	Spec = job.Spec
	// State is a job's gateway state.
	State = job.State
	// Progress is the trainer's latest progress report.
	Progress = job.Progress
	// GPU is one device's latest sample.
	GPU = job.GPU
	// CheckpointEvent is the data of a "checkpoint" event.
	CheckpointEvent = job.CheckpointEvent
	// Checkpoint is one checkpoints/step-<N>/ directory of a job.
	Checkpoint = artifact.Checkpoint
	// Manifest is a model's or checkpoint's manifest.json.
	Manifest = artifact.Manifest
	// ManifestFile is one file of a Manifest.
	ManifestFile = artifact.ManifestFile
	// Template is one version of a job template: GET, POST and PUT /api/templates.
	Template = job.Template
	// TemplateRef is the template version a job came from (Job.Template).
	TemplateRef = job.TemplateRef
	// Webhook is a registered webhook endpoint; only the answer of POST /api/webhooks
	// carries its secret.
	Webhook = webhook.Endpoint
	// WebhookDelivery is one entry of an endpoint's delivery log.
	WebhookDelivery = webhook.Delivery
	// WebhookBody is what a delivery POSTs to the endpoint (docs/webhooks.md).
	WebhookBody = webhook.Body
)

// ErrorDetail is the code and message of an error answer, and of the error message
// that ends a stream.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Details are structured facts beside the message, for some errors: a quota
	// refusal (429) has limit, max, used, requested, and for gpu_hours window_seconds
	// and frees_at; a no_wait refusal (409) has free_gpus, requested_gpus, cluster
	// and partition.
	Details map[string]any `json:"details,omitempty"`
}

// ErrorBody is every error answer: {"error":{"code","message"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// Health is GET /health.
type Health struct {
	Status  string `json:"status"`
	Version string `json:"version"`
	// Commit is the git commit the gateway was built from.
	Commit string `json:"commit"`
}

// Ready is GET /ready: "ready" (200) or "not ready" (503, with Error). The details
// of a failed check are logged by the gateway, never sent.
type Ready struct {
	Status string `json:"status"`
	// Failed names the failed checks ("postgres", "cluster NAME"); their errors are
	// only logged, /ready being unauthenticated.
	Failed []string     `json:"failed,omitempty"`
	Error  *ErrorDetail `json:"error,omitempty"`
}

// AuthConfig is GET /api/auth/config: what clients need to log in.
type AuthConfig struct {
	Issuer   string   `json:"issuer"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
	Audience string   `json:"audience"`
	// MinClientVersion is the oldest ftctl this gateway works with; ftctl warns at
	// login when it is older.
	MinClientVersion string `json:"min_client_version,omitempty"`
}

// Whoami is GET /api/whoami: the caller's identity.
type Whoami struct {
	Subject  string   `json:"subject"`
	Username string   `json:"username"`
	Admin    bool     `json:"admin"`
	Groups   []string `json:"groups"`
}

// DryRun is POST /api/training/execute?dry_run=1: the normalised spec and the
// sbatch script the gateway would submit.
type DryRun struct {
	DryRun  bool   `json:"dry_run"`
	Spec    Spec   `json:"spec"`
	Cluster string `json:"cluster"`
	JobDir  string `json:"job_dir"`
	Script  string `json:"script"`
	// Template is the template version the spec came from, if any.
	Template *TemplateRef `json:"template,omitempty"`
}

// TemplateRun is POST /api/training/execute from a template: the template's spec
// (NAME for the latest version, NAME@VERSION for one) deep-merged with Overrides, a
// JSON object of spec fields (JSON Merge Patch: objects merge, values and lists
// replace, null removes the template's value).
type TemplateRun struct {
	Template  string          `json:"template"`
	Overrides json.RawMessage `json:"overrides,omitempty"`
}

// TemplateRequest is POST /api/templates (a new template) and PUT
// /api/templates/{name} (its next version): the spec from Spec, a partial spec, or
// from FromJob, a job of the caller's (one of the two).
type TemplateRequest struct {
	// Name is the new template's name (POST); PUT takes it from the path.
	Name string `json:"name,omitempty"`
	// Visibility is private (POST's default) or shared (admins only); on PUT, empty
	// keeps the template's.
	Visibility string          `json:"visibility,omitempty"`
	Spec       json.RawMessage `json:"spec,omitempty"`
	FromJob    string          `json:"from_job,omitempty"`
}

// TemplateList is one page of GET /api/templates: the caller's templates and the
// shared ones by name, each at its latest version without its spec; NextCursor is
// empty on the last page.
type TemplateList struct {
	Templates  []Template `json:"templates"`
	NextCursor string     `json:"next_cursor"`
}

// TemplateDeleted is DELETE /api/templates/{name}.
type TemplateDeleted struct {
	Name    string `json:"name"`
	Owner   string `json:"owner"`
	Deleted bool   `json:"deleted"`
}

// JobList is one page of GET /api/jobs, newest first; NextCursor is empty on the
// last page.
type JobList struct {
	Jobs       []Job  `json:"jobs"`
	NextCursor string `json:"next_cursor"`
}

// Usage is GET /api/usage: what one user (a Unix account) holds now against the
// limits that apply to it.
type Usage struct {
	User string `json:"user"`
	// Groups are those the limits were resolved with: the caller's token's, or for
	// an admin's ?user= query the groups recorded with that user's latest job.
	Groups []string  `json:"groups"`
	Time   time.Time `json:"time"`
	// ActiveJobs are unfinished (submitting, queued, running, pausing, paused);
	// QueuedJobs wait to start (submitting, queued).
	ActiveJobs int `json:"active_jobs"`
	QueuedJobs int `json:"queued_jobs"`
	// GPUsInUse are the GPUs of running and pausing jobs; GPUsHeld those of
	// submitting, queued, running and pausing jobs, which limits.max_gpus counts.
	GPUsInUse int `json:"gpus_in_use"`
	GPUsHeld  int `json:"gpus_held"`
	// GPUHours were used by runs in the window ending now (running ones up to now).
	GPUHours float64 `json:"gpu_hours"`
	// GPUHoursFreesAt, when the GPU-hour limit is reached, is when enough of the
	// window's runs leave it for submissions to be accepted again (running jobs
	// running on); absent when under the limit, or when running jobs alone hold it.
	GPUHoursFreesAt *time.Time  `json:"gpu_hours_frees_at,omitempty"`
	Limits          UsageLimits `json:"limits"`
	// GroupBudgets are the shared GPU-hour budgets of the user's groups
	// (limits.group_budgets): each counts all the group's members' runs in the window.
	GroupBudgets []GroupBudgetUsage `json:"group_budgets"`
}

// GroupBudgetUsage is one group's shared budget in a Usage.
type GroupBudgetUsage struct {
	Group             string  `json:"group"`
	GPUHours          float64 `json:"gpu_hours"`
	GPUHoursPerWindow float64 `json:"gpu_hours_per_window"`
	// FreesAt, when the budget is used up, is when submissions are accepted again
	// (running jobs running on); absent otherwise, or when running jobs alone hold it.
	FreesAt *time.Time `json:"frees_at,omitempty"`
}

// UsageLimits are the limits of a Usage; 0 is no limit.
type UsageLimits struct {
	MaxActiveJobs     int     `json:"max_active_jobs"`
	MaxQueuedJobs     int     `json:"max_queued_jobs"`
	MaxGPUs           int     `json:"max_gpus"`
	GPUHoursPerWindow float64 `json:"gpu_hours_per_window"`
	WindowSeconds     int64   `json:"window_seconds"`
}

// SystemStatus is GET /api/system/status.
type SystemStatus struct {
	Version  string          `json:"version"`
	Time     time.Time       `json:"time"`
	Clusters []ClusterStatus `json:"clusters"`
}

// ClusterStatus is one cluster of SystemStatus: free GPUs per allowed partition,
// job counts by state and the reconciler's last pass.
type ClusterStatus struct {
	Name                 string            `json:"name"`
	Partitions           []PartitionStatus `json:"partitions"`
	CapacityError        string            `json:"capacity_error,omitempty"`
	Jobs                 map[string]int    `json:"jobs"`
	ReconcilerLastRun    *time.Time        `json:"reconciler_last_run,omitempty"`
	ReconcilerLagSeconds *float64          `json:"reconciler_lag_seconds,omitempty"`
	ReconcilerError      string            `json:"reconciler_error,omitempty"`
	// Degraded: Slurm could not be polled on the last pass or capacity could not be
	// read (slurmctld unreachable); progress still flows, states wait for Slurm.
	Degraded bool `json:"degraded"`
}

// PartitionStatus is one partition of a ClusterStatus.
type PartitionStatus struct {
	Name          string `json:"name"`
	State         string `json:"state"`
	GPUsTotal     int    `json:"gpus_total"`
	GPUsAllocated int    `json:"gpus_allocated"`
	GPUsFree      int    `json:"gpus_free"`
	MaxNodeGPUs   int    `json:"max_node_gpus"`
}

// CheckpointList is GET /api/training/{job_id}/checkpoints, oldest first.
type CheckpointList struct {
	JobID       string       `json:"job_id"`
	Checkpoints []Checkpoint `json:"checkpoints"`
}

// PinState is PUT and DELETE /api/training/{job_id}/pin.
type PinState struct {
	JobID  string `json:"job_id"`
	Pinned bool   `json:"pinned"`
}

// Purged is DELETE /api/training/{job_id}?purge=1.
type Purged struct {
	JobID  string `json:"job_id"`
	Purged bool   `json:"purged"`
}

// Metrics is GET /api/training/{job_id}/metrics: metrics.jsonl as series for charts.
type Metrics struct {
	JobID     string `json:"job_id"`
	SinceStep int64  `json:"since_step"`
	// LastStep is the highest step returned: pass it as since_step for newer points.
	LastStep int64 `json:"last_step"`
	// Series maps a field (loss, learning_rate, ...) to [step, value] points.
	Series       map[string][][2]float64 `json:"series"`
	SkippedLines int                     `json:"skipped_lines"`
	Progress     Progress                `json:"progress"`
}

// Event is one job event as the streams send it (SSE data, WebSocket "event").
type Event struct {
	JobID string          `json:"job_id"`
	ID    int64           `json:"id"`
	Kind  string          `json:"kind"`
	State State           `json:"state,omitempty"`
	At    time.Time       `json:"at"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// LogLines is a batch of new log lines on a stream opened with ?logs=1 (SSE event
// "log", WebSocket "log").
type LogLines struct {
	File string `json:"file"`
	// Offset is the byte offset after these lines.
	Offset int64    `json:"offset"`
	Lines  []string `json:"lines"`
}

// WSMessage is one WebSocket text message: {"type":"event","event":{...}},
// {"type":"log","log":{...}} or {"type":"error","error":{"code","message"}}.
type WSMessage struct {
	Type  string       `json:"type"`
	Event *Event       `json:"event,omitempty"`
	Log   *LogLines    `json:"log,omitempty"`
	Error *ErrorDetail `json:"error,omitempty"`
}

// WebhookRequest is POST /api/webhooks: the receiver's URL and the events it hears
// (job.succeeded, job.failed, job.cancelled, job.paused, job.checkpoint).
type WebhookRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
}

// WebhookList is one page of GET /api/webhooks, newest first; NextCursor is empty on
// the last page.
type WebhookList struct {
	Webhooks   []Webhook `json:"webhooks"`
	NextCursor string    `json:"next_cursor"`
}

// DeliveryList is one page of GET /api/webhooks/{webhook_id}/deliveries, newest
// first; NextCursor is empty on the last page.
type DeliveryList struct {
	WebhookID  string            `json:"webhook_id"`
	Deliveries []WebhookDelivery `json:"deliveries"`
	NextCursor string            `json:"next_cursor"`
}

// WebhookDeleted is DELETE /api/webhooks/{webhook_id}.
type WebhookDeleted struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

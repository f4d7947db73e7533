// Package webhook is the domain of signed webhooks: the events a user subscribes to,
// endpoints and deliveries as the API shows them, the body and its signature, and the
// policy deciding which addresses a webhook may reach. It does no I/O; the delivery
// worker is internal/deliver, the outbox internal/postgres.
package webhook

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// Webhook events.
const (
	EventSucceeded  = "job.succeeded"
	EventFailed     = "job.failed"
	EventCancelled  = "job.cancelled"
	EventPaused     = "job.paused"
	EventCheckpoint = "job.checkpoint"
)

// Events lists every event an endpoint can subscribe to.
var Events = []string{EventSucceeded, EventFailed, EventCancelled, EventPaused, EventCheckpoint}

// Limits of what a user registers.
const (
	// MaxURLLength bounds an endpoint's URL.
	MaxURLLength = 2048
	// DefaultMaxEndpoints is how many endpoints one user may register
	// (webhooks.max_endpoints_per_user).
	DefaultMaxEndpoints = 20
)

// EventFor maps a job event (its kind and the job's state after it) to the webhook
// event it triggers; "" when none. State events fire on the states users wait for;
// every completed checkpoint fires job.checkpoint.
func EventFor(kind string, state job.State) string {
	switch kind {
	case job.EventCheckpoint:
		return EventCheckpoint
	case job.EventState:
		switch state {
		case job.Succeeded:
			return EventSucceeded
		case job.Failed:
			return EventFailed
		case job.Cancelled:
			return EventCancelled
		case job.Paused:
			return EventPaused
		}
	}
	return ""
}

// CheckEvents validates an endpoint's event list and returns it sorted without
// duplicates; an empty list is an error (an endpoint that hears nothing is a mistake).
func CheckEvents(events []string) ([]string, error) {
	if len(events) == 0 {
		return nil, job.Errorf(job.EUnprocessable, "events: name at least one of %s", strings.Join(Events, ", "))
	}
	var out []string
	for _, e := range events {
		if !slices.Contains(Events, e) {
			return nil, job.Errorf(job.EUnprocessable, "events: unknown event %q (known: %s)", truncate(e, 40), strings.Join(Events, ", "))
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Endpoint is a registered receiver of a user's job events.
type Endpoint struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	CreatedAt time.Time `json:"created_at"`
	// JobID is set on a job's own endpoint (the spec's notify.webhook): it hears that
	// job only.
	JobID string `json:"job_id,omitempty"`
	// Secret signs the deliveries; only the answer that creates the endpoint has it.
	Secret       string `json:"secret,omitempty"`
	OwnerSubject string `json:"-"`
	User         string `json:"-"`
}

// Delivery states, derived from the outbox row.
const (
	DeliveryPending   = "pending"   // waiting for its next attempt
	DeliveryDelivered = "delivered" // a 2xx answer was received
	DeliveryFailed    = "failed"    // every attempt failed; no more will be made
)

// Delivery is one event for one endpoint in the delivery log.
type Delivery struct {
	// ID is the idempotency id: the body's id and the Ftgate-Webhook-Id header, the
	// same on every attempt.
	ID         string `json:"id"`
	EndpointID string `json:"endpoint_id"`
	Event      string `json:"event"`
	JobID      string `json:"job_id"`
	State      string `json:"state"`
	Attempts   int    `json:"attempts"`
	// LastStatus is the HTTP status of the last attempt (0: no answer).
	LastStatus    int        `json:"last_status,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	LastAttemptAt *time.Time `json:"last_attempt_at,omitempty"`
	// NextAttemptAt is when the next attempt is due; absent once delivered or failed.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
}

// Body is what a delivery POSTs (application/json).
type Body struct {
	// ID is the delivery's idempotency id: receivers drop a body whose id they saw.
	ID         string    `json:"id"`
	Event      string    `json:"event"`
	OccurredAt time.Time `json:"occurred_at"`
	Job        JobInfo   `json:"job"`
	// Checkpoint is the completed checkpoint of a job.checkpoint event.
	Checkpoint *job.CheckpointEvent `json:"checkpoint,omitempty"`
}

// JobInfo is the job as a delivery shows it: its state when the event happened.
type JobInfo struct {
	ID           string     `json:"id"`
	Name         string     `json:"name,omitempty"`
	State        job.State  `json:"state"`
	User         string     `json:"user"`
	Cluster      string     `json:"cluster"`
	SlurmID      string     `json:"slurm_id,omitempty"`
	Reason       string     `json:"reason,omitempty"`
	RestartCount int        `json:"restart_count"`
	CreatedAt    time.Time  `json:"created_at"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	EndedAt      *time.Time `json:"ended_at,omitempty"`
	Step         int64      `json:"step"`
	TotalSteps   int64      `json:"total_steps"`
	Loss         *float64   `json:"loss,omitempty"`
	EvalLoss     *float64   `json:"eval_loss,omitempty"`
	// LatestCheckpoint is the newest complete checkpoint (checkpoints/step-<N>).
	LatestCheckpoint string `json:"latest_checkpoint,omitempty"`
}

// NewBody is the body of event for job j at time at, without its id (each
// endpoint's delivery has its own, set by Outgoing.Body). data is the job event's
// data: a job.CheckpointEvent for job.checkpoint.
func NewBody(event string, at time.Time, j job.Job, data any) Body {
	b := Body{Event: event, OccurredAt: at.UTC(), Job: JobInfo{
		ID: j.ID, Name: j.Spec.Name, State: j.State, User: j.User, Cluster: j.Cluster, SlurmID: j.SlurmID,
		Reason: j.Reason, RestartCount: j.RestartCount, CreatedAt: j.CreatedAt.UTC(), StartedAt: j.StartedAt,
		EndedAt: j.EndedAt, Step: j.Progress.Step, TotalSteps: j.Progress.TotalSteps, Loss: j.Progress.Loss,
		EvalLoss: j.Progress.EvalLoss, LatestCheckpoint: j.Progress.LatestCheckpoint,
	}}
	if cp, ok := data.(job.CheckpointEvent); ok {
		b.Checkpoint = &cp
	}
	return b
}

// Outgoing is a claimed delivery attempt: what the worker sends where.
type Outgoing struct {
	ID, EndpointID, URL, Secret, Event string
	// Attempt is this attempt's number, 1 for the first.
	Attempt int
	// Payload is the stored Body without its id.
	Payload []byte
}

// Body returns the bytes to send: the stored body with the delivery's id, the same
// bytes on every attempt.
func (o Outgoing) Body() ([]byte, error) {
	var b Body
	if err := json.Unmarshal(o.Payload, &b); err != nil {
		return nil, fmt.Errorf("decode payload of delivery %s: %w", o.ID, err)
	}
	b.ID = o.ID
	return json.Marshal(b)
}

// Result is the outcome of one attempt, as the worker records it.
type Result struct {
	ID      string
	Attempt int
	// Status is the receiver's HTTP status (0: no answer); Error says what failed
	// ("" once delivered).
	Status int
	Error  string
	// Delivered: a 2xx answer. Otherwise Retry is the delay before the next attempt,
	// 0 when no attempt is left.
	Delivered bool
	Retry     time.Duration
}

// SecretPrefix starts every signing secret.
const SecretPrefix = "whsec_"

// NewSecret returns a fresh signing secret: SecretPrefix and 32 random bytes in
// unpadded base64url.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ftgate/ftgate/internal/job"
)

// Channel is the NOTIFY channel carrying job events; the payload is
// {"job_id","event_id","owner","kind","state"}.
const Channel = "ftgate_job_events"

// Store is the job store.
type Store struct {
	Pool *pgxpool.Pool
	Now  func() time.Time // for tests; nil means time.Now
}

// State lists for queries, derived from the domain's State helpers. Queries that
// must match a partial index on the terminal states (jobs_live, jobs_retention) embed
// terminalList as a literal, since a parameter cannot prove the index predicate;
// TestTerminalListMatchesIndexes checks the migrations use the same list. Other
// queries pass the states as a text[] argument.
var (
	terminalList   = sqlList(job.TerminalStates())
	terminalStates = stateNames(job.TerminalStates())
)

// sqlList renders states as an SQL list literal: ('a','b').
func sqlList(states []job.State) string {
	q := make([]string, len(states))
	for i, st := range states {
		q[i] = "'" + strings.ReplaceAll(string(st), "'", "''") + "'"
	}
	return "(" + strings.Join(q, ",") + ")"
}

// New returns a store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{Pool: pool} }

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// ValidID reports whether id has the shape of a job id.
func ValidID(id string) bool { return uuidRE.MatchString(id) }

// translate turns pgx errors into domain errors at the store boundary.
func translate(err error, what string) error {
	if err == nil {
		return nil
	}
	var je *job.Error
	if errors.As(err, &je) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return job.Errorf(job.ENotFound, "%s not found", what)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &job.Error{Code: job.EUnavailable, Message: "database request cancelled or timed out", Err: err}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505":
			return &job.Error{Code: job.EConflict, Message: what + " already exists", Err: err}
		case pe.Code == "23503":
			return &job.Error{Code: job.ENotFound, Message: what + " refers to a missing row", Err: err}
		case pe.Code == "22P02" || pe.Code == "23514" || pe.Code == "22001":
			return &job.Error{Code: job.EInvalid, Message: "invalid value for " + what, Err: err}
		case pe.Code == "40001" || pe.Code == "40P01" || pe.Code == "55P03":
			return &job.Error{Code: job.EUnavailable, Message: "database busy, retry", Err: err}
		case strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57"):
			return &job.Error{Code: job.EUnavailable, Message: "database unavailable", Err: err}
		}
		return &job.Error{Code: job.EInternal, Message: "database error", Err: err}
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || pgconn.SafeToRetry(err) {
		return &job.Error{Code: job.EUnavailable, Message: "database unavailable", Err: err}
	}
	return &job.Error{Code: job.EInternal, Message: "database error", Err: err}
}

const jobCols = jobColsHead + `spec` + jobColsTail

// liveCols is jobCols with NULL for the spec, which Live's caller, the reconciler, never
// reads: decoding 10,000 specs was three fifths of Live's time.
const liveCols = jobColsHead + `NULL` + jobColsTail

const jobColsHead = `id::text, owner_subject, unix_user, cluster, name, `

const jobColsTail = `, spec_hash, state, slurm_id, slurm_state, reason,
 restart_count, coalesce(idempotency_key, ''), job_dir, submit_attempts, next_attempt_at, pause_requested_at, last_seen_at,
 created_at, updated_at, started_at, ended_at, progress_phase, progress_step, progress_total, progress_epoch, progress_loss,
 progress_tps, progress_eta, progress_checkpoint, progress_error, progress_at, progress_lr, progress_gpus, progress_eval_loss, owner_groups,
 template_name, template_version, template_owner`

func scanJob(row pgx.Row) (job.Job, error) {
	var j job.Job
	var spec, gpus []byte
	var state string
	var tmpl job.TemplateRef
	p := &j.Progress
	err := row.Scan(&j.ID, &j.OwnerSubject, &j.User, &j.Cluster, &j.Name, &spec, &j.SpecHash, &state, &j.SlurmID,
		&j.SlurmState, &j.Reason, &j.RestartCount, &j.IdempotencyKey, &j.JobDir, &j.SubmitAttempts, &j.NextAttempt,
		&j.PauseRequested, &j.LastSeen, &j.CreatedAt, &j.UpdatedAt, &j.StartedAt, &j.EndedAt, &p.Phase, &p.Step,
		&p.TotalSteps, &p.Epoch, &p.Loss, &p.TokensPerSecond, &p.ETASeconds, &p.LatestCheckpoint, &p.Error, &p.UpdatedAt, &p.LearningRate, &gpus, &p.EvalLoss, &j.OwnerGroups,
		&tmpl.Name, &tmpl.Version, &tmpl.Owner)
	if err != nil {
		return j, err
	}
	if tmpl.Name != "" {
		j.Template = &tmpl
	}
	if gpus != nil {
		if err := json.Unmarshal(gpus, &p.GPUs); err != nil {
			return j, fmt.Errorf("decode gpus of job %s: %w", j.ID, err)
		}
	}
	j.State = job.State(state)
	if spec == nil { // liveCols
		return j, nil
	}
	if err := json.Unmarshal(spec, &j.Spec); err != nil {
		return j, fmt.Errorf("decode spec of job %s: %w", j.ID, err)
	}
	return j, nil
}

func collectJobs(rows pgx.Rows) ([]job.Job, error) {
	defer rows.Close()
	var out []job.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// stateNames returns states as strings, for a text[] query argument.
func stateNames(states []job.State) []string {
	out := make([]string, len(states))
	for i, st := range states {
		out[i] = string(st)
	}
	return out
}

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return translate(s.Pool.Ping(ctx), "database") }

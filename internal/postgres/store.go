package postgres

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
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

const jobCols = `id::text, owner_subject, unix_user, cluster, name, spec, spec_hash, state, slurm_id, slurm_state, reason,
 restart_count, coalesce(idempotency_key, ''), job_dir, submit_attempts, next_attempt_at, pause_requested_at, last_seen_at,
 created_at, updated_at, started_at, ended_at, progress_phase, progress_step, progress_total, progress_epoch, progress_loss,
 progress_tps, progress_eta, progress_checkpoint, progress_error, progress_at, progress_lr, progress_gpus`

func scanJob(row pgx.Row) (job.Job, error) {
	var j job.Job
	var spec, gpus []byte
	var state string
	p := &j.Progress
	err := row.Scan(&j.ID, &j.OwnerSubject, &j.User, &j.Cluster, &j.Name, &spec, &j.SpecHash, &state, &j.SlurmID,
		&j.SlurmState, &j.Reason, &j.RestartCount, &j.IdempotencyKey, &j.JobDir, &j.SubmitAttempts, &j.NextAttempt,
		&j.PauseRequested, &j.LastSeen, &j.CreatedAt, &j.UpdatedAt, &j.StartedAt, &j.EndedAt, &p.Phase, &p.Step,
		&p.TotalSteps, &p.Epoch, &p.Loss, &p.TokensPerSecond, &p.ETASeconds, &p.LatestCheckpoint, &p.Error, &p.UpdatedAt, &p.LearningRate, &gpus)
	if err != nil {
		return j, err
	}
	if gpus != nil {
		if err := json.Unmarshal(gpus, &p.GPUs); err != nil {
			return j, fmt.Errorf("decode gpus of job %s: %w", j.ID, err)
		}
	}
	j.State = job.State(state)
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

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// appendEvent adds an event to a job's log, bumps its per-job event id and queues a
// NOTIFY that Postgres delivers on commit.
func appendEvent(ctx context.Context, tx execer, j job.Job, kind string, data any) (int64, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return 0, fmt.Errorf("encode event: %w", err)
	}
	var id int64
	err = tx.QueryRow(ctx, `UPDATE jobs SET last_event_id = last_event_id + 1 WHERE id = $1 RETURNING last_event_id`, j.ID).Scan(&id)
	if err != nil {
		return 0, err
	}
	state := string(j.State)
	if _, err := tx.Exec(ctx, `INSERT INTO job_events (job_id, id, kind, state, data) VALUES ($1, $2, $3, $4, $5)`,
		j.ID, id, kind, state, b); err != nil {
		return 0, err
	}
	payload, _ := json.Marshal(map[string]any{"job_id": j.ID, "event_id": id, "owner": j.OwnerSubject, "user": j.User, "kind": kind, "state": state})
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, string(payload)); err != nil {
		return 0, err
	}
	return id, nil
}

// Create inserts j in state submitting. With an idempotency key, an existing job of
// the same owner and key is returned (created false) when its spec hash matches, and
// an EConflict otherwise. It fails with ETooMany when the owner already has
// maxActive active jobs (0: no limit).
func (s *Store) Create(ctx context.Context, j job.Job, maxActive int) (job.Job, bool, error) {
	var out job.Job
	created := false
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		// Serialise one owner's submissions so the quota check cannot race.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('ftgate.owner:' || $1, 0))`, j.OwnerSubject); err != nil {
			return err
		}
		if j.IdempotencyKey != "" {
			prev, err := scanJob(tx.QueryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE owner_subject = $1 AND idempotency_key = $2`,
				j.OwnerSubject, j.IdempotencyKey))
			switch {
			case err == nil && prev.SpecHash == j.SpecHash:
				out = prev
				return nil
			case err == nil:
				return job.Errorf(job.EConflict, "Idempotency-Key %q was already used with a different body (job %s)", j.IdempotencyKey, prev.ID)
			case !errors.Is(err, pgx.ErrNoRows):
				return err
			}
		}
		if maxActive > 0 {
			var n int
			if err := tx.QueryRow(ctx, countActiveSQL, j.OwnerSubject, activeStates).Scan(&n); err != nil {
				return err
			}
			if n >= maxActive {
				return job.Errorf(job.ETooMany, "quota exceeded: you have %d unfinished jobs (paused ones included), the limit is %d; wait for one to finish or cancel one", n, maxActive)
			}
		}
		spec, err := json.Marshal(j.Spec)
		if err != nil {
			return fmt.Errorf("encode spec: %w", err)
		}
		var key *string
		if j.IdempotencyKey != "" {
			key = &j.IdempotencyKey
		}
		now := s.now()
		out, err = scanJob(tx.QueryRow(ctx, `INSERT INTO jobs (id, owner_subject, unix_user, cluster, name, model, spec, spec_hash, state,
			idempotency_key, job_dir, created_at, updated_at, next_attempt_at)
			VALUES (coalesce(nullif($1, '')::uuid, gen_random_uuid()), $2, $3, $4, $5, $6, $7, $8, 'submitting', $9, $10, $11, $11, $11)
			RETURNING `+jobCols, j.ID, j.OwnerSubject, j.User, j.Cluster, j.Spec.Name, j.Spec.Model, spec, j.SpecHash, key, j.JobDir, now))
		if err != nil {
			return err
		}
		created = true
		_, err = appendEvent(ctx, tx, out, job.EventState, map[string]any{"from": "", "to": job.Submitting})
		return err
	})
	if err != nil {
		return job.Job{}, false, translate(err, "job")
	}
	return out, created, nil
}

// activeStates are the states that count against the quota, as a query argument.
var activeStates = stateNames(job.ActiveStates())

const countActiveSQL = `SELECT count(*) FROM jobs WHERE owner_subject = $1 AND state = ANY($2)`

// CountActive counts the owner's jobs that count against the quota (job.State.Active).
func (s *Store) CountActive(ctx context.Context, owner string) (int, error) {
	var n int
	if err := s.Pool.QueryRow(ctx, countActiveSQL, owner, activeStates).Scan(&n); err != nil {
		return 0, translate(err, "job")
	}
	return n, nil
}

// stateNames returns states as strings, for a text[] query argument.
func stateNames(states []job.State) []string {
	out := make([]string, len(states))
	for i, st := range states {
		out[i] = string(st)
	}
	return out
}

// Get returns the job with id.
func (s *Store) Get(ctx context.Context, id string) (job.Job, error) {
	if !ValidID(id) {
		return job.Job{}, job.Errorf(job.ENotFound, "job %q not found", id)
	}
	j, err := scanJob(s.Pool.QueryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = $1`, id))
	return j, translate(err, "job "+id)
}

// Filter selects jobs for List. Empty fields do not filter.
type Filter struct {
	Owner   string // owner subject; empty for admins listing everyone
	User    string // Unix user (admin filter)
	States  []job.State
	From    time.Time // created_at >= From
	To      time.Time // created_at < To
	Model   string    // substring, case-insensitive
	Cluster string
	Limit   int
	Cursor  string
}

// EncodeCursor and DecodeCursor make the opaque keyset cursor (created_at, id).
func EncodeCursor(j job.Job) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(j.CreatedAt.UnixMicro(), 10) + "|" + j.ID))
}

func decodeCursor(c string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		ts, id, ok := strings.Cut(string(b), "|")
		us, perr := strconv.ParseInt(ts, 10, 64)
		if ok && perr == nil && ValidID(id) {
			return time.UnixMicro(us), id, nil
		}
	}
	return time.Time{}, "", job.Errorf(job.EInvalid, "cursor: not a cursor returned by this API")
}

// List returns jobs newest first and the cursor of the next page ("" at the end).
func (s *Store) List(ctx context.Context, f Filter) ([]job.Job, string, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.Owner != "" {
		add("owner_subject = ?", f.Owner)
	}
	if f.User != "" {
		add("unix_user = ?", f.User)
	}
	if len(f.States) > 0 {
		ss := make([]string, len(f.States))
		for i, st := range f.States {
			ss[i] = string(st)
		}
		add("state = ANY(?)", ss)
	}
	if !f.From.IsZero() {
		add("created_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		add("created_at < ?", f.To)
	}
	if f.Model != "" {
		esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(f.Model)
		add("model ILIKE ?", "%"+esc+"%")
	}
	if f.Cluster != "" {
		add("cluster = ?", f.Cluster)
	}
	if f.Cursor != "" {
		t, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		args = append(args, t, id)
		where = append(where, fmt.Sprintf("(created_at, id) < ($%d, $%d::uuid)", len(args)-1, len(args)))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	q := `SELECT ` + jobCols + ` FROM jobs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT %d`, limit+1)
	rows, err := s.Pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", translate(err, "jobs")
	}
	jobs, err := collectJobs(rows)
	if err != nil {
		return nil, "", translate(err, "jobs")
	}
	next := ""
	if len(jobs) > limit {
		jobs = jobs[:limit]
		next = EncodeCursor(jobs[limit-1])
	}
	return jobs, next, nil
}

// Transition moves job id from c.From to c.To if the transition table allows it and
// the job is still in c.From (UPDATE ... WHERE id = $1 AND state = $2). A job that
// moved on meanwhile gives EConflict.
func (s *Store) Transition(ctx context.Context, id string, c job.Change) (job.Job, error) {
	var out job.Job
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		var err error
		out, err = transition(ctx, tx, id, c, s.now())
		return err
	})
	return out, translate(err, "job "+id)
}

func transition(ctx context.Context, tx pgx.Tx, id string, c job.Change, now time.Time) (job.Job, error) {
	if err := job.Transition(c.From, c.To); err != nil {
		return job.Job{}, err
	}
	var restart *int
	if c.RestartCount != nil {
		restart = c.RestartCount
	}
	j, err := scanJob(tx.QueryRow(ctx, `UPDATE jobs SET state = $3,
		reason = CASE WHEN $4::text IS NULL THEN reason ELSE $4 END,
		slurm_id = coalesce(nullif($5, ''), slurm_id),
		slurm_state = coalesce(nullif($6, ''), slurm_state),
		restart_count = coalesce($7, restart_count),
		pause_requested_at = CASE WHEN $8 THEN $10::timestamptz WHEN $9 THEN NULL ELSE pause_requested_at END,
		started_at = CASE WHEN $3 = 'running' AND started_at IS NULL THEN $10 ELSE started_at END,
		ended_at = CASE WHEN $3 IN ('succeeded','failed','cancelled') THEN $10 ELSE ended_at END,
		next_attempt_at = CASE WHEN $3 = 'submitting' THEN $10 ELSE next_attempt_at END,
		submit_attempts = CASE WHEN $3 = 'submitting' THEN 0 ELSE submit_attempts END,
		updated_at = $10
		WHERE id = $1 AND state = $2 RETURNING `+jobCols,
		id, string(c.From), string(c.To), reasonArg(c), c.SlurmID, c.SlurmState, restart, c.SetPause, c.ClearPause, now))
	if errors.Is(err, pgx.ErrNoRows) {
		var cur string
		if err := tx.QueryRow(ctx, `SELECT state FROM jobs WHERE id = $1`, id).Scan(&cur); err != nil {
			return job.Job{}, err
		}
		return job.Job{}, job.Errorf(job.EConflict, "job is %s, not %s; it cannot become %s", cur, c.From, c.To)
	}
	if err != nil {
		return job.Job{}, err
	}
	_, err = appendEvent(ctx, tx, j, job.EventState, map[string]any{"from": c.From, "to": c.To, "reason": j.Reason, "slurm_id": j.SlurmID, "slurm_state": j.SlurmState})
	return j, err
}

func reasonArg(c job.Change) *string {
	switch c.Reason {
	case "":
		return nil
	case job.ClearReason:
		empty := ""
		return &empty
	}
	return &c.Reason
}

// Update is one job's part of a reconciler pass.
type Update struct {
	ID         string
	Change     *job.Change   // a state transition, or nil
	Progress   *job.Progress // new progress, or nil
	SlurmState string        // raw Slurm state to record without a transition
	Seen       bool          // Slurm reported the job this pass
	Reason     string        // reason to record without a transition
	// RestartCount records Slurm's restart count without a transition (a requeue seen
	// only after the job already runs again).
	RestartCount *int
}

// Apply writes a reconciler pass in one transaction. Transitions whose expected state
// no longer holds (a user acted meanwhile) are skipped and returned as conflicts.
func (s *Store) Apply(ctx context.Context, ups []Update) (conflicts []string, err error) {
	if len(ups) == 0 {
		return nil, nil
	}
	now := s.now()
	err = pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		conflicts = nil
		if err := recordSeen(ctx, tx, ups, now); err != nil {
			return err
		}
		for _, u := range ups {
			if u.Progress != nil {
				if err := setProgress(ctx, tx, u.ID, *u.Progress); err != nil {
					return err
				}
			}
			if u.Change != nil {
				sp, err := tx.Begin(ctx)
				if err != nil {
					return err
				}
				if _, err := transition(ctx, sp, u.ID, *u.Change, now); err != nil {
					_ = sp.Rollback(ctx)
					if job.ErrorCode(err) == job.EConflict {
						conflicts = append(conflicts, u.ID)
						continue
					}
					return err
				}
				if err := sp.Commit(ctx); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return conflicts, translate(err, "job")
}

// recordSeen writes, in one statement for the whole pass, what Slurm reported of each
// job without a transition: raw state, last seen time, reason and restart count.
func recordSeen(ctx context.Context, tx pgx.Tx, ups []Update, now time.Time) error {
	var ids, states, reasons []string
	var seen []*time.Time
	var restarts []*int32
	for _, u := range ups {
		if u.SlurmState == "" && !u.Seen && u.Reason == "" && u.RestartCount == nil {
			continue
		}
		ids, states, reasons = append(ids, u.ID), append(states, u.SlurmState), append(reasons, u.Reason)
		var at *time.Time
		if u.Seen {
			at = &now
		}
		seen = append(seen, at)
		var rc *int32
		if u.RestartCount != nil {
			v := int32(*u.RestartCount)
			rc = &v
		}
		restarts = append(restarts, rc)
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `UPDATE jobs SET slurm_state = coalesce(nullif(u.state, ''), jobs.slurm_state),
		last_seen_at = coalesce(u.seen, jobs.last_seen_at), reason = coalesce(nullif(u.reason, ''), jobs.reason),
		restart_count = coalesce(u.restarts, jobs.restart_count)
		FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::int[]) AS u(id, state, seen, reason, restarts)
		WHERE jobs.id = u.id`, ids, states, seen, reasons, restarts)
	return err
}

func setProgress(ctx context.Context, tx pgx.Tx, id string, p job.Progress) error {
	var oldCheckpoint string
	err := tx.QueryRow(ctx, `SELECT progress_checkpoint FROM jobs WHERE id = $1 FOR UPDATE`, id).Scan(&oldCheckpoint)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	j, err := scanJob(tx.QueryRow(ctx, `UPDATE jobs SET progress_phase = $2, progress_step = $3, progress_total = $4,
		progress_epoch = $5, progress_loss = $6, progress_tps = $7, progress_eta = $8, progress_checkpoint = $9,
		progress_error = $10, progress_at = $11, progress_lr = $12, progress_gpus = $13
		WHERE id = $1 AND (progress_at IS DISTINCT FROM $11 OR progress_step <> $3 OR progress_phase <> $2
			OR progress_gpus IS DISTINCT FROM $13)
		RETURNING `+jobCols, id, p.Phase, p.Step, p.TotalSteps, p.Epoch, p.Loss, p.TokensPerSecond, p.ETASeconds,
		p.LatestCheckpoint, p.Error, p.UpdatedAt, p.LearningRate, gpusArg(p.GPUs)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // unchanged
	}
	if err != nil {
		return err
	}
	if _, err := appendEvent(ctx, tx, j, job.EventProgress, p); err != nil {
		return err
	}
	if p.LatestCheckpoint != "" && p.LatestCheckpoint != oldCheckpoint {
		_, err = appendEvent(ctx, tx, j, job.EventCheckpoint, job.CheckpointEvent{Name: p.LatestCheckpoint, Step: checkpointStep(p.LatestCheckpoint, p.Step)})
	}
	return err
}

// checkpointStep is N of checkpoints/step-<N>, or fallback when the name has no step.
func checkpointStep(name string, fallback int64) int64 {
	if n, ok := job.CheckpointStep(path.Base(name)); ok {
		return n
	}
	return fallback
}

// gpusArg is the progress_gpus value: SQL NULL without a sample.
func gpusArg(gpus []job.GPU) any {
	if len(gpus) == 0 {
		return nil
	}
	b, _ := json.Marshal(gpus)
	return string(b)
}

// SetProgress records a job's latest progress and appends a progress event when it
// changed.
func (s *Store) SetProgress(ctx context.Context, id string, p job.Progress) error {
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error { return setProgress(ctx, tx, id, p) })
	return translate(err, "job "+id)
}

// Events returns the events of job id after event id after, oldest first.
func (s *Store) Events(ctx context.Context, id string, after int64, limit int) ([]job.Event, error) {
	if !ValidID(id) {
		return nil, job.Errorf(job.ENotFound, "job %q not found", id)
	}
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.Pool.Query(ctx, `SELECT job_id::text, id, kind, state, data, at FROM job_events
		WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3`, id, after, limit)
	if err != nil {
		return nil, translate(err, "events")
	}
	defer rows.Close()
	var out []job.Event
	for rows.Next() {
		var e job.Event
		var st string
		if err := rows.Scan(&e.JobID, &e.ID, &e.Kind, &st, &e.Data, &e.At); err != nil {
			return nil, translate(err, "events")
		}
		e.State = job.State(st)
		out = append(out, e)
	}
	return out, translate(rows.Err(), "events")
}

// Live returns the non-terminal jobs of cluster that the reconciler follows.
func (s *Store) Live(ctx context.Context, cluster string) ([]job.Job, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+jobCols+` FROM jobs WHERE cluster = $1
		AND state NOT IN ('succeeded','failed','cancelled') ORDER BY created_at`, cluster)
	if err != nil {
		return nil, translate(err, "jobs")
	}
	jobs, err := collectJobs(rows)
	return jobs, translate(err, "jobs")
}

// ClaimSubmissions leases up to limit jobs in submitting whose next attempt is due:
// it bumps their attempt counter and pushes next_attempt_at by lease, so another
// replica does not pick them up while this one works on them. A crash leaves them due
// again once the lease ends.
func (s *Store) ClaimSubmissions(ctx context.Context, limit int, lease time.Duration) ([]job.Job, error) {
	now := s.now()
	rows, err := s.Pool.Query(ctx, `UPDATE jobs SET submit_attempts = submit_attempts + 1, next_attempt_at = $2
		WHERE id IN (SELECT id FROM jobs WHERE state = 'submitting' AND next_attempt_at <= $1
			ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING `+jobCols, now, now.Add(lease), limit)
	if err != nil {
		return nil, translate(err, "jobs")
	}
	jobs, err := collectJobs(rows)
	return jobs, translate(err, "jobs")
}

// RetrySubmission schedules the next submit attempt of a job still in submitting.
func (s *Store) RetrySubmission(ctx context.Context, id string, at time.Time, reason string) error {
	_, err := s.Pool.Exec(ctx, `UPDATE jobs SET next_attempt_at = $2, reason = $3, updated_at = now()
		WHERE id = $1 AND state = 'submitting'`, id, at, reason)
	return translate(err, "job "+id)
}

// SetJobDir records the job directory once known.
func (s *Store) SetJobDir(ctx context.Context, id, dir string) error {
	_, err := s.Pool.Exec(ctx, `UPDATE jobs SET job_dir = $2 WHERE id = $1`, id, dir)
	return translate(err, "job "+id)
}

// StateCount is the number of jobs of one cluster in one state.
type StateCount struct {
	Cluster string
	State   job.State
	N       int
}

// CountByState counts jobs per cluster and state.
func (s *Store) CountByState(ctx context.Context) ([]StateCount, error) {
	rows, err := s.Pool.Query(ctx, `SELECT cluster, state, count(*) FROM jobs GROUP BY cluster, state ORDER BY 1, 2`)
	if err != nil {
		return nil, translate(err, "jobs")
	}
	defer rows.Close()
	var out []StateCount
	for rows.Next() {
		var c StateCount
		var st string
		if err := rows.Scan(&c.Cluster, &st, &c.N); err != nil {
			return nil, translate(err, "jobs")
		}
		c.State = job.State(st)
		out = append(out, c)
	}
	return out, translate(rows.Err(), "jobs")
}

// RecordRun stores the reconciler's last pass for cluster.
func (s *Store) RecordRun(ctx context.Context, cluster string, at time.Time, d time.Duration, runErr error) error {
	msg := ""
	if runErr != nil {
		msg = runErr.Error()
	}
	_, err := s.Pool.Exec(ctx, `INSERT INTO reconciler_runs (cluster, ran_at, duration_ms, error) VALUES ($1, $2, $3, $4)
		ON CONFLICT (cluster) DO UPDATE SET ran_at = $2, duration_ms = $3, error = $4`,
		cluster, at, float64(d.Microseconds())/1000, msg)
	return translate(err, "reconciler run")
}

// Run is the reconciler's last pass over one cluster.
type Run struct {
	At       time.Time
	Duration time.Duration
	Error    string
}

// Runs returns the reconciler's last pass per cluster.
func (s *Store) Runs(ctx context.Context) (map[string]Run, error) {
	rows, err := s.Pool.Query(ctx, `SELECT cluster, ran_at, duration_ms, error FROM reconciler_runs`)
	if err != nil {
		return nil, translate(err, "reconciler runs")
	}
	defer rows.Close()
	out := map[string]Run{}
	for rows.Next() {
		var c string
		var r Run
		var ms float64
		if err := rows.Scan(&c, &r.At, &ms, &r.Error); err != nil {
			return nil, translate(err, "reconciler runs")
		}
		r.Duration = time.Duration(ms * float64(time.Millisecond))
		out[c] = r
	}
	return out, translate(rows.Err(), "reconciler runs")
}

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return translate(s.Pool.Ping(ctx), "database") }

package postgres

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ftgate/ftgate/internal/job"
)

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
		ended_at = CASE WHEN $11 THEN $10 ELSE ended_at END,
		next_attempt_at = CASE WHEN $3 = 'submitting' THEN $10 ELSE next_attempt_at END,
		submit_attempts = CASE WHEN $3 = 'submitting' THEN 0 ELSE submit_attempts END,
		updated_at = $10
		WHERE id = $1 AND state = $2 RETURNING `+jobCols,
		id, string(c.From), string(c.To), reasonArg(c), c.SlurmID, c.SlurmState, restart, c.SetPause, c.ClearPause, now, c.To.Terminal()))
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

// Live returns the non-terminal jobs of cluster that the reconciler follows.
func (s *Store) Live(ctx context.Context, cluster string) ([]job.Job, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+jobCols+` FROM jobs WHERE cluster = $1
		AND state NOT IN `+terminalList+` ORDER BY created_at`, cluster)
	if err != nil {
		return nil, translate(err, "jobs")
	}
	jobs, err := collectJobs(rows)
	return jobs, translate(err, "jobs")
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

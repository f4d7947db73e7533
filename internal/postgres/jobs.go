package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/quota"
)

// Create inserts j in state submitting. With an idempotency key, an existing job of
// the same owner and key is returned (created false) when its spec hash matches, and
// an EConflict otherwise. It fails with ETooMany when the job would pass one of lim
// (quota.Limits.Check), counted in the same transaction.
//
// Race: each Unix account's submissions are serialised by a transaction-scoped
// advisory lock, so two concurrent submissions cannot both take the last place (the
// counts of unfinished, waiting and GPU-holding jobs change only through this path or
// by going down). GPU-hours are written by the reconciler without that lock: a run
// that starts during the check is counted by the next submission.
func (s *Store) Create(ctx context.Context, j job.Job, lim quota.Limits) (job.Job, bool, error) {
	out, created, err := s.create(ctx, j, lim)
	if err != nil {
		return job.Job{}, false, translate(err, "job")
	}
	return out, created, nil
}

// create is Create in two round trips while the user's lock is held, which is what
// bounds one user's submission rate: BEGIN, the lock, the Idempotency-Key lookup and
// the usage in one batch (each statement runs after the one before it has finished,
// so they see every job committed before the lock was granted), then the insert, its
// event and COMMIT in another. Any failure rolls back; a connection left inside a
// transaction is closed by the pool, never reused.
func (s *Store) create(ctx context.Context, j job.Job, lim quota.Limits) (out job.Job, created bool, err error) {
	if j.ID == "" {
		j.ID = NewID()
	}
	now := s.now()
	gpus := j.Spec.Resources.TotalGPUs()
	spec, err := json.Marshal(j.Spec)
	if err != nil {
		return out, false, fmt.Errorf("encode spec: %w", err)
	}
	conn, err := s.Pool.Acquire(ctx)
	if err != nil {
		return out, false, err
	}
	defer conn.Release()
	open := false
	defer func() {
		if open {
			_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()

	b := &pgx.Batch{}
	b.Queue("BEGIN").Exec(func(pgconn.CommandTag) error { open = true; return nil })
	b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended('ftgate.user:' || $1, 0))`, j.User)
	prevErr := pgx.ErrNoRows
	var prev job.Job
	if j.IdempotencyKey != "" {
		b.Queue(byKeySQL, j.OwnerSubject, j.IdempotencyKey).QueryRow(func(row pgx.Row) error {
			prev, prevErr = scanJob(row)
			return nil
		})
	}
	var u quota.Usage
	if !lim.None() {
		queueUsage(b, &u, j.User, now, lim.RunsWindow(), lim.Pools)
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return out, false, err
	}
	switch {
	case prevErr == nil && prev.SpecHash == j.SpecHash:
		return prev, false, nil // the deferred ROLLBACK ends the read-only transaction
	case prevErr == nil:
		return out, false, job.Errorf(job.EConflict, "Idempotency-Key %q was already used with a different body (job %s)", j.IdempotencyKey, prev.ID)
	case !errors.Is(prevErr, pgx.ErrNoRows):
		return out, false, prevErr
	}
	if !lim.None() {
		if err := lim.Check(u, quota.Add{Active: 1, Queued: 1, GPUs: gpus}); err != nil {
			return out, false, err
		}
	}
	var key *string
	if j.IdempotencyKey != "" {
		key = &j.IdempotencyKey
	}
	groups := j.OwnerGroups
	if groups == nil {
		groups = []string{}
	}
	var tmpl job.TemplateRef
	if j.Template != nil {
		tmpl = *j.Template
	}
	// A job a submitter slot already holds (submit.Slot.Claim) is created claimed:
	// its first attempt, leased; any other is due now.
	attempts, next := 0, now
	if j.SubmitAttempts > 0 && j.NextAttempt.After(now) {
		attempts, next = j.SubmitAttempts, j.NextAttempt
	}
	j.State = job.Submitting
	// The first event (into submitting) triggers no webhook (webhook.EventFor), so the
	// event statement is all appendEvent would do.
	evSQL, evArgs, err := eventStatement(j, job.EventState, map[string]any{"from": "", "to": job.Submitting})
	if err != nil {
		return out, false, err
	}
	b = &pgx.Batch{}
	b.Queue(`INSERT INTO jobs (id, owner_subject, unix_user, cluster, name, model, spec, spec_hash, state,
		idempotency_key, job_dir, created_at, updated_at, next_attempt_at, submit_attempts, gpus, owner_groups, template_name, template_version, template_owner)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'submitting', $9, $10, $11, $11, $17, $18, $12, $13, $14, $15, $16)
		RETURNING `+jobCols, j.ID, j.OwnerSubject, j.User, j.Cluster, j.Spec.Name, j.Spec.Model, spec, j.SpecHash, key, j.JobDir, now, gpus, groups,
		tmpl.Name, tmpl.Version, tmpl.Owner, next, attempts).QueryRow(func(row pgx.Row) error {
		var err error
		out, err = scanJob(row)
		return err
	})
	b.Queue(evSQL, evArgs...).QueryRow(func(row pgx.Row) error {
		var at time.Time
		var id int64
		return row.Scan(&id, &at, new(bool))
	})
	if w := j.Webhook; w != nil {
		// The spec's notify.webhook: the job's own endpoint, in the same transaction.
		b.Queue(`INSERT INTO webhook_endpoints (id, owner_subject, unix_user, url, events, secret, created_at, job_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, w.ID, j.OwnerSubject, j.User, w.URL, w.Events, w.Secret, now, j.ID)
	}
	b.Queue("COMMIT").Exec(func(pgconn.CommandTag) error { open = false; return nil })
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return job.Job{}, false, err
	}
	if open {
		return job.Job{}, false, errors.New("create job: COMMIT did not run")
	}
	out.Webhook = j.Webhook
	return out, true, nil
}

const byKeySQL = `SELECT ` + jobCols + ` FROM jobs WHERE owner_subject = $1 AND idempotency_key = $2`

// ByIdempotencyKey returns owner's job created with Idempotency-Key key.
func (s *Store) ByIdempotencyKey(ctx context.Context, owner, key string) (job.Job, error) {
	j, err := scanJob(s.Pool.QueryRow(ctx, byKeySQL, owner, key))
	return j, translate(err, "job")
}

// Get returns the job with id.
func (s *Store) Get(ctx context.Context, id string) (job.Job, error) {
	if !ValidID(id) {
		return job.Job{}, job.Errorf(job.ENotFound, "job %q not found", id)
	}
	j, err := scanJob(s.Pool.QueryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = $1`, id))
	return j, translate(err, "job "+id)
}

// Filter selects and orders jobs for List. Empty fields do not filter.
type Filter struct {
	Owner   string // owner subject; empty for admins listing everyone
	User    string // Unix user (admin filter)
	States  []job.State
	From    time.Time // created_at >= From
	To      time.Time // created_at < To
	Model   string    // substring of the model, case-insensitive
	Search  string    // substring of the name or the model, case-insensitive
	Cluster string
	// Sort and Desc order the list (job.ParseSort); no Sort is created, newest first.
	Sort Sort
	Desc bool
	// AsOf ends the running time of unfinished jobs for SortDuration; List sets it
	// (now, or the cursor's) and EncodeCursor carries it to the next page.
	AsOf   time.Time
	Limit  int
	Cursor string
}

// likeArg is an ILIKE pattern matching s as a substring.
func likeArg(s string) string {
	return "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s) + "%"
}

// listPart is one index range of a sorted list: its conditions, their arguments
// (numbered after the filters' base arguments) and ORDER BY.
type listPart struct {
	base  int
	conds []string
	args  []any
	order string
	key   string // the sort key as an SQL expression, when two parts are merged
}

func (p *listPart) arg(v any) string {
	p.args = append(p.args, v)
	return "$" + strconv.Itoa(p.base+len(p.args))
}

// sortParts are the ranges List reads for f's sort after cur (nil: from the start):
// the ranges of jobs with a value, merged by their keys in SQL when there are two, and the
// range of jobs without one (nil for created). Each range is one index scan
// (migrations 0001 and 0008); base is the number of filter arguments.
func sortParts(f Filter, cur *Cursor, base int) (parts []*listPart, null *listPart) {
	cmp, dir, rev := ">", "ASC", "DESC"
	if f.desc() {
		cmp, dir, rev = "<", "DESC", "ASC"
	}
	byKey := func(key string, conds ...string) *listPart {
		p := &listPart{base: base, conds: conds, order: key + " " + dir + ", jobs.id " + dir, key: key}
		if cur != nil {
			var v any = cur.Value
			switch f.sort() {
			case SortCreated:
				v = time.UnixMicro(int64(cur.Value))
			case SortDuration:
				v = time.Duration(cur.Value) * time.Microsecond
			}
			p.conds = append(p.conds, fmt.Sprintf("(%s, id) %s (%s, %s::uuid)", key, cmp, p.arg(v), p.arg(cur.ID)))
		}
		return p
	}
	var col string
	switch f.sort() {
	case SortCreated:
		return []*listPart{byKey("created_at")}, nil
	case SortDuration:
		col = "started_at"
	case SortLoss:
		col = "progress_loss"
	case SortEvalLoss:
		col = "progress_eval_loss"
	}
	null = &listPart{base: base, conds: []string{col + " IS NULL"}, order: "jobs.id " + dir}
	if cur != nil && cur.Null {
		null.conds = append(null.conds, fmt.Sprintf("id %s %s::uuid", cmp, null.arg(cur.ID)))
		return nil, null // past every job with a value
	}
	if f.sort() != SortDuration {
		return []*listPart{byKey(col, col+" IS NOT NULL")}, null
	}
	// An ended job's duration is fixed; a running one's grows with the listing's
	// instant, so among those longer means started earlier: (started_at, id) in
	// mixed directions, bounded by the instant the cursor's duration started.
	// List merges the two in one query, so the running part's arguments are numbered
	// after the ended part's.
	ended := byKey("(ended_at - started_at)", "started_at IS NOT NULL", "ended_at IS NOT NULL")
	running := &listPart{base: base + len(ended.args), conds: []string{"started_at IS NOT NULL", "ended_at IS NULL"},
		order: "started_at " + rev + ", jobs.id " + dir}
	running.key = "(" + running.arg(f.AsOf) + "::timestamptz - started_at)"
	if cur != nil {
		later := "<" // after the cursor in ascending order: shorter, so started later
		if f.desc() {
			later = ">"
		}
		at := running.arg(f.AsOf.Add(-time.Duration(cur.Value) * time.Microsecond))
		running.conds = append(running.conds, fmt.Sprintf("started_at %s= %s", later, at),
			fmt.Sprintf("(started_at %s %s OR id %s %s::uuid)", later, at, cmp, running.arg(cur.ID)))
	}
	return []*listPart{ended, running}, null
}

// List returns one page of jobs in f's order and the cursor of the next page ("" at
// the end). It reads the sort's ranges of jobs with a value (sortParts) and, when the
// page is not full, the range of jobs without one.
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
		add("state = ANY(?)", stateNames(f.States))
	}
	if !f.From.IsZero() {
		add("created_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		add("created_at < ?", f.To)
	}
	if f.Model != "" {
		add("model ILIKE ?", likeArg(f.Model))
	}
	if f.Search != "" {
		add("(name ILIKE ? OR model ILIKE ?)", likeArg(f.Search))
	}
	if f.Cluster != "" {
		add("cluster = ?", f.Cluster)
	}
	var cur *Cursor
	f.AsOf = s.now().Truncate(time.Microsecond)
	if f.Cursor != "" {
		c, err := DecodeCursor(f, f.Cursor)
		if err != nil {
			return nil, "", err
		}
		if !ValidID(c.ID) {
			return nil, "", errCursor
		}
		cur, f.AsOf = &c, c.AsOf
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	dir := "ASC"
	if f.desc() {
		dir = "DESC"
	}
	// query returns the first n jobs of the parts in order, in one query: one part is
	// one index range; two (duration) are merged by their keys in SQL, which reads
	// only the ids and keys of both ranges and the full rows of the page alone.
	query := func(n int, parts ...*listPart) ([]job.Job, error) {
		if len(parts) == 0 {
			return nil, nil
		}
		sel := func(p *listPart, cols string) string {
			q := `SELECT ` + cols + ` FROM jobs`
			if all := append(slices.Clip(where), p.conds...); len(all) > 0 {
				q += ` WHERE ` + strings.Join(all, " AND ")
			}
			return q + ` ORDER BY ` + p.order + fmt.Sprintf(` LIMIT %d`, n)
		}
		qargs := slices.Clip(args)
		var q string
		if len(parts) == 1 {
			q = sel(parts[0], jobCols)
			qargs = append(qargs, parts[0].args...)
		} else {
			var ranges []string
			for _, p := range parts {
				ranges = append(ranges, `(`+sel(p, `jobs.id AS uid, `+p.key+` AS k`)+`)`)
				qargs = append(qargs, p.args...)
			}
			q = `SELECT ` + jobCols + ` FROM jobs JOIN (SELECT uid, k FROM (` + strings.Join(ranges, ` UNION ALL `) +
				`) r ORDER BY k ` + dir + `, uid ` + dir + fmt.Sprintf(` LIMIT %d`, n) + `) page ON jobs.id = page.uid ORDER BY page.k ` + dir + `, page.uid ` + dir
		}
		rows, err := s.Pool.Query(ctx, q, qargs...)
		if err != nil {
			return nil, err
		}
		return collectJobs(rows)
	}
	parts, null := sortParts(f, cur, len(args))
	jobs, err := query(limit+1, parts...)
	if err != nil {
		return nil, "", translate(err, "jobs")
	}
	if null != nil && len(jobs) <= limit {
		rest, err := query(limit+1-len(jobs), null)
		if err != nil {
			return nil, "", translate(err, "jobs")
		}
		jobs = append(jobs, rest...)
	}
	next := ""
	if len(jobs) > limit {
		jobs = jobs[:limit]
		next = EncodeCursor(f, jobs[limit-1])
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
	if err := recordRun(ctx, tx, id, c, now); err != nil {
		return job.Job{}, fmt.Errorf("record run: %w", err)
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

// Live returns the non-terminal jobs of cluster that the reconciler follows, without
// their Spec (zero): the reconciler does not read it.
func (s *Store) Live(ctx context.Context, cluster string) ([]job.Job, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+liveCols+` FROM jobs WHERE cluster = $1
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

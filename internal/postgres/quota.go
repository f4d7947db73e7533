package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/quota"
)

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

var (
	activeArg  = stateNames(job.ActiveStates())
	waitingArg = stateNames(quota.Waiting)
	inUseArg   = stateNames(quota.InUse)
	holdingArg = stateNames(quota.Holding)
)

// Usage returns what Unix account user holds now: unfinished, waiting and
// GPU-holding jobs, and the runs that overlap the window ending now.
func (s *Store) Usage(ctx context.Context, user string, window time.Duration) (quota.Usage, error) {
	u, err := usage(ctx, s.Pool, user, s.now(), window)
	return u, translate(err, "usage")
}

// usage counts user's jobs (jobs_user_live) and reads the runs in the window ending
// at (job_runs_user_ended): the user's runs in one window, so bounded by what the
// limits let a user run in it. A window of 0 reads no runs.
func usage(ctx context.Context, q querier, user string, at time.Time, window time.Duration) (quota.Usage, error) {
	var u quota.Usage
	b := &pgx.Batch{}
	queueUsage(b, &u, user, at, window)
	err := q.SendBatch(ctx, b).Close()
	return u, err
}

// queueUsage adds usage's statements to b (one round trip with whatever else b holds);
// u is filled when the batch runs.
func queueUsage(b *pgx.Batch, u *quota.Usage, user string, at time.Time, window time.Duration) {
	u.At = at
	b.Queue(`SELECT count(*) FILTER (WHERE state = ANY($2)), count(*) FILTER (WHERE state = ANY($3)),
		coalesce(sum(gpus) FILTER (WHERE state = ANY($4)), 0), coalesce(sum(gpus) FILTER (WHERE state = ANY($5)), 0)
		FROM jobs WHERE unix_user = $1 AND state NOT IN `+terminalList,
		user, activeArg, waitingArg, inUseArg, holdingArg).QueryRow(func(row pgx.Row) error {
		return row.Scan(&u.Active, &u.Queued, &u.GPUsInUse, &u.GPUsHeld)
	})
	if window <= 0 {
		return
	}
	b.Queue(`SELECT started_at, ended_at, gpus FROM job_runs
		WHERE unix_user = $1 AND gpus > 0 AND (ended_at IS NULL OR ended_at > $2) AND started_at < $3`,
		user, at.Add(-window), at).Query(func(rows pgx.Rows) error {
		var err error
		u.Runs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (quota.Run, error) {
			var r quota.Run
			err := row.Scan(&r.Start, &r.End, &r.GPUs)
			return r, err
		})
		return err
	})
}

// UserGroups returns the groups recorded with Unix account user's latest job (none
// when the user has no job): the group limits of an admin's usage query.
func (s *Store) UserGroups(ctx context.Context, user string) ([]string, error) {
	var groups []string
	err := s.Pool.QueryRow(ctx, `SELECT owner_groups FROM jobs WHERE unix_user = $1 ORDER BY created_at DESC LIMIT 1`, user).Scan(&groups)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return groups, translate(err, "usage")
}

// inRun reports whether a job in s is running on a node (a run is open).
func inRun(s job.State) bool { return s == job.Running || s == job.Pausing }

// recordRun writes the run side of transition c of job id at now: a run opens when
// the job starts running and closes when it leaves running and pausing (requeue,
// pause, end); a job that went from queued to its end between two polls gets the
// closed run Slurm reported, when it reported a start. Times are Slurm's where the
// change carries them (never after now, never before the job was created), else now.
func recordRun(ctx context.Context, tx pgx.Tx, id string, c job.Change, now time.Time) error {
	at := func(t time.Time) time.Time {
		if t.IsZero() || t.After(now) {
			return now
		}
		return t
	}
	var err error
	switch {
	case inRun(c.To) && !inRun(c.From):
		_, err = tx.Exec(ctx, `INSERT INTO job_runs (job_id, run, unix_user, cluster, gpus, started_at)
			SELECT id, coalesce((SELECT max(run) FROM job_runs WHERE job_id = $1), 0) + 1, unix_user, cluster, gpus, greatest($2, created_at)
			FROM jobs WHERE id = $1 ON CONFLICT DO NOTHING`, id, at(c.RunStart))
	case inRun(c.From) && !inRun(c.To):
		_, err = tx.Exec(ctx, `UPDATE job_runs SET ended_at = greatest(started_at, $2) WHERE job_id = $1 AND ended_at IS NULL`, id, at(c.RunEnd))
	case c.From == job.Queued && c.To.Terminal() && !c.RunStart.IsZero():
		_, err = tx.Exec(ctx, `INSERT INTO job_runs (job_id, run, unix_user, cluster, gpus, started_at, ended_at)
			SELECT id, coalesce((SELECT max(run) FROM job_runs WHERE job_id = $1), 0) + 1, unix_user, cluster, gpus,
				greatest($2, created_at), greatest($2, created_at, $3)
			FROM jobs WHERE id = $1 ON CONFLICT DO NOTHING`, id, at(c.RunStart), at(c.RunEnd))
	}
	return err
}

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
// GPU-holding jobs, and the runs that overlap lim's window ending now (the user's,
// whatever the limits, and those of each of lim's pools).
func (s *Store) Usage(ctx context.Context, user string, lim quota.Limits) (quota.Usage, error) {
	var u quota.Usage
	b := &pgx.Batch{}
	queueUsage(b, &u, user, s.now(), lim.Window, lim.Pools)
	err := s.Pool.SendBatch(ctx, b).Close()
	return u, translate(err, "usage")
}

// queueUsage adds to b (one round trip with whatever else b holds) the count of user's
// jobs (jobs_user_live) and, for a window > 0, the runs in the window ending at: the
// user's (job_runs_user_ended, bounded by what the limits let a user run in one
// window) and each pool group's (job_runs_ended, then the job's groups). u is filled
// when the batch runs.
func queueUsage(b *pgx.Batch, u *quota.Usage, user string, at time.Time, window time.Duration, pools []quota.Pool) {
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
	from := at.Add(-window)
	b.Queue(`SELECT started_at, ended_at, gpus FROM job_runs
		WHERE unix_user = $1 AND gpus > 0 AND (ended_at IS NULL OR ended_at > $2) AND started_at < $3`,
		user, from, at).Query(func(rows pgx.Rows) (err error) {
		u.Runs, err = collectRuns(rows)
		return err
	})
	for _, p := range pools {
		b.Queue(`SELECT r.started_at, r.ended_at, r.gpus FROM job_runs r JOIN jobs j ON j.id = r.job_id
			WHERE $1 = ANY(j.owner_groups) AND r.gpus > 0 AND (r.ended_at IS NULL OR r.ended_at > $2) AND r.started_at < $3`,
			p.Group, from, at).Query(func(rows pgx.Rows) error {
			runs, err := collectRuns(rows)
			if u.PoolRuns == nil {
				u.PoolRuns = map[string][]quota.Run{}
			}
			u.PoolRuns[p.Group] = runs
			return err
		})
	}
}

func collectRuns(rows pgx.Rows) ([]quota.Run, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (quota.Run, error) {
		var r quota.Run
		err := row.Scan(&r.Start, &r.End, &r.GPUs)
		return r, err
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

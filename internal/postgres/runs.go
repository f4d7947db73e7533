package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ftgate/ftgate/internal/job"
)

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

package postgres

import (
	"context"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// SetPinned pins (or unpins) a job: a pinned job's files outlive the retention period.
func (s *Store) SetPinned(ctx context.Context, id string, pinned bool) error {
	if !ValidID(id) {
		return job.Errorf(job.ENotFound, "job %q not found", id)
	}
	tag, err := s.Pool.Exec(ctx, `UPDATE jobs SET pinned = $2 WHERE id = $1`, id, pinned)
	if err == nil && tag.RowsAffected() == 0 {
		return job.Errorf(job.ENotFound, "job %s not found", id)
	}
	return translate(err, "job "+id)
}

// Pinned reports whether job id is pinned and when its files were purged (nil: not).
func (s *Store) Pinned(ctx context.Context, id string) (bool, *time.Time, error) {
	if !ValidID(id) {
		return false, nil, job.Errorf(job.ENotFound, "job %q not found", id)
	}
	var pinned bool
	var purged *time.Time
	err := s.Pool.QueryRow(ctx, `SELECT pinned, artifacts_purged_at FROM jobs WHERE id = $1`, id).Scan(&pinned, &purged)
	return pinned, purged, translate(err, "job "+id)
}

// Expired returns up to limit finished, unpinned jobs of cluster whose files were not
// purged yet and that ended before cutoff, oldest first.
func (s *Store) Expired(ctx context.Context, cluster string, cutoff time.Time, limit int) ([]job.Job, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+jobCols+` FROM jobs WHERE cluster = $1
		AND state IN `+terminalList+` AND artifacts_purged_at IS NULL AND NOT pinned
		AND job_dir <> '' AND ended_at < $2 ORDER BY ended_at LIMIT $3`, cluster, cutoff, limit)
	if err != nil {
		return nil, translate(err, "jobs")
	}
	jobs, err := collectJobs(rows)
	return jobs, translate(err, "jobs")
}

// Rotating returns the jobs of cluster whose checkpoints the gateway rotates: not
// purged, with a job directory, live or ended after since.
func (s *Store) Rotating(ctx context.Context, cluster string, since time.Time, limit int) ([]job.Job, error) {
	rows, err := s.Pool.Query(ctx, `SELECT `+jobCols+` FROM jobs WHERE cluster = $1
		AND artifacts_purged_at IS NULL AND job_dir <> '' AND state <> 'submitting'
		AND (state <> ALL($4) OR ended_at >= $2)
		ORDER BY created_at LIMIT $3`, cluster, since, limit, terminalStates)
	if err != nil {
		return nil, translate(err, "jobs")
	}
	jobs, err := collectJobs(rows)
	return jobs, translate(err, "jobs")
}

// MarkPurged records that job id's directory was deleted.
func (s *Store) MarkPurged(ctx context.Context, id string, at time.Time) error {
	_, err := s.Pool.Exec(ctx, `UPDATE jobs SET artifacts_purged_at = $2 WHERE id = $1`, id, at)
	return translate(err, "job "+id)
}

package postgres

import (
	"context"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

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

package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ftgate/ftgate/internal/job"
)

type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// appendEvent adds an event to a job's log, bumps its per-job event id and queues a
// NOTIFY that Postgres delivers on commit. The event's time is clock_timestamp() at
// the insert, taken while the job row is locked, so within a job event times rise
// with ids (the all-jobs stream resumes by time; see event.Feed). The webhook
// deliveries the event triggers join the outbox in the same transaction.
func appendEvent(ctx context.Context, tx execer, j job.Job, kind string, data any) (int64, error) {
	sql, args, err := eventStatement(j, kind, data)
	if err != nil {
		return 0, err
	}
	var id int64
	var at time.Time
	if err := tx.QueryRow(ctx, sql, args...).Scan(&id, &at, new(bool)); err != nil {
		return 0, err
	}
	if err := enqueueWebhooks(ctx, tx, j, kind, id, at, data); err != nil {
		return 0, err
	}
	return id, nil
}

// eventStatement is appendEvent's event as one statement (one round trip, or part of
// a batch): it bumps the job's event id (locking the job row), inserts the event at
// clock_timestamp() and queues the NOTIFY with the new id. It returns the id, the
// time and a bool to discard. The webhook deliveries are not in it.
func eventStatement(j job.Job, kind string, data any) (string, []any, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return "", nil, fmt.Errorf("encode event: %w", err)
	}
	return `WITH n AS (UPDATE jobs SET last_event_id = last_event_id + 1 WHERE id = $1 RETURNING last_event_id),
		e AS (INSERT INTO job_events (job_id, id, kind, state, data, at)
			SELECT $1, last_event_id, $2, $3, $4, clock_timestamp() FROM n RETURNING id, at)
		SELECT id, at, pg_notify($5, json_build_object('job_id', $1::text, 'event_id', id, 'owner', $6::text, 'user', $7::text,
			'kind', $2::text, 'state', $3::text)::text) IS NULL FROM e`,
		[]any{j.ID, kind, string(j.State), b, Channel, j.OwnerSubject, j.User}, nil
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
		progress_error = $10, progress_at = $11, progress_lr = $12, progress_gpus = $13, progress_eval_loss = $14
		WHERE id = $1 AND (progress_at IS DISTINCT FROM $11 OR progress_step <> $3 OR progress_phase <> $2
			OR progress_gpus IS DISTINCT FROM $13)
		RETURNING `+jobCols, id, p.Phase, p.Step, p.TotalSteps, p.Epoch, p.Loss, p.TokensPerSecond, p.ETASeconds,
		p.LatestCheckpoint, p.Error, p.UpdatedAt, p.LearningRate, gpusArg(p.GPUs), p.EvalLoss))
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
	return scanEvents(rows)
}

// EventsAfter returns at most limit events of every job (owner "") or of owner's
// jobs whose time is after after, leaving out those of a job in seen up to its id
// there; oldest first (ties by job and per-job id).
func (s *Store) EventsAfter(ctx context.Context, owner string, after time.Time, seen map[string]int64, limit int) ([]job.Event, error) {
	if limit <= 0 {
		limit = 1000
	}
	ids, lasts := make([]string, 0, len(seen)), make([]int64, 0, len(seen))
	for id, last := range seen {
		if ValidID(id) {
			ids, lasts = append(ids, id), append(lasts, last)
		}
	}
	rows, err := s.Pool.Query(ctx, `SELECT e.job_id::text, e.id, e.kind, e.state, e.data, e.at FROM job_events e
		JOIN jobs j ON j.id = e.job_id
		LEFT JOIN unnest($3::uuid[], $4::bigint[]) AS s(job_id, last) ON s.job_id = e.job_id
		WHERE e.at > $1 AND ($2 = '' OR j.owner_subject = $2) AND e.id > COALESCE(s.last, 0)
		ORDER BY e.at, e.job_id, e.id LIMIT $5`, after, owner, ids, lasts, limit)
	if err != nil {
		return nil, translate(err, "events")
	}
	return scanEvents(rows)
}

// DBNow is the database's clock, the time base of event times.
func (s *Store) DBNow(ctx context.Context) (time.Time, error) {
	var t time.Time
	err := s.Pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&t)
	return t, translate(err, "clock")
}

func scanEvents(rows pgx.Rows) ([]job.Event, error) {
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

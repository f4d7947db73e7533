package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ftgate/ftgate/internal/job"
)

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

-- Search and sort for GET /api/jobs (docs/api.md): the latest eval loss beside the
-- train loss, and one index per range List reads, each also behind owner_subject for
-- a user's own list.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS progress_eval_loss double precision;
-- sort=loss|eval_loss: the jobs with a value by (value, id), then those without by id.
CREATE INDEX IF NOT EXISTS jobs_loss ON jobs (progress_loss, id);
CREATE INDEX IF NOT EXISTS jobs_owner_loss ON jobs (owner_subject, progress_loss, id);
CREATE INDEX IF NOT EXISTS jobs_eval_loss ON jobs (progress_eval_loss, id);
CREATE INDEX IF NOT EXISTS jobs_owner_eval_loss ON jobs (owner_subject, progress_eval_loss, id);
-- sort=duration: ended jobs by their fixed duration; running ones by start, earliest
-- (longest) first in descending order; never started ones by id.
CREATE INDEX IF NOT EXISTS jobs_ended_duration ON jobs ((ended_at - started_at), id)
    WHERE started_at IS NOT NULL AND ended_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_owner_ended_duration ON jobs (owner_subject, (ended_at - started_at), id)
    WHERE started_at IS NOT NULL AND ended_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_running_started ON jobs (started_at DESC, id)
    WHERE started_at IS NOT NULL AND ended_at IS NULL;
CREATE INDEX IF NOT EXISTS jobs_owner_running_started ON jobs (owner_subject, started_at DESC, id)
    WHERE started_at IS NOT NULL AND ended_at IS NULL;
CREATE INDEX IF NOT EXISTS jobs_unstarted ON jobs (id) WHERE started_at IS NULL;
CREATE INDEX IF NOT EXISTS jobs_owner_unstarted ON jobs (owner_subject, id) WHERE started_at IS NULL;
-- q=: a substring of the name (the model has jobs_model_trgm).
CREATE INDEX IF NOT EXISTS jobs_name_trgm ON jobs USING gin (name gin_trgm_ops);

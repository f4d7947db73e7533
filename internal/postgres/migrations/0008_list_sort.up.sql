-- Search and sort for GET /api/jobs: the latest eval loss beside the train loss, and
-- keyset indexes for sort=loss|eval_loss (jobs without a value sort last in both
-- directions: the list reads the non-NULL range, then the NULL range by id) and for
-- q= (substring of name or model, trigram).
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS progress_eval_loss double precision;
CREATE INDEX IF NOT EXISTS jobs_loss ON jobs (progress_loss, id);
CREATE INDEX IF NOT EXISTS jobs_owner_loss ON jobs (owner_subject, progress_loss, id);
CREATE INDEX IF NOT EXISTS jobs_eval_loss ON jobs (progress_eval_loss, id);
CREATE INDEX IF NOT EXISTS jobs_owner_eval_loss ON jobs (owner_subject, progress_eval_loss, id);
CREATE INDEX IF NOT EXISTS jobs_name_trgm ON jobs USING gin (name gin_trgm_ops);

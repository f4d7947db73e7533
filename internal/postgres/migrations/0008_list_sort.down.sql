DROP INDEX IF EXISTS jobs_name_trgm;
DROP INDEX IF EXISTS jobs_owner_eval_loss;
DROP INDEX IF EXISTS jobs_eval_loss;
DROP INDEX IF EXISTS jobs_owner_loss;
DROP INDEX IF EXISTS jobs_loss;
ALTER TABLE jobs DROP COLUMN IF EXISTS progress_eval_loss;

-- A job's own webhook (the spec's notify.webhook): an endpoint tied to one job. It
-- hears only that job's events, is not counted against the owner's endpoint limit
-- nor listed with the registered ones, and goes with its job.
ALTER TABLE webhook_endpoints ADD COLUMN job_id uuid REFERENCES jobs (id) ON DELETE CASCADE;
CREATE INDEX webhook_endpoints_job ON webhook_endpoints (job_id) WHERE job_id IS NOT NULL;

-- Quotas (docs/design.md, "Quotas"): the GPUs a job holds in all (per node × nodes),
-- its owner's groups when it was submitted (group limits of a resume or an admin's
-- usage query), and one row per run the gateway saw Slurm run, for GPU-hours.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS gpus integer NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS owner_groups text[] NOT NULL DEFAULT '{}';
UPDATE jobs SET gpus = (spec->'resources'->>'gpus')::int * greatest(coalesce((spec->'resources'->>'nodes')::int, 1), 1)
    WHERE coalesce((spec->'resources'->>'gpus')::int, 0) > 0;
-- Every submission counts its user's unfinished jobs.
CREATE INDEX IF NOT EXISTS jobs_user_live ON jobs (unix_user, state) WHERE state NOT IN ('succeeded','failed','cancelled');

-- A run starts when the job is seen running and ends when it leaves running/pausing
-- (requeue, pause, end); a restart is a new run. At most one open run per job.
CREATE TABLE job_runs (
    job_id     uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    run        integer NOT NULL,
    unix_user  text NOT NULL,
    cluster    text NOT NULL,
    gpus       integer NOT NULL,
    started_at timestamptz NOT NULL,
    ended_at   timestamptz,
    PRIMARY KEY (job_id, run),
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE UNIQUE INDEX job_runs_open ON job_runs (job_id) WHERE ended_at IS NULL;
-- A user's runs that overlap a window: open ones, or ended after its start.
CREATE INDEX job_runs_user_ended ON job_runs (unix_user, ended_at);

-- Jobs that ran before this migration: one run each, from their start to their end
-- (or their last change, for a job that is queued again after running).
INSERT INTO job_runs (job_id, run, unix_user, cluster, gpus, started_at, ended_at)
SELECT id, 1, unix_user, cluster, gpus, started_at,
       CASE WHEN state IN ('running', 'pausing') THEN NULL ELSE greatest(coalesce(ended_at, updated_at), started_at) END
FROM jobs WHERE started_at IS NOT NULL;

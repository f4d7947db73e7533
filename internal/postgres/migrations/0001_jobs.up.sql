CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;

CREATE TABLE jobs (
    id                  uuid PRIMARY KEY,
    owner_subject       text NOT NULL,
    unix_user           text NOT NULL,
    cluster             text NOT NULL,
    name                text NOT NULL DEFAULT '',
    model               text NOT NULL,
    spec                jsonb NOT NULL,
    spec_hash           text NOT NULL,
    state               text NOT NULL CHECK (state IN ('submitting','queued','running','pausing','paused','succeeded','failed','cancelled')),
    slurm_id            text NOT NULL DEFAULT '',
    slurm_state         text NOT NULL DEFAULT '',
    reason              text NOT NULL DEFAULT '',
    restart_count       integer NOT NULL DEFAULT 0,
    idempotency_key     text,
    job_dir             text NOT NULL DEFAULT '',
    submit_attempts     integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    pause_requested_at  timestamptz,
    last_seen_at        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    ended_at            timestamptz,
    progress_phase      text NOT NULL DEFAULT '',
    progress_step       bigint NOT NULL DEFAULT 0,
    progress_total      bigint NOT NULL DEFAULT 0,
    progress_epoch      double precision NOT NULL DEFAULT 0,
    progress_loss       double precision,
    progress_tps        double precision NOT NULL DEFAULT 0,
    progress_eta        double precision,
    progress_checkpoint text NOT NULL DEFAULT '',
    progress_error      text NOT NULL DEFAULT '',
    progress_at         timestamptz,
    last_event_id       bigint NOT NULL DEFAULT 0
);

-- Idempotency-Key is unique per owner.
CREATE UNIQUE INDEX jobs_idempotency ON jobs (owner_subject, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- List filters; every list is ordered newest first with (created_at, id) as the keyset.
CREATE INDEX jobs_owner_created ON jobs (owner_subject, created_at DESC, id DESC);
CREATE INDEX jobs_created ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_user_created ON jobs (unix_user, created_at DESC, id DESC);
CREATE INDEX jobs_state_created ON jobs (state, created_at DESC, id DESC);
CREATE INDEX jobs_cluster_created ON jobs (cluster, created_at DESC, id DESC);
CREATE INDEX jobs_model_trgm ON jobs USING gin (model gin_trgm_ops);
-- The reconciler and the submitter read only live jobs.
CREATE INDEX jobs_live ON jobs (cluster, state) WHERE state NOT IN ('succeeded','failed','cancelled');
CREATE INDEX jobs_submitting ON jobs (next_attempt_at) WHERE state = 'submitting';

-- Append-only event log: state transitions and progress points. id is monotonic per
-- job (jobs.last_event_id), so a stream resumes from Last-Event-ID.
CREATE TABLE job_events (
    job_id  uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    id      bigint NOT NULL,
    kind    text NOT NULL CHECK (kind IN ('state','progress')),
    state   text NOT NULL DEFAULT '',
    data    jsonb NOT NULL DEFAULT '{}',
    at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, id)
);

-- The reconciler's heartbeat per cluster, for /api/system/status.
CREATE TABLE reconciler_runs (
    cluster     text PRIMARY KEY,
    ran_at      timestamptz NOT NULL,
    duration_ms double precision NOT NULL,
    error       text NOT NULL DEFAULT ''
);

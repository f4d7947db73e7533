-- Artifact retention: a pinned job keeps its files past the retention period;
-- artifacts_purged_at records when the gateway deleted the job directory.
ALTER TABLE jobs ADD COLUMN pinned boolean NOT NULL DEFAULT false;
ALTER TABLE jobs ADD COLUMN artifacts_purged_at timestamptz;
CREATE INDEX jobs_retention ON jobs (cluster, ended_at)
    WHERE state IN ('succeeded','failed','cancelled') AND artifacts_purged_at IS NULL AND NOT pinned;

DELETE FROM job_events WHERE kind = 'checkpoint';
ALTER TABLE job_events DROP CONSTRAINT IF EXISTS job_events_kind_check;
ALTER TABLE job_events ADD CONSTRAINT job_events_kind_check CHECK (kind IN ('state','progress'));

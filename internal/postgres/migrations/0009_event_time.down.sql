DROP INDEX IF EXISTS job_events_at;

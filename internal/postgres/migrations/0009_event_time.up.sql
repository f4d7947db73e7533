-- The all-jobs stream resumes by event time (see internal/event.Feed): index it.
CREATE INDEX job_events_at ON job_events (at, job_id, id);

DROP INDEX IF EXISTS job_runs_ended;

-- Group budgets (limits.group_budgets): a pool's runs in a window are found by their
-- end (open or ended after the window's start), then filtered by the job's groups.
CREATE INDEX IF NOT EXISTS job_runs_ended ON job_runs (ended_at);

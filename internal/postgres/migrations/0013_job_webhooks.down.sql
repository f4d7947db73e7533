DELETE FROM webhook_endpoints WHERE job_id IS NOT NULL;
ALTER TABLE webhook_endpoints DROP COLUMN IF EXISTS job_id;

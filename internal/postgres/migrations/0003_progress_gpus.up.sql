-- Learning rate and the latest GPU sample (gpu.json) beside the other progress columns.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS progress_lr double precision;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS progress_gpus jsonb;

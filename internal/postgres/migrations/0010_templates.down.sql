ALTER TABLE jobs DROP COLUMN IF EXISTS template_name,
    DROP COLUMN IF EXISTS template_version,
    DROP COLUMN IF EXISTS template_owner;
DROP TABLE IF EXISTS template_versions;
DROP TABLE IF EXISTS templates;

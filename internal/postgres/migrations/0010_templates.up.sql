-- Job templates (docs/design.md, "Templates"): a named, versioned partial spec with an
-- owner and a visibility. One row per template, one per version of it.
CREATE TABLE templates (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_subject  text NOT NULL,
    owner_user     text NOT NULL,
    name           text NOT NULL,
    visibility     text NOT NULL CHECK (visibility IN ('private', 'shared')),
    latest_version integer NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
-- A name is unique among one owner's templates and among the shared ones; the first
-- index also orders an owner's templates by name for the list.
CREATE UNIQUE INDEX templates_owner_name ON templates (owner_subject, name);
CREATE UNIQUE INDEX templates_shared_name ON templates (name) WHERE visibility = 'shared';

CREATE TABLE template_versions (
    template_id bigint NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    version     integer NOT NULL CHECK (version > 0),
    spec        jsonb NOT NULL,
    from_job    text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (template_id, version)
);

-- The template version a job was started from ('' and 0: none).
ALTER TABLE jobs ADD COLUMN template_name text NOT NULL DEFAULT '',
    ADD COLUMN template_version integer NOT NULL DEFAULT 0,
    ADD COLUMN template_owner text NOT NULL DEFAULT '';

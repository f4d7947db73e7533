-- Signed webhooks (internal/webhook). An endpoint is a user's receiver of their jobs'
-- events; its secret signs the deliveries (HMAC needs it in the clear).
CREATE TABLE webhook_endpoints (
    id            uuid PRIMARY KEY,
    owner_subject text NOT NULL,
    unix_user     text NOT NULL,
    url           text NOT NULL CHECK (length(url) <= 2048),
    events        text[] NOT NULL CHECK (cardinality(events) > 0),
    secret        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_owner ON webhook_endpoints (owner_subject, created_at, id);

-- The outbox: one row per event and endpoint, inserted in the transaction that writes
-- the job event (appendEvent), so an event that committed is delivered even when the
-- gateway dies before sending. next_attempt_at is NULL once the delivery is done:
-- delivered (delivered_at set) or failed (attempts exhausted).
CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    job_id          uuid NOT NULL,
    job_event_id    bigint NOT NULL,
    event           text NOT NULL,
    payload         jsonb NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    last_attempt_at timestamptz,
    last_status     integer NOT NULL DEFAULT 0,
    last_error      text NOT NULL DEFAULT '',
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL,
    UNIQUE (endpoint_id, job_id, job_event_id)
);
-- The worker's claim: due deliveries, oldest first.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
-- The delivery log, newest first, and its pruning.
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_done ON webhook_deliveries (created_at) WHERE next_attempt_at IS NULL;

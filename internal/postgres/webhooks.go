package postgres

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/webhook"
)

// enqueueWebhooks adds to the outbox, in the transaction of the job event it follows
// (appendEvent), one delivery of the event's webhook event per endpoint of the job's
// owner that subscribed to it.
func enqueueWebhooks(ctx context.Context, tx execer, j job.Job, kind string, eventID int64, at time.Time, data any) error {
	ev := webhook.EventFor(kind, j.State)
	if ev == "" {
		return nil
	}
	payload, err := json.Marshal(webhook.NewBody(ev, at, j, data))
	if err != nil {
		return fmt.Errorf("encode webhook body: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO webhook_deliveries (endpoint_id, job_id, job_event_id, event, payload, next_attempt_at, created_at)
		SELECT id, $2, $3, $4, $5, $6, $6 FROM webhook_endpoints
		WHERE owner_subject = $1 AND $4 = ANY(events) AND (job_id IS NULL OR job_id = $2)
		ON CONFLICT DO NOTHING`, j.OwnerSubject, j.ID, eventID, ev, payload, at)
	return err
}

const endpointCols = `id::text, owner_subject, unix_user, url, events, created_at, coalesce(job_id::text, '')`

func scanEndpoint(row pgx.Row) (webhook.Endpoint, error) {
	var e webhook.Endpoint
	err := row.Scan(&e.ID, &e.OwnerSubject, &e.User, &e.URL, &e.Events, &e.CreatedAt, &e.JobID)
	return e, err
}

// CreateEndpoint stores e (with its secret) and returns it. It fails with ETooMany
// when the owner already has max endpoints (0: no limit).
func (s *Store) CreateEndpoint(ctx context.Context, e webhook.Endpoint, max int) (webhook.Endpoint, error) {
	if e.ID == "" {
		e.ID = NewID()
	}
	var out webhook.Endpoint
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		if max > 0 {
			// Serialise one owner's registrations so the limit cannot race.
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('ftgate.webhooks:' || $1, 0))`, e.OwnerSubject); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM webhook_endpoints WHERE owner_subject = $1 AND job_id IS NULL`, e.OwnerSubject).Scan(&n); err != nil {
				return err
			}
			if n >= max {
				return job.Errorf(job.ETooMany, "you have %d webhook endpoints, the limit is %d; remove one first (ftctl webhook rm ID)", n, max)
			}
		}
		var err error
		out, err = scanEndpoint(tx.QueryRow(ctx, `INSERT INTO webhook_endpoints (id, owner_subject, unix_user, url, events, secret, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, now()) RETURNING `+endpointCols,
			e.ID, e.OwnerSubject, e.User, e.URL, e.Events, e.Secret))
		return err
	})
	if err != nil {
		return webhook.Endpoint{}, translate(err, "webhook")
	}
	out.Secret = e.Secret
	return out, nil
}

// Endpoint returns the endpoint with id (without its secret).
func (s *Store) Endpoint(ctx context.Context, id string) (webhook.Endpoint, error) {
	if !ValidID(id) {
		return webhook.Endpoint{}, job.Errorf(job.ENotFound, "webhook %q not found", id)
	}
	e, err := scanEndpoint(s.Pool.QueryRow(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE id = $1`, id))
	return e, translate(err, "webhook "+id)
}

// Endpoints returns one page of owner's registered endpoints (jobs' own are found
// from their jobs), newest first, and the cursor of the next page ("" at the end).
func (s *Store) Endpoints(ctx context.Context, owner, cursor string, limit int) ([]webhook.Endpoint, string, error) {
	at, id, err := decodeLogCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	limit = pageLimit(limit)
	rows, err := s.Pool.Query(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints
		WHERE owner_subject = $1 AND job_id IS NULL AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
		ORDER BY created_at DESC, id DESC LIMIT $4`, owner, at, id, limit+1)
	if err != nil {
		return nil, "", translate(err, "webhooks")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (webhook.Endpoint, error) { return scanEndpoint(r) })
	if err != nil {
		return nil, "", translate(err, "webhooks")
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = encodeLogCursor(out[limit-1].CreatedAt, out[limit-1].ID)
	}
	return out, next, nil
}

// DeleteEndpoint removes the endpoint with id and its delivery log; pending
// deliveries are not sent.
func (s *Store) DeleteEndpoint(ctx context.Context, id string) error {
	if !ValidID(id) {
		return job.Errorf(job.ENotFound, "webhook %q not found", id)
	}
	tag, err := s.Pool.Exec(ctx, `DELETE FROM webhook_endpoints WHERE id = $1`, id)
	if err != nil {
		return translate(err, "webhook "+id)
	}
	if tag.RowsAffected() == 0 {
		return job.Errorf(job.ENotFound, "webhook %s not found", id)
	}
	return nil
}

const deliveryCols = `id::text, endpoint_id::text, job_id::text, event, attempts, last_status, last_error,
 last_attempt_at, next_attempt_at, delivered_at, created_at`

func scanDelivery(row pgx.Row) (webhook.Delivery, error) {
	var d webhook.Delivery
	err := row.Scan(&d.ID, &d.EndpointID, &d.JobID, &d.Event, &d.Attempts, &d.LastStatus, &d.LastError,
		&d.LastAttemptAt, &d.NextAttemptAt, &d.DeliveredAt, &d.CreatedAt)
	switch {
	case d.DeliveredAt != nil:
		d.State = webhook.DeliveryDelivered
	case d.NextAttemptAt == nil:
		d.State = webhook.DeliveryFailed
	default:
		d.State = webhook.DeliveryPending
	}
	return d, err
}

// Deliveries returns one page of an endpoint's delivery log, newest first, and the
// cursor of the next page ("" at the end).
func (s *Store) Deliveries(ctx context.Context, endpointID, cursor string, limit int) ([]webhook.Delivery, string, error) {
	if !ValidID(endpointID) {
		return nil, "", job.Errorf(job.ENotFound, "webhook %q not found", endpointID)
	}
	at, id, err := decodeLogCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	limit = pageLimit(limit)
	rows, err := s.Pool.Query(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries
		WHERE endpoint_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid))
		ORDER BY created_at DESC, id DESC LIMIT $4`, endpointID, at, id, limit+1)
	if err != nil {
		return nil, "", translate(err, "deliveries")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (webhook.Delivery, error) { return scanDelivery(r) })
	if err != nil {
		return nil, "", translate(err, "deliveries")
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = encodeLogCursor(out[limit-1].CreatedAt, out[limit-1].ID)
	}
	return out, next, nil
}

// interruptedAttempt is the last error of a claimed attempt until its result is
// recorded: what the log shows when the gateway died during it.
const interruptedAttempt = "attempt in progress, or interrupted (the gateway stopped before it recorded an answer)"

// ClaimDeliveries leases up to limit due deliveries (FOR UPDATE SKIP LOCKED, so
// replicas share the outbox): it counts the attempt and pushes next_attempt_at by
// lease, so no other worker sends them meanwhile. A crash leaves them due again once
// the lease ends: delivery is at least once.
func (s *Store) ClaimDeliveries(ctx context.Context, limit int, lease time.Duration) ([]webhook.Outgoing, error) {
	rows, err := s.Pool.Query(ctx, `UPDATE webhook_deliveries d SET attempts = d.attempts + 1,
		next_attempt_at = clock_timestamp() + $2::bigint * interval '1 microsecond',
		last_attempt_at = clock_timestamp(), last_status = 0, last_error = $3
		FROM webhook_endpoints e
		WHERE e.id = d.endpoint_id AND d.id IN (SELECT id FROM webhook_deliveries
			WHERE next_attempt_at <= clock_timestamp() ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
		RETURNING d.id::text, d.endpoint_id::text, e.url, e.secret, d.event, d.attempts, d.payload::text`,
		limit, lease.Microseconds(), interruptedAttempt)
	if err != nil {
		return nil, translate(err, "deliveries")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (webhook.Outgoing, error) {
		var o webhook.Outgoing
		var payload string
		err := r.Scan(&o.ID, &o.EndpointID, &o.URL, &o.Secret, &o.Event, &o.Attempt, &payload)
		o.Payload = []byte(payload)
		return o, err
	})
	return out, translate(err, "deliveries")
}

// RecordDelivery records the result of an attempt. A result whose attempt is no
// longer the delivery's latest (its lease ran out and another worker claimed it) or
// whose delivery was delivered meanwhile is dropped.
func (s *Store) RecordDelivery(ctx context.Context, r webhook.Result) error {
	_, err := s.Pool.Exec(ctx, `UPDATE webhook_deliveries SET last_status = $3, last_error = $4, last_attempt_at = clock_timestamp(),
		delivered_at = CASE WHEN $5 THEN clock_timestamp() END,
		next_attempt_at = CASE WHEN $5 OR $6 <= 0 THEN NULL ELSE clock_timestamp() + $6::bigint * interval '1 microsecond' END
		WHERE id = $1 AND attempts = $2 AND delivered_at IS NULL`,
		r.ID, r.Attempt, r.Status, truncateError(r.Error), r.Delivered, r.Retry.Microseconds())
	return translate(err, "delivery "+r.ID)
}

// PruneDeliveries deletes up to limit finished deliveries (delivered or failed)
// created before before and returns how many.
func (s *Store) PruneDeliveries(ctx context.Context, before time.Time, limit int) (int, error) {
	tag, err := s.Pool.Exec(ctx, `DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries
		WHERE next_attempt_at IS NULL AND created_at < $1 LIMIT $2)`, before, limit)
	if err != nil {
		return 0, translate(err, "deliveries")
	}
	return int(tag.RowsAffected()), nil
}

// PendingDeliveries counts the deliveries waiting for an attempt (the outbox's
// backlog, a gauge).
func (s *Store) PendingDeliveries(ctx context.Context) (int, error) {
	var n int
	err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE next_attempt_at IS NOT NULL`).Scan(&n)
	return n, translate(err, "deliveries")
}

func truncateError(s string) string {
	if len(s) > 500 {
		return strings.ToValidUTF8(s[:500], "") + "..."
	}
	return s
}

// MaxLogPage bounds one page of the endpoint list and the delivery log.
const MaxLogPage = 200

func pageLimit(n int) int {
	if n <= 0 {
		return 50
	}
	return min(n, MaxLogPage)
}

var errLogCursor = job.Errorf(job.EInvalid, "cursor: not a cursor of this list (pass next_cursor as it was returned)")

// encodeLogCursor is the cursor after a row of a list ordered by (created_at, id)
// descending.
func encodeLogCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixMicro(), 10) + "," + id))
}

// decodeLogCursor returns the row the cursor c points after; nil, nil for "" (the
// first page).
func decodeLogCursor(c string) (*time.Time, *string, error) {
	if c == "" {
		return nil, nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, nil, errLogCursor
	}
	us, id, ok := strings.Cut(string(b), ",")
	n, err := strconv.ParseInt(us, 10, 64)
	if !ok || err != nil || !ValidID(id) {
		return nil, nil, errLogCursor
	}
	t := time.UnixMicro(n)
	return &t, &id, nil
}

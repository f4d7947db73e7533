package postgres_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/quota"
	"github.com/ftgate/ftgate/internal/webhook"
)

func endpoint(t *testing.T, s *postgres.Store, owner string, events ...string) webhook.Endpoint {
	t.Helper()
	e, err := s.CreateEndpoint(context.Background(), webhook.Endpoint{OwnerSubject: owner, User: owner, URL: "http://127.0.0.1:9/" + owner,
		Events: events, Secret: webhook.NewSecret()}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func running(t *testing.T, s *postgres.Store, owner string) job.Job {
	t.Helper()
	ctx := context.Background()
	j, _, err := s.Create(ctx, newJob(owner, "m"), quota.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []job.Change{{From: job.Submitting, To: job.Queued, SlurmID: "1"}, {From: job.Queued, To: job.Running}} {
		if j, err = s.Transition(ctx, j.ID, c); err != nil {
			t.Fatal(err)
		}
	}
	return j
}

func deliveries(t *testing.T, s *postgres.Store, e webhook.Endpoint) []webhook.Delivery {
	t.Helper()
	ds, _, err := s.Deliveries(context.Background(), e.ID, "", 200)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// TestIntegrationWebhookOutboxInTransaction: a delivery joins the outbox in the
// transaction of the job event that triggers it, for the owner's endpoints that
// subscribed to the event only; a rolled-back transaction leaves none.
func TestIntegrationWebhookOutboxInTransaction(t *testing.T) {
	s := postgres.New(pgtest.Schema(t))
	ctx := context.Background()
	done := endpoint(t, s, "alice", webhook.EventSucceeded)
	failed := endpoint(t, s, "alice", webhook.EventFailed)
	bobs := endpoint(t, s, "bob", webhook.EventSucceeded)
	j := running(t, s, "alice")
	bad := job.Progress{Phase: "training", Step: 1}
	_, err := s.Apply(ctx, []postgres.Update{
		{ID: j.ID, Change: &job.Change{From: job.Running, To: job.Succeeded}},
		{ID: "not-a-uuid", Progress: &bad}, // fails the pass's transaction
	})
	if err == nil {
		t.Fatal("Apply with a malformed id succeeded")
	}
	if got, _ := s.Get(ctx, j.ID); got.State != job.Running || len(deliveries(t, s, done)) != 0 {
		t.Fatalf("after a rolled-back pass: job %s, %d deliveries; want running and none", got.State, len(deliveries(t, s, done)))
	}
	if _, err := s.Apply(ctx, []postgres.Update{{ID: j.ID, Change: &job.Change{From: job.Running, To: job.Succeeded, Reason: "exit 0"}}}); err != nil {
		t.Fatal(err)
	}
	ds := deliveries(t, s, done)
	if len(ds) != 1 || ds[0].Event != webhook.EventSucceeded || ds[0].JobID != j.ID || ds[0].State != webhook.DeliveryPending || ds[0].Attempts != 0 {
		t.Fatalf("deliveries of the subscribed endpoint: %+v", ds)
	}
	if n, m := len(deliveries(t, s, failed)), len(deliveries(t, s, bobs)); n != 0 || m != 0 {
		t.Errorf("unsubscribed endpoint got %d, another owner's %d deliveries", n, m)
	}
	out, err := s.ClaimDeliveries(ctx, 10, time.Minute)
	if err != nil || len(out) != 1 {
		t.Fatalf("claim: %v %v", out, err)
	}
	body, err := out[0].Body()
	var b webhook.Body
	if err != nil || json.Unmarshal(body, &b) != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	evs, _ := s.Events(ctx, j.ID, 0, 100)
	last := evs[len(evs)-1]
	if b.ID != ds[0].ID || b.Event != webhook.EventSucceeded || b.Job.ID != j.ID || b.Job.State != job.Succeeded || b.Job.Reason != "exit 0" ||
		b.Job.EndedAt == nil || !b.OccurredAt.Equal(last.At) || out[0].URL != done.URL || out[0].Secret != done.Secret || out[0].Attempt != 1 {
		t.Errorf("claimed %+v body %s; the event was %+v", out[0], body, last)
	}
}

// TestIntegrationWebhookClaims: replicas claiming at once get disjoint deliveries
// (SKIP LOCKED); a claim hides a delivery for its lease, after which (the worker
// died) it is claimed again as the next attempt; results of stale attempts are
// dropped; retries wait for their delay; the last failure is final.
func TestIntegrationWebhookClaims(t *testing.T) {
	s := postgres.New(pgtest.Schema(t))
	ctx := context.Background()
	e := endpoint(t, s, "alice", webhook.EventSucceeded, webhook.EventCancelled)
	for range 7 {
		j := running(t, s, "alice")
		if _, err := s.Transition(ctx, j.ID, job.Change{From: job.Running, To: job.Succeeded}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.PendingDeliveries(ctx); err != nil || n != 7 {
		t.Fatalf("pending %d %v, want 7", n, err)
	}
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	for _, limit := range []int{4, 10} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := s.ClaimDeliveries(ctx, limit, time.Minute)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, o := range out {
				ids = append(ids, o.ID)
			}
		}()
	}
	wg.Wait()
	slices.Sort(ids)
	if len(ids) != 7 || len(slices.Compact(slices.Clone(ids))) != 7 {
		t.Fatalf("two concurrent claims got %v, want the 7 deliveries once each", ids)
	}
	if again, _ := s.ClaimDeliveries(ctx, 10, time.Minute); len(again) != 0 {
		t.Fatalf("claimed %d leased deliveries", len(again))
	}
	a, b, c := ids[0], ids[1], ids[2]
	// a: a stale result (attempt 0) is dropped, then delivered.
	if err := s.RecordDelivery(ctx, webhook.Result{ID: a, Attempt: 0, Delivered: true, Status: 200}); err != nil {
		t.Fatal(err)
	}
	// b: failed with a short retry; c: failed for good.
	for _, r := range []webhook.Result{
		{ID: b, Attempt: 1, Status: 500, Error: "HTTP 500", Retry: 50 * time.Millisecond},
		{ID: c, Attempt: 1, Status: 0, Error: "connection refused"},
	} {
		if err := s.RecordDelivery(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	state := func(id string) webhook.Delivery {
		for _, d := range deliveries(t, s, e) {
			if d.ID == id {
				return d
			}
		}
		t.Fatalf("delivery %s not in the log", id)
		return webhook.Delivery{}
	}
	if d := state(a); d.State != webhook.DeliveryPending || d.DeliveredAt != nil || !strings.Contains(d.LastError, "interrupted") {
		t.Errorf("a after a stale result: %+v", d)
	}
	if err := s.RecordDelivery(ctx, webhook.Result{ID: a, Attempt: 1, Delivered: true, Status: 204}); err != nil {
		t.Fatal(err)
	}
	if d := state(a); d.State != webhook.DeliveryDelivered || d.DeliveredAt == nil || d.NextAttemptAt != nil || d.LastStatus != 204 || d.LastError != "" {
		t.Errorf("a delivered: %+v", d)
	}
	if d := state(c); d.State != webhook.DeliveryFailed || d.NextAttemptAt != nil || d.LastError != "connection refused" || d.Attempts != 1 {
		t.Errorf("c failed: %+v", d)
	}
	time.Sleep(100 * time.Millisecond)
	out, err := s.ClaimDeliveries(ctx, 10, 0) // lease 0: as if the worker died at once
	if err != nil || len(out) != 1 || out[0].ID != b || out[0].Attempt != 2 {
		t.Fatalf("claim after b's retry delay: %+v %v", out, err)
	}
	out, err = s.ClaimDeliveries(ctx, 10, time.Minute)
	if err != nil || len(out) != 1 || out[0].ID != b || out[0].Attempt != 3 {
		t.Fatalf("claim after b's lease ended: %+v %v", out, err)
	}
	if d := state(b); d.Attempts != 3 || d.State != webhook.DeliveryPending || d.LastStatus != 0 || !strings.Contains(d.LastError, "interrupted") {
		t.Errorf("b claimed again: %+v", d)
	}
	if n, _ := s.PendingDeliveries(ctx); n != 5 {
		t.Errorf("pending %d, want 5 (a delivered, c failed)", n)
	}
	if n, err := s.PruneDeliveries(ctx, time.Now().Add(time.Hour), 100); err != nil || n != 2 {
		t.Errorf("prune: %d %v, want the 2 finished ones", n, err)
	}
	if err := s.DeleteEndpoint(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.PendingDeliveries(ctx); n != 0 {
		t.Errorf("pending %d after the endpoint was removed, want 0", n)
	}
	if err := s.DeleteEndpoint(ctx, e.ID); job.ErrorCode(err) != job.ENotFound {
		t.Errorf("second delete: %v, want not found", err)
	}
}

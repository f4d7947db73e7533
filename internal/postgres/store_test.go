package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/quota"
	"github.com/ftgate/ftgate/internal/stacktest"
)

func newJob(owner, model string) job.Job {
	s := job.Spec{Method: "sft", Model: model, Dataset: job.Dataset{Path: "/d/train.jsonl"}}
	s.Normalize()
	return job.Job{ID: postgres.NewID(), OwnerSubject: owner, User: owner, Cluster: "dev", Spec: s, SpecHash: s.Hash()}
}

func TestIntegrationMigrations(t *testing.T) {
	st := stacktest.Require(t)
	pool, _ := pgtest.Open(t, st.PGURL, false)
	ctx := context.Background()
	// Two replicas starting at once: both succeed, the migration is applied once.
	var wg sync.WaitGroup
	results := make([][]int, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); results[i], errs[i] = postgres.MigrateUp(ctx, pool) }()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("concurrent MigrateUp: %v, %v", errs[0], errs[1])
	}
	ms, err := postgres.MigrationStatus(ctx, pool)
	if err != nil || len(ms) == 0 || ms[0].AppliedAt == nil {
		t.Fatalf("status after up: %+v, %v", ms, err)
	}
	if len(results[0])+len(results[1]) != len(ms) {
		t.Fatalf("applied %v and %v, want each of the %d migrations applied exactly once", results[0], results[1], len(ms))
	}
	last := ms[len(ms)-1].Version
	v, err := postgres.MigrateDown(ctx, pool)
	if err != nil || v != last {
		t.Fatalf("MigrateDown = %d, %v; want %d", v, err, last)
	}
	ms, _ = postgres.MigrationStatus(ctx, pool)
	if ms[len(ms)-1].AppliedAt != nil {
		t.Fatalf("migration %d still applied after down", last)
	}
	if _, err := postgres.MigrateUp(ctx, pool); err != nil {
		t.Fatalf("up after down: %v", err)
	}
}

func TestIntegrationStoreCreateAndIdempotency(t *testing.T) {
	s := postgres.New(pgtest.Schema(t))
	ctx := context.Background()
	j := newJob("alice", "builtin:tiny")
	j.IdempotencyKey = "k1"
	a, created, err := s.Create(ctx, j, quota.Limits{MaxActive: 10})
	if err != nil || !created || a.State != job.Submitting {
		t.Fatalf("Create = %+v, %v, %v", a, created, err)
	}
	j2 := j
	j2.ID = postgres.NewID()
	b, created, err := s.Create(ctx, j2, quota.Limits{MaxActive: 10})
	if err != nil || created || b.ID != a.ID {
		t.Fatalf("same key and body: got %s created=%v err=%v, want job %s", b.ID, created, err, a.ID)
	}
	j3 := newJob("alice", "builtin:tiny")
	j3.Spec.Hyperparameters.Seed = 9
	j3.SpecHash = j3.Spec.Hash()
	j3.IdempotencyKey = "k1"
	if _, _, err := s.Create(ctx, j3, quota.Limits{MaxActive: 10}); job.ErrorCode(err) != job.EConflict {
		t.Fatalf("same key, different body: %v, want conflict", err)
	}
	// Another owner may reuse the key.
	j4 := newJob("bob", "builtin:tiny")
	j4.IdempotencyKey = "k1"
	if _, created, err := s.Create(ctx, j4, quota.Limits{MaxActive: 10}); err != nil || !created {
		t.Fatalf("other owner, same key: %v %v", created, err)
	}
	// A failed insert rolls back and leaves no transaction (nor the user's lock) on a
	// pooled connection: the next creates of the user go through.
	dup := newJob("alice", "builtin:tiny")
	dup.ID = a.ID
	if _, _, err := s.Create(ctx, dup, quota.Limits{MaxActive: 10}); err == nil {
		t.Fatal("a second job with the same id was created")
	}
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for range 6 { // more than one connection's worth: any held lock would block one
		if _, _, err := s.Create(tctx, newJob("alice", "builtin:tiny"), quota.Limits{MaxActive: 10}); err != nil {
			t.Fatalf("create after a failed one: %v", err)
		}
	}
	if _, err := s.Get(ctx, postgres.NewID()); job.ErrorCode(err) != job.ENotFound {
		t.Fatalf("Get(unknown) = %v", err)
	}
	if _, err := s.Get(ctx, "nope'; drop table jobs"); job.ErrorCode(err) != job.ENotFound {
		t.Fatalf("Get(bad id) = %v", err)
	}
}

func TestIntegrationStoreQuotaRace(t *testing.T) {
	s := postgres.New(pgtest.Schema(t))
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, tooMany := 0, 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := s.Create(ctx, newJob("alice", "m"), quota.Limits{MaxActive: 3})
			mu.Lock()
			defer mu.Unlock()
			switch job.ErrorCode(err) {
			case "":
				ok++
			case job.ETooMany:
				tooMany++
			default:
				t.Errorf("Create: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 3 || tooMany != 5 {
		t.Fatalf("created %d, refused %d; want 3 and 5", ok, tooMany)
	}
}

// TestIntegrationStoreIdempotencyRace: concurrent creates with one key and body make
// one job; every caller gets it, none an error (the user's lock orders them before the
// key lookup).
func TestIntegrationStoreIdempotencyRace(t *testing.T) {
	s := postgres.New(pgtest.Schema(t))
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := map[string]int{}
	created := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := newJob("alice", "m")
			j.IdempotencyKey = "retry-1"
			out, c, err := s.Create(ctx, j, quota.Limits{})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("Create: %v", err)
				return
			}
			ids[out.ID]++
			if c {
				created++
			}
		}()
	}
	wg.Wait()
	if created != 1 || len(ids) != 1 {
		t.Fatalf("created %d jobs, answered with %d ids; want 1 and 1", created, len(ids))
	}
}

// TestIntegrationStoreQuotaCountsPaused: a paused job keeps its place in the quota,
// so pausing jobs does not make room for more; a finished one frees it.
func TestIntegrationStoreQuotaCountsPaused(t *testing.T) {
	s := postgres.New(pgtest.Schema(t))
	ctx := context.Background()
	var ids []string
	for range 2 {
		j, _, err := s.Create(ctx, newJob("alice", "m"), quota.Limits{MaxActive: 2})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	for _, c := range []job.Change{{From: job.Submitting, To: job.Queued, SlurmID: "1"}, {From: job.Queued, To: job.Paused, SetPause: true}} {
		if _, err := s.Transition(ctx, ids[0], c); err != nil {
			t.Fatal(err)
		}
	}
	if u, err := s.Usage(ctx, "alice", quota.Limits{Window: time.Hour}); err != nil || u.Active != 2 || u.Queued != 1 {
		t.Fatalf("Usage with one paused and one submitting job: %+v %v, want 2 active, 1 waiting", u, err)
	}
	if _, _, err := s.Create(ctx, newJob("alice", "m"), quota.Limits{MaxActive: 2}); job.ErrorCode(err) != job.ETooMany {
		t.Fatalf("Create over the quota with a paused job: %v, want too_many", err)
	}
	if _, err := s.Transition(ctx, ids[0], job.Change{From: job.Paused, To: job.Cancelled}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, newJob("alice", "m"), quota.Limits{MaxActive: 2}); err != nil {
		t.Fatalf("Create after a cancel: %v", err)
	}
}

func TestIntegrationStoreTransitionsAndEvents(t *testing.T) {
	s := postgres.New(pgtest.Schema(t))
	ctx := context.Background()
	j, _, err := s.Create(ctx, newJob("alice", "m"), quota.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	j, err = s.Transition(ctx, j.ID, job.Change{From: job.Submitting, To: job.Queued, SlurmID: "42", SlurmState: "PENDING"})
	if err != nil || j.State != job.Queued || j.SlurmID != "42" {
		t.Fatalf("submitting->queued: %+v %v", j, err)
	}
	// Stale expectation: the job is no longer submitting.
	if _, err := s.Transition(ctx, j.ID, job.Change{From: job.Submitting, To: job.Queued}); job.ErrorCode(err) != job.EConflict {
		t.Fatalf("stale transition: %v, want conflict", err)
	}
	// Illegal by the table.
	if _, err := s.Transition(ctx, j.ID, job.Change{From: job.Queued, To: job.Pausing}); job.ErrorCode(err) != job.EConflict {
		t.Fatalf("illegal transition: %v, want conflict", err)
	}
	j, err = s.Transition(ctx, j.ID, job.Change{From: job.Queued, To: job.Running})
	if err != nil || j.StartedAt == nil {
		t.Fatalf("queued->running: %+v %v", j, err)
	}
	loss := 1.5
	if err := s.SetProgress(ctx, j.ID, job.Progress{Phase: "training", Step: 10, TotalSteps: 100, Loss: &loss}); err != nil {
		t.Fatal(err)
	}
	// Unchanged progress adds no event.
	if err := s.SetProgress(ctx, j.ID, job.Progress{Phase: "training", Step: 10, TotalSteps: 100, Loss: &loss}); err != nil {
		t.Fatal(err)
	}
	j, err = s.Transition(ctx, j.ID, job.Change{From: job.Running, To: job.Succeeded, SlurmState: "COMPLETED"})
	if err != nil || j.EndedAt == nil || j.Progress.Step != 10 || *j.Progress.Loss != 1.5 {
		t.Fatalf("running->succeeded: %+v %v", j, err)
	}
	evs, err := s.Events(ctx, j.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for i, e := range evs {
		if e.ID != int64(i+1) {
			t.Errorf("event %d has id %d, want monotonic from 1", i, e.ID)
		}
		kinds = append(kinds, fmt.Sprintf("%s:%s", e.Kind, e.State))
	}
	want := "[state:submitting state:queued state:running progress:running state:succeeded]"
	if fmt.Sprint(kinds) != want {
		t.Fatalf("events %v, want %s", kinds, want)
	}
	evs, _ = s.Events(ctx, j.ID, 3, 0)
	if len(evs) != 2 || evs[0].ID != 4 {
		t.Fatalf("events after 3: %+v", evs)
	}
}

func TestIntegrationStoreList(t *testing.T) {
	s := postgres.New(pgtest.Schema(t))
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 25 {
		owner := "alice"
		if i%5 == 0 {
			owner = "bob"
		}
		model := "builtin:tiny"
		if i%2 == 0 {
			model = "/models/Llama-3_8B"
		}
		s.Now = func() time.Time { return base.Add(time.Duration(i) * time.Minute) }
		if _, _, err := s.Create(ctx, newJob(owner, model), quota.Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	var all []string
	cursor := ""
	for page := 0; ; page++ {
		jobs, next, err := s.List(ctx, postgres.Filter{Owner: "alice", Limit: 7, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if j.OwnerSubject != "alice" {
				t.Fatalf("filter leaked %s's job", j.OwnerSubject)
			}
			if len(all) > 0 && !j.CreatedAt.Before(time.Now()) {
				t.Fatal("bad created_at")
			}
			all = append(all, j.ID)
		}
		if next == "" {
			break
		}
		if page > 10 {
			t.Fatal("pagination does not end")
		}
		cursor = next
	}
	if len(all) != 20 {
		t.Fatalf("alice has %d jobs over all pages, want 20", len(all))
	}
	tests := []struct {
		name string
		f    postgres.Filter
		want int
	}{
		{"all", postgres.Filter{Limit: 100}, 25},
		{"user", postgres.Filter{User: "bob", Limit: 100}, 5},
		{"model substring, case-insensitive", postgres.Filter{Model: "llama-3_8", Limit: 100}, 13},
		{"model with wildcard chars is literal", postgres.Filter{Model: "%", Limit: 100}, 0},
		{"state", postgres.Filter{States: []job.State{job.Submitting}, Limit: 100}, 25},
		{"state none", postgres.Filter{States: []job.State{job.Running}, Limit: 100}, 0},
		{"date range", postgres.Filter{From: base.Add(5 * time.Minute), To: base.Add(10 * time.Minute), Limit: 100}, 5},
		{"cluster", postgres.Filter{Cluster: "other", Limit: 100}, 0},
	}
	for _, tt := range tests {
		jobs, _, err := s.List(ctx, tt.f)
		if err != nil || len(jobs) != tt.want {
			t.Errorf("%s: %d jobs, %v; want %d", tt.name, len(jobs), err, tt.want)
		}
	}
	if _, _, err := s.List(ctx, postgres.Filter{Cursor: "garbage"}); job.ErrorCode(err) != job.EInvalid {
		t.Errorf("bad cursor: %v", err)
	}
}

func TestIntegrationLeaderAndClaims(t *testing.T) {
	pool := pgtest.Schema(t)
	ctx := context.Background()
	l1, err := postgres.TryLead(ctx, pool, "dev")
	if err != nil || l1 == nil {
		t.Fatalf("first TryLead: %v %v", l1, err)
	}
	l2, err := postgres.TryLead(ctx, pool, "dev")
	if err != nil || l2 != nil {
		t.Fatalf("second TryLead while held: %v %v", l2, err)
	}
	l1.Release()
	l2, err = postgres.TryLead(ctx, pool, "dev")
	if err != nil || l2 == nil {
		t.Fatalf("TryLead after release: %v %v", l2, err)
	}
	l2.Release()

	s := postgres.New(pool)
	for range 3 {
		if _, _, err := s.Create(ctx, newJob("alice", "m"), quota.Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := s.ClaimSubmissions(ctx, 2, time.Minute)
	if err != nil || len(a) != 2 || a[0].SubmitAttempts != 1 {
		t.Fatalf("claim 1: %d jobs %v", len(a), err)
	}
	b, _ := s.ClaimSubmissions(ctx, 10, time.Minute)
	if len(b) != 1 {
		t.Fatalf("claim 2 got %d jobs, want the 1 left (others leased)", len(b))
	}
	if err := s.RetrySubmission(ctx, b[0].ID, time.Now().Add(-time.Second), "controller unreachable"); err != nil {
		t.Fatal(err)
	}
	c, _ := s.ClaimSubmissions(ctx, 10, time.Minute)
	if len(c) != 1 || c[0].SubmitAttempts != 2 || c[0].Reason != "controller unreachable" {
		t.Fatalf("claim after retry: %+v", c)
	}

	// A job created claimed by a submitter slot (submit.Slot.Claim) is leased from the
	// start: no claim takes it before the lease ends, and its attempt counts.
	held := newJob("alice", "m")
	held.SubmitAttempts, held.NextAttempt = 1, time.Now().Add(time.Minute)
	hj, _, err := s.Create(ctx, held, quota.Limits{})
	if err != nil || hj.SubmitAttempts != 1 || time.Until(hj.NextAttempt) < 50*time.Second {
		t.Fatalf("create claimed: attempts %d, next %v, %v", hj.SubmitAttempts, hj.NextAttempt, err)
	}
	if d, _ := s.ClaimSubmissions(ctx, 10, time.Minute); len(d) != 0 {
		t.Fatalf("a claim took %d jobs, among them the one created claimed", len(d))
	}
	if _, err := pool.Exec(ctx, `UPDATE jobs SET next_attempt_at = now() - interval '1 second' WHERE id = $1`, hj.ID); err != nil {
		t.Fatal(err)
	}
	e, _ := s.ClaimSubmissions(ctx, 10, time.Minute)
	if len(e) != 1 || e[0].ID != hj.ID || e[0].SubmitAttempts != 2 {
		t.Fatalf("claim after the lease: %+v, want the job at attempt 2 (its next attempt looks up its tag)", e)
	}
}

// TestIntegrationStoreProgressGPUs: the learning rate and the GPU sample are stored with
// the progress, and a new GPU sample alone is a new progress event.
func TestIntegrationStoreProgressGPUs(t *testing.T) {
	s := postgres.New(pgtest.Schema(t))
	ctx := context.Background()
	j, _, err := s.Create(ctx, newJob("alice", "m"), quota.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition(ctx, j.ID, job.Change{From: job.Submitting, To: job.Queued, SlurmID: "7"}); err != nil {
		t.Fatal(err)
	}
	lr := 5e-4
	gpus := []job.GPU{{Index: 0, Name: "H200", UtilizationPercent: 90, MemoryUsedMB: 1000, MemoryTotalMB: 143771, PowerWatts: 400.5, TemperatureC: 60}}
	p := job.Progress{Phase: "training", Step: 3, TotalSteps: 10, LearningRate: &lr, GPUs: gpus}
	for i := 0; i < 2; i++ { // the second write is unchanged: no event
		if err := s.SetProgress(ctx, j.ID, p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Get(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Progress.LearningRate == nil || *got.Progress.LearningRate != lr || !slices.Equal(got.Progress.GPUs, gpus) {
		t.Fatalf("progress read back: %+v", got.Progress)
	}
	p.GPUs = []job.GPU{{Index: 0, Name: "H200", UtilizationPercent: 40}}
	if err := s.SetProgress(ctx, j.ID, p); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Events(ctx, j.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var progress []job.Event
	for _, e := range evs {
		if e.Kind == job.EventProgress {
			progress = append(progress, e)
		}
	}
	if len(progress) != 2 {
		t.Fatalf("%d progress events, want 2", len(progress))
	}
	// A new checkpoint in the progress is an event of its own, once.
	p.LatestCheckpoint = "checkpoints/step-3"
	for i := 0; i < 2; i++ {
		p.Step += int64(i) // the second write is new progress with the same checkpoint
		if err := s.SetProgress(ctx, j.ID, p); err != nil {
			t.Fatal(err)
		}
	}
	evs, err = s.Events(ctx, j.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ckpts []string
	for _, e := range evs {
		if e.Kind == job.EventCheckpoint {
			ckpts = append(ckpts, string(e.Data))
		}
	}
	if len(ckpts) != 1 || !strings.Contains(ckpts[0], `"checkpoints/step-3"`) || !strings.Contains(ckpts[0], `"step": 3`) {
		t.Fatalf("checkpoint events %q, want one for checkpoints/step-3", ckpts)
	}
	var last job.Progress
	if err := json.Unmarshal(progress[1].Data, &last); err != nil || len(last.GPUs) != 1 || last.GPUs[0].UtilizationPercent != 40 {
		t.Fatalf("last progress event %s (%v), want the new GPU sample", progress[1].Data, err)
	}
}

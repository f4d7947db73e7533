package event

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/quota"
)

func newJob(owner string) job.Job {
	s := job.Spec{Method: "sft", Model: "tiny", Dataset: job.Dataset{Path: "/d/train.jsonl"}}
	s.Normalize()
	return job.Job{ID: postgres.NewID(), OwnerSubject: owner, User: owner, Cluster: "dev", Spec: s, SpecHash: s.Hash()}
}

// startHub runs a hub on its own pool (a replica) and waits for its LISTEN.
func startHub(t *testing.T, pool *pgxpool.Pool, cfg Config, pids chan<- uint32) *Hub {
	t.Helper()
	store := postgres.New(pool)
	cc := pool.Config().ConnConfig
	h := newHub(store, cfg, func(ctx context.Context) (*pgx.Conn, error) {
		c, err := pgx.ConnectConfig(ctx, cc.Copy())
		if err == nil && pids != nil {
			pids <- c.PgConn().PID()
		}
		return c, err
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-h.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("hub did not start listening")
	}
	return h
}

// replica returns a second pool on the same schema.
func replica(t *testing.T, pool *pgxpool.Pool) *pgxpool.Pool {
	t.Helper()
	cfg := pool.Config()
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func progress(step int64) job.Progress {
	now := time.Now().UTC()
	return job.Progress{Phase: "training", Step: step, TotalSteps: 100, UpdatedAt: &now}
}

func TestIntegrationHubAcrossReplicas(t *testing.T) {
	poolA := pgtest.Schema(t)
	poolB := replica(t, poolA)
	storeA := postgres.New(poolA)
	hubB := startHub(t, poolB, Config{}, nil)
	ctx := context.Background()

	alice, err := func() (job.Job, error) {
		j, _, err := storeA.Create(ctx, newJob("alice"), quota.Limits{})
		return j, err
	}()
	if err != nil {
		t.Fatal(err)
	}
	bob, _, err := storeA.Create(ctx, newJob("bob"), quota.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	one := hubB.Subscribe(Filter{JobID: alice.ID})
	mine := hubB.Subscribe(Filter{Owner: "alice"})
	admin := hubB.Subscribe(Filter{})
	defer one.Close()
	defer mine.Close()
	defer admin.Close()

	for step := int64(1); step <= 3; step++ {
		if err := storeA.SetProgress(ctx, alice.ID, progress(step)); err != nil {
			t.Fatal(err)
		}
	}
	if err := storeA.SetProgress(ctx, bob.ID, progress(1)); err != nil {
		t.Fatal(err)
	}
	// The creations' own notifications may still be in flight: skip event 1.
	got := recvAfter(t, one, 1, 3, 5*time.Second)
	for i, e := range got {
		if e.JobID != alice.ID || e.ID != int64(i+2) || e.Kind != job.EventProgress {
			t.Errorf("event %d = %+v, want alice's progress event %d", i, e, i+2)
		}
	}
	if got := recvAfter(t, admin, 1, 4, 5*time.Second); got[3].JobID != bob.ID {
		t.Errorf("admin's 4th event is of job %s, want bob's", got[3].JobID)
	}
	recvAfter(t, mine, 1, 3, 5*time.Second)
	time.Sleep(200 * time.Millisecond)
	if len(mine.C()) != 0 || len(one.C()) != 0 {
		t.Errorf("alice's subscriptions got extra events (bob's?): %d, %d", len(mine.C()), len(one.C()))
	}
}

// recvAfter receives n events whose id is beyond after.
func recvAfter(t *testing.T, s *Sub, after int64, n int, within time.Duration) []job.Event {
	t.Helper()
	var out []job.Event
	deadline := time.After(within)
	for len(out) < n {
		select {
		case m := <-s.C():
			if m.Event.ID > after {
				out = append(out, m.Event)
			}
		case <-s.Done():
			t.Fatalf("subscription dropped: %v", s.Err())
		case <-deadline:
			t.Fatalf("got %d of %d events within %v", len(out), n, within)
		}
	}
	return out
}

func TestIntegrationHubReconnectBackfillsOnce(t *testing.T) {
	pool := pgtest.Schema(t)
	store := postgres.New(pool)
	pids := make(chan uint32, 4)
	hub := startHub(t, replica(t, pool), Config{}, pids)
	pid := <-pids
	ctx := context.Background()
	j, _, err := store.Create(ctx, newJob("alice"), quota.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	sub := hub.Subscribe(Filter{JobID: j.ID})
	defer sub.Close()
	cur := NewCursor(store)
	var got []int64
	emit := func(e job.Event) error { got = append(got, e.ID); return nil }
	if err := cur.Backfill(ctx, j.ID, emit); err != nil {
		t.Fatal(err)
	}
	// Kill the listener's backend, write events while it is away, then watch the gap.
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	for step := int64(1); step <= 5; step++ {
		if err := store.SetProgress(ctx, j.ID, progress(step)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-sub.Gap():
	case <-time.After(10 * time.Second):
		t.Fatal("no gap signal after the listener reconnected")
	}
	if err := cur.Backfill(ctx, j.ID, emit); err != nil {
		t.Fatal(err)
	}
	// Live events after the reconnect, some of which the backfill may already hold.
	for step := int64(6); step <= 8; step++ {
		if err := store.SetProgress(ctx, j.ID, progress(step)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.After(5 * time.Second)
	for cur.Last(j.ID) < 9 {
		select {
		case m := <-sub.C():
			if err := cur.Accept(ctx, m.Event, emit); err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatalf("stuck at event %d, want 9", cur.Last(j.ID))
		}
	}
	want := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9}
	if len(got) != len(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivered %v, want %v", got, want)
		}
	}
}

func TestIntegrationHubSlowSubscriberDoesNotDelayOthers(t *testing.T) {
	pool := pgtest.Schema(t)
	store := postgres.New(pool)
	hub := startHub(t, replica(t, pool), Config{Buffer: 16}, nil)
	ctx := context.Background()
	j, _, err := store.Create(ctx, newJob("alice"), quota.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	const subscribers, events = 200, 40
	stuck := hub.Subscribe(Filter{JobID: j.ID}) // never reads
	var wg sync.WaitGroup
	lat := make(chan time.Duration, subscribers*events)
	errs := make(chan error, subscribers)
	sent := make([]time.Time, events+2)
	var sentMu sync.Mutex
	for range subscribers - 1 {
		s := hub.Subscribe(Filter{JobID: j.ID})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.Close()
			for n := 0; n < events; {
				select {
				case m := <-s.C():
					if m.Event.ID < 2 {
						continue // the creation's notification, still in flight
					}
					sentMu.Lock()
					at := sent[m.Event.ID]
					sentMu.Unlock()
					lat <- time.Since(at)
					n++
				case <-s.Done():
					errs <- s.Err()
					return
				case <-time.After(10 * time.Second):
					errs <- context.DeadlineExceeded
					return
				}
			}
		}()
	}
	for step := int64(1); step <= events; step++ {
		sentMu.Lock()
		sent[step+1] = time.Now()
		sentMu.Unlock()
		if err := store.SetProgress(ctx, j.ID, progress(step)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a reading subscriber failed: %v", err)
	}
	close(lat)
	var worst time.Duration
	n := 0
	for d := range lat {
		worst = max(worst, d)
		n++
	}
	if n != (subscribers-1)*events {
		t.Fatalf("delivered %d events, want %d", n, (subscribers-1)*events)
	}
	if worst > 3*time.Second {
		t.Errorf("slowest delivery took %v, want under 3s", worst)
	}
	select {
	case <-stuck.Done():
	default:
		t.Error("the subscriber that never reads was not dropped")
	}
	t.Logf("%d subscribers x %d events, slowest delivery %v, stats %+v", subscribers-1, events, worst, hub.Stats())
}

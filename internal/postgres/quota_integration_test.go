package postgres_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/quota"
)

// TestIntegrationRunsAndUsage: the store records a run per start it sees (Slurm's
// start and end where the change carries them, else the write's time), restarts and
// pauses included, a job that ended between two polls gets its Slurm run, and Usage
// counts jobs and the window's GPU-hours from them; Create refuses past the limits.
func TestIntegrationRunsAndUsage(t *testing.T) {
	s := postgres.New(pgtest.Schema(t))
	ctx := context.Background()
	clock := time.Now().Add(-10 * time.Hour).Truncate(time.Second)
	s.Now = func() time.Time { return clock }
	advance := func(d time.Duration) { clock = clock.Add(d) }
	gpuJob := func(gpus, nodes int) job.Job {
		j := newJob("alice", "m")
		j.Spec.Resources.GPUs, j.Spec.Resources.Nodes, j.Spec.Distributed.ProcessesPerNode = gpus, nodes, gpus
		j.SpecHash = j.Spec.Hash()
		return j
	}
	step := func(id string, c job.Change) {
		t.Helper()
		if _, err := s.Transition(ctx, id, c); err != nil {
			t.Fatalf("%s -> %s: %v", c.From, c.To, err)
		}
	}
	// a: 2 nodes × 1 GPU. Runs 1 h (Slurm says it started 5 min before the poll
	// saw it), is requeued, runs 1 h again, pauses, is resumed and ends.
	a, _, err := s.Create(ctx, gpuJob(1, 2), quota.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	step(a.ID, job.Change{From: job.Submitting, To: job.Queued, SlurmID: "1"})
	advance(10 * time.Minute)
	step(a.ID, job.Change{From: job.Queued, To: job.Running, RunStart: clock.Add(-5 * time.Minute)})
	advance(55 * time.Minute)
	step(a.ID, job.Change{From: job.Running, To: job.Queued}) // requeue: ends run 1 (1 h)
	advance(30 * time.Minute)
	step(a.ID, job.Change{From: job.Queued, To: job.Running})
	advance(30 * time.Minute)
	step(a.ID, job.Change{From: job.Running, To: job.Pausing})
	advance(30 * time.Minute)
	step(a.ID, job.Change{From: job.Pausing, To: job.Paused}) // run 2 (1 h, pausing included)
	step(a.ID, job.Change{From: job.Paused, To: job.Queued})
	advance(time.Hour)
	// Ran 30 min and ended between two polls: Slurm's start and end; a start in the
	// future (clock skew) is never recorded after the write.
	step(a.ID, job.Change{From: job.Queued, To: job.Succeeded, RunStart: clock.Add(-40 * time.Minute), RunEnd: clock.Add(-10 * time.Minute)})
	// b: 4 GPUs, running since 2 h ago (as the store's clock goes).
	b, _, err := s.Create(ctx, gpuJob(4, 1), quota.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	step(b.ID, job.Change{From: job.Submitting, To: job.Queued, SlurmID: "2"})
	step(b.ID, job.Change{From: job.Queued, To: job.Running, RunStart: clock.Add(time.Hour)})
	advance(2 * time.Hour)
	// c: queued with 1 GPU; d: a CPU job cancelled before it ran.
	c, _, err := s.Create(ctx, gpuJob(1, 1), quota.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	step(c.ID, job.Change{From: job.Submitting, To: job.Queued, SlurmID: "3"})
	d, _, err := s.Create(ctx, newJob("alice", "m"), quota.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	step(d.ID, job.Change{From: job.Submitting, To: job.Cancelled})

	u, err := s.Usage(ctx, "alice", quota.Limits{Window: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// a: 2 GPUs × (1 h + 1 h + 0.5 h) = 5; b: 4 GPUs × 2 h = 8.
	if got := u.GPUHours(24 * time.Hour); math.Abs(got-13) > 1e-6 || len(u.Runs) != 4 {
		t.Errorf("GPU-hours %v over %d runs, want 13 over 4: %+v", got, len(u.Runs), u.Runs)
	}
	if u.Active != 2 || u.Queued != 1 || u.GPUsInUse != 4 || u.GPUsHeld != 5 {
		t.Errorf("usage %+v, want 2 active (b, c), 1 waiting (c), 4 GPUs in use, 5 held", u)
	}
	// A 3.5 h window starts in the middle of a's second run: half of it, a's third
	// run and b's 8; a 3 h one starts where a's second run ended: it is not read.
	if runs := mustRuns(t, s, 210*time.Minute); math.Abs(quota.GPUHours(runs, u.At, 210*time.Minute)-10) > 1e-6 || len(runs) != 3 {
		t.Errorf("3.5 h window: %v GPU-hours over %d runs, want 10 over 3", quota.GPUHours(runs, u.At, 210*time.Minute), len(runs))
	}
	if runs := mustRuns(t, s, 3*time.Hour); math.Abs(quota.GPUHours(runs, u.At, 3*time.Hour)-9) > 1e-6 || len(runs) != 2 {
		t.Errorf("3 h window: %v GPU-hours over %d runs, want 9 over 2", quota.GPUHours(runs, u.At, 3*time.Hour), len(runs))
	}
	if u, _ := s.Usage(ctx, "bob", quota.Limits{Window: 24 * time.Hour}); u.Active != 0 || len(u.Runs) != 0 {
		t.Errorf("bob's usage %+v, want none", u)
	}

	// The limits, counted by the store.
	for _, tc := range []struct {
		lim   quota.Limits
		gpus  int
		limit string
	}{
		{quota.Limits{MaxQueued: 1}, 1, quota.LimitQueued},
		{quota.Limits{MaxGPUs: 8}, 4, quota.LimitGPUs},
		{quota.Limits{GPUHours: 13, Window: 24 * time.Hour}, 1, quota.LimitGPUHours},
		{quota.Limits{MaxActive: 2}, 0, quota.LimitActive},
	} {
		_, _, err := s.Create(ctx, gpuJob(tc.gpus, 1), tc.lim)
		var e *job.Error
		if !errors.As(err, &e) || e.Code != job.ETooMany || e.Details["limit"] != tc.limit {
			t.Errorf("Create over %+v: %v, want too_many for %s", tc.lim, err, tc.limit)
		}
	}
	advance(time.Second) // the latest job
	last := gpuJob(3, 1)
	last.OwnerGroups = []string{"lab", "ml"}
	if _, _, err := s.Create(ctx, last, quota.Limits{MaxActive: 3, MaxQueued: 2, MaxGPUs: 8, GPUHours: 14, Window: 24 * time.Hour}); err != nil {
		t.Errorf("Create under every limit: %v", err)
	}
	if groups, err := s.UserGroups(ctx, "alice"); err != nil || len(groups) != 2 || groups[0] != "lab" {
		t.Errorf("UserGroups of alice's latest job: %v %v, want [lab ml]", groups, err)
	}
	if groups, err := s.UserGroups(ctx, "bob"); err != nil || groups != nil {
		t.Errorf("UserGroups of a user without jobs: %v %v", groups, err)
	}
}

func mustRuns(t *testing.T, s *postgres.Store, window time.Duration) []quota.Run {
	t.Helper()
	u, err := s.Usage(context.Background(), "alice", quota.Limits{Window: window})
	if err != nil {
		t.Fatal(err)
	}
	return u.Runs
}

// TestIntegrationGroupBudget: a group's budget counts the runs of all its members' jobs
// (by the groups at submission), refuses a member's GPU job once used up whoever used
// it, leaves non-members and CPU jobs alone, and Usage returns the pool's runs.
func TestIntegrationGroupBudget(t *testing.T) {
	s := postgres.New(pgtest.Schema(t))
	ctx := context.Background()
	clock := time.Now().Add(-time.Hour).Truncate(time.Second)
	s.Now = func() time.Time { return clock }
	member := func(user string, gpus int, groups ...string) job.Job {
		j := newJob(user, "m")
		j.OwnerGroups = groups
		j.Spec.Resources.GPUs, j.Spec.Distributed.ProcessesPerNode = gpus, max(gpus, 1)
		j.SpecHash = j.Spec.Hash()
		return j
	}
	lim := quota.Limits{Window: 24 * time.Hour, Pools: []quota.Pool{{Group: "lab", GPUHours: 3}}}
	// alice (lab) runs 2 GPUs for 1 h: 2 of lab's 3 GPU-hours.
	a, _, err := s.Create(ctx, member("alice", 2, "lab"), lim)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []job.Change{{From: job.Submitting, To: job.Queued, SlurmID: "1"}, {From: job.Queued, To: job.Running}} {
		if _, err := s.Transition(ctx, a.ID, c); err != nil {
			t.Fatal(err)
		}
	}
	clock = clock.Add(time.Hour)
	if _, err := s.Transition(ctx, a.ID, job.Change{From: job.Running, To: job.Succeeded}); err != nil {
		t.Fatal(err)
	}
	// bob (lab) may still start one: 2 < 3.
	if _, _, err := s.Create(ctx, member("bob", 1, "lab", "nlp"), lim); err != nil {
		t.Fatalf("bob under the budget: %v", err)
	}
	// carol (lab) runs 1 GPU for 1 h: lab is at 3 of 3.
	c, _, err := s.Create(ctx, member("carol", 1, "lab"), quota.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range []job.Change{{From: job.Submitting, To: job.Queued, SlurmID: "2"}, {From: job.Queued, To: job.Running}} {
		if _, err := s.Transition(ctx, c.ID, ch); err != nil {
			t.Fatal(err)
		}
	}
	clock = clock.Add(time.Hour)
	u, err := s.Usage(ctx, "bob", lim)
	if err != nil {
		t.Fatal(err)
	}
	if got := quota.GPUHours(u.PoolRuns["lab"], u.At, lim.Window); math.Abs(got-3) > 0.01 || len(u.Runs) != 0 {
		t.Fatalf("bob's usage: pool lab %.2f GPU-hours from %d runs, own runs %d; want 3 from alice's and carol's, none of bob's",
			got, len(u.PoolRuns["lab"]), len(u.Runs))
	}
	_, _, err = s.Create(ctx, member("bob", 1, "lab", "nlp"), lim)
	var je *job.Error
	if !errors.As(err, &je) || je.Code != job.ETooMany || je.Details["limit"] != quota.LimitPool || je.Details["group"] != "lab" {
		t.Fatalf("bob's GPU job with lab's budget used up: %v, want too_many naming group lab", err)
	}
	if _, _, err := s.Create(ctx, member("bob", 0, "lab"), lim); err != nil {
		t.Errorf("a CPU job of a lab member: %v, want accepted", err)
	}
	if _, _, err := s.Create(ctx, member("dave", 1, "nlp"), quota.Limits{Window: 24 * time.Hour, Pools: []quota.Pool{{Group: "nlp", GPUHours: 3}}}); err != nil {
		t.Errorf("a member of another group: %v, want accepted", err)
	}
}

package reconcile_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/benchtable"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/reconcile"
	"github.com/ftgate/ftgate/internal/slurm"
	"github.com/ftgate/ftgate/internal/wiring"
)

// countingRunner counts the remote commands the Slurm client issues.
type countingRunner struct {
	slurm.Runner
	n atomic.Int64
}

func (c *countingRunner) Run(ctx context.Context, user string, argv []string, stdin io.Reader) ([]byte, []byte, error) {
	c.n.Add(1)
	return c.Runner.Run(ctx, user, argv, stdin)
}

// BenchmarkIntegrationReconcileHeld measures one reconciler pass over 1,000 real held
// Slurm jobs (gateway state queued, Slurm PENDING held): wall time per pass and remote
// commands per pass. Printed, not asserted.
func BenchmarkIntegrationReconcileHeld(b *testing.B) {
	const n = 1000
	cl, sp := stackCluster(b)
	runner := &countingRunner{Runner: sp}
	sc, err := slurm.New(runner, wiring.SlurmOptions(cl))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()

	// 1,000 held jobs from one remote loop (one SSH session, not 1,000).
	start := time.Now()
	script := fmt.Sprintf(`for i in $(seq %d); do sbatch --hold --parsable -J ftgate-bench -p %s -o /dev/null --wrap true || exit 1; done`, n, cl.DefaultPartition)
	out, stderr, err := sp.Run(ctx, "alice", []string{"bash", "-c", script}, nil)
	if err != nil {
		b.Fatalf("submit held jobs: %v: %s", err, stderr)
	}
	ids := strings.Fields(string(out))
	if len(ids) != n {
		b.Fatalf("submitted %d held jobs, want %d", len(ids), n)
	}
	defer func() {
		if _, stderr, err := sp.Run(context.Background(), "alice", append([]string{"scancel"}, ids...), nil); err != nil {
			b.Logf("scancel: %v: %s", err, stderr)
		}
	}()
	b.Logf("submitted %d held jobs in %s", n, time.Since(start).Round(time.Millisecond))

	store := postgres.New(pgtest.Schema(b))
	spec := job.Spec{Method: "sft", Model: job.BuiltinTiny, Dataset: job.Dataset{Path: "/data/train.jsonl"}}
	for i, sid := range ids {
		id := postgres.NewID()
		j, _, err := store.Create(ctx, job.Job{ID: id, OwnerSubject: "sub-alice", User: "alice", Cluster: cl.Name,
			Spec: spec, SpecHash: fmt.Sprint(i), JobDir: slurm.JobDir(cl.JobRoot, "alice", id)}, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := store.Transition(ctx, j.ID, job.Change{From: job.Submitting, To: job.Queued, SlurmID: sid}); err != nil {
			b.Fatal(err)
		}
	}
	rec := &reconcile.Reconciler{Store: store, Clusters: []reconcile.Cluster{{Name: cl.Name, Slurm: sc,
		Policy: reconcile.Policy{RestartBudget: 1, PauseGrace: time.Minute, LostGrace: time.Minute}}}}
	if err := rec.RunOnce(ctx); err != nil { // warm the SSH connection
		b.Fatal(err)
	}
	runner.n.Store(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := rec.RunOnce(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	perPass := float64(b.Elapsed().Microseconds()) / 1000 / float64(b.N)
	cmds := float64(runner.n.Load()) / float64(b.N)
	if b.N > 1 {
		// Reference: one bare squeue of the same jobs over the same connection.
		var raw []float64
		argv := []string{"env", "SLURM_CONF=" + cl.SlurmConf, "squeue", "-h", "-t", "all", "-j", strings.Join(ids, ",")}
		for range 5 {
			t0 := time.Now()
			if _, stderr, err := sp.Run(ctx, "alice", argv, nil); err != nil {
				b.Fatalf("squeue: %v: %s", err, stderr)
			}
			raw = append(raw, float64(time.Since(t0).Microseconds())/1000)
		}
		benchtable.Record(benchtable.Row{Figure: fmt.Sprintf("reconciler pass, %d held jobs", n), Value: perPass, Unit: "ms",
			Reference: fmt.Sprintf("one squeue of the same %d jobs, same SSH pool", n), RefValue: benchtable.Percentile(raw, 0.5)})
		benchtable.Record(benchtable.Row{Figure: fmt.Sprintf("Slurm commands per reconciler pass, %d jobs", n), Value: cmds, Unit: "cmds",
			Reference: "goal", RefValue: 2, Goal: 1})
	}
	b.ReportMetric(cmds, "slurm-cmds/pass")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/pass")
	list, _, err := store.List(ctx, postgres.Filter{States: []job.State{job.Queued}, Limit: n})
	if err != nil || len(list) != n {
		b.Fatalf("after the passes %d of %d jobs are still queued (%v)", len(list), n, err)
	}
}

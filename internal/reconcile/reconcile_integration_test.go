package reconcile_test

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/quota"
	"github.com/ftgate/ftgate/internal/reconcile"
	"github.com/ftgate/ftgate/internal/slurm"
	"github.com/ftgate/ftgate/internal/sshconn"
	"github.com/ftgate/ftgate/internal/stacktest"
	"github.com/ftgate/ftgate/internal/submit"
	"github.com/ftgate/ftgate/internal/wiring"
)

// stackCluster returns the stack's cluster config and an SSH pool to it, closed with tb.
func stackCluster(tb testing.TB) (*config.Cluster, *sshconn.Pool) {
	return stackClusterNamed(tb, "")
}

// stackClusterNamed is stackCluster for the stack's cluster name ("": the first).
func stackClusterNamed(tb testing.TB, name string) (*config.Cluster, *sshconn.Pool) {
	st := stacktest.Require(tb)
	cfg, err := config.Load(st.GatewayConfig, nil)
	if err != nil {
		tb.Fatal(err)
	}
	cl := &cfg.Clusters[0]
	if name != "" {
		var ok bool
		if cl, ok = cfg.Cluster(name); !ok {
			tb.Fatalf("no cluster %q in %s", name, st.GatewayConfig)
		}
	}
	if d := st.Env["STACK_TRAINER_DIR"]; d != "" {
		cl.TrainerDir = d
	}
	scfg, err := wiring.SSHConfig(cl)
	if err != nil {
		tb.Fatal(err)
	}
	sp, err := sshconn.New(scfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sp.Close() })
	return cl, sp
}

// TestIntegrationSubmitAndReconcile drives the real submitter and reconciler passes
// (no HTTP) against the stack: Postgres, sshd, Slurm and the real trainer.
func TestIntegrationSubmitAndReconcile(t *testing.T) {
	cl, sp := stackCluster(t)
	sc, err := slurm.New(sp, wiring.SlurmOptions(cl))
	if err != nil {
		t.Fatal(err)
	}
	store := postgres.New(pgtest.Schema(t))
	ctx := context.Background()

	_, file, _, _ := runtime.Caller(0)
	data := filepath.Join(filepath.Dir(file), "..", "..", "examples", "data", "sft-train.jsonl")
	spec := job.Spec{Method: "sft", Model: job.BuiltinTiny, Dataset: job.Dataset{Path: filepath.Clean(data)},
		Hyperparameters: job.Hyperparameters{MaxSteps: 20, MaxLength: 64, LearningRate: 0.003},
		Logging:         job.Logging{SaveEvery: 10, ProgressIntervalSeconds: 1},
		Resources:       job.Resources{Cluster: cl.Name, Partition: cl.DefaultPartition, GPUs: 1, CPUs: 1, MemoryMB: 1024, TimeLimitMinutes: 5}}
	spec.Normalize()
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	id := postgres.NewID()
	j, _, err := store.Create(ctx, job.Job{ID: id, OwnerSubject: "sub-alice", User: "alice", Cluster: cl.Name, Spec: spec,
		SpecHash: spec.Hash(), JobDir: slurm.JobDir(cl.JobRoot, "alice", id)}, quota.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	// A job whose Slurm id Slurm never had: failed as lost after the grace.
	lostID := postgres.NewID()
	lost, _, err := store.Create(ctx, job.Job{ID: lostID, OwnerSubject: "sub-alice", User: "alice", Cluster: cl.Name, Spec: spec,
		SpecHash: spec.Hash(), JobDir: slurm.JobDir(cl.JobRoot, "alice", lostID)}, quota.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Transition(ctx, lost.ID, job.Change{From: job.Submitting, To: job.Queued, SlurmID: "999999"}); err != nil {
		t.Fatal(err)
	}

	sub := &submit.Submitter{Store: store, Clusters: map[string]submit.Cluster{cl.Name: {Slurm: sc, Files: sp}}}
	if n, err := sub.RunOnce(ctx); err != nil || n != 1 {
		t.Fatalf("submit pass: %d %v", n, err)
	}
	j, _ = store.Get(ctx, j.ID)
	if j.State != job.Queued || j.SlurmID == "" {
		t.Fatalf("after submit: %s %q %s", j.State, j.SlurmID, j.Reason)
	}
	rec := &reconcile.Reconciler{Store: store, Clusters: []reconcile.Cluster{{Name: cl.Name, Slurm: sc,
		Policy: reconcile.Policy{RestartBudget: 1, PauseGrace: time.Minute, LostGrace: time.Second}}}}
	seen := map[job.State]bool{}
	maxStep := int64(0)
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if err := rec.RunOnce(ctx); err != nil {
			t.Fatalf("reconcile pass: %v", err)
		}
		j, _ = store.Get(ctx, j.ID)
		seen[j.State] = true
		maxStep = max(maxStep, j.Progress.Step)
		if j.State.Terminal() {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if j.State != job.Succeeded || !seen[job.Running] || j.Progress.Step != 20 || j.Progress.Phase != "completed" {
		t.Fatalf("job ended %s (%s), seen %v, progress %+v", j.State, j.Reason, seen, j.Progress)
	}
	evs, err := store.Events(ctx, j.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Kind+":"+string(e.State))
	}
	got := strings.Join(kinds, " ")
	if !strings.HasPrefix(got, "state:submitting state:queued") || !strings.Contains(got, "state:running") || !strings.HasSuffix(got, "state:succeeded") {
		t.Fatalf("events: %s", got)
	}
	lost, _ = store.Get(ctx, lost.ID)
	if lost.State != job.Failed || !strings.Contains(lost.Reason, "lost") {
		t.Fatalf("job with an unknown Slurm id: %s %q", lost.State, lost.Reason)
	}
	t.Logf("events: %s", got)
}

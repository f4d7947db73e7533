package reconcile_test

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/quota"
	"github.com/ftgate/ftgate/internal/reconcile"
	"github.com/ftgate/ftgate/internal/slurm"
	"github.com/ftgate/ftgate/internal/stacktest"
	"github.com/ftgate/ftgate/internal/wiring"
)

// fakeSqueue is what mallory's startup files put first on her PATH: it answers every
// id it is asked about as COMPLETED and owned by bob, and leaves a marker.
const fakeSqueue = `#!/bin/sh
ids=""
while [ $# -gt 0 ]; do
  case "$1" in -j) ids=$2; shift ;; esac
  shift
done
touch "$HOME/squeue-was-faked"
for id in $(echo "$ids" | tr , ' '); do
  echo "$id|$id|N/A|COMPLETED|0|0|2026-01-01T00:00:00|2026-01-01T00:00:01|gpu|vm|bob|None|"
done
`

// lieAs makes the stack's scratch user mallory lie about squeue through her shell
// startup files (~/.bashrc, ~/.profile put ~/bin first on PATH) until the test ends.
func lieAs(t *testing.T, st *stacktest.Stack) (marker string) {
	u, err := user.Lookup("mallory")
	if err != nil || os.Geteuid() != 0 {
		if stacktest.Required() {
			t.Fatalf("the stack's scratch user mallory (dev/stack up) and root are needed: %v", err)
		}
		stacktest.Skip(t, "needs root and the stack's scratch user mallory")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	home := u.HomeDir
	files := map[string]string{
		filepath.Join(home, "bin", "squeue"): fakeSqueue,
		filepath.Join(home, ".bashrc"):       "export PATH=\"$HOME/bin:$PATH\"\n",
		filepath.Join(home, ".profile"):      "export PATH=\"$HOME/bin:$PATH\"\n",
	}
	marker = filepath.Join(home, "squeue-was-faked")
	t.Cleanup(func() {
		for f := range files {
			os.Remove(f)
		}
		os.Remove(filepath.Join(home, "bin"))
		os.Remove(marker)
	})
	if err := os.MkdirAll(filepath.Join(home, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Chown(filepath.Join(home, "bin"), uid, gid)
	for f, body := range files {
		if err := os.WriteFile(f, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		_ = os.Chown(f, uid, gid)
	}
	os.Remove(marker)
	return marker
}

// TestIntegrationLyingShellCannotChangeAnotherUsersJob: mallory, owner of the oldest
// live job, replaces squeue in her login; bob's real held job in Slurm stays queued
// whether the reconciler polls through the probe account or per owner.
func TestIntegrationLyingShellCannotChangeAnotherUsersJob(t *testing.T) {
	cl, sp := stackCluster(t)
	st := stacktest.Require(t)
	marker := lieAs(t, st)
	sc, err := slurm.New(sp, wiring.SlurmOptions(cl))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	out, _, err := sp.Run(ctx, "bob", []string{"env", "SLURM_CONF=" + cl.SlurmConf, "sbatch", "--parsable", "--hold", "-p", cl.DefaultPartition,
		"-o", "/dev/null", "-J", "ftgate-trust-test", "--wrap", "sleep 600"}, nil)
	if err != nil {
		t.Fatalf("sbatch as bob: %v", err)
	}
	bobSlurm := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		_, _, _ = sp.Run(context.Background(), "bob", []string{"env", "SLURM_CONF=" + cl.SlurmConf, "scancel", bobSlurm}, nil)
	})
	// The lie is live: mallory's own squeue now says bob's job completed.
	if o, _, err := sp.Run(ctx, "mallory", []string{"env", "SLURM_CONF=" + cl.SlurmConf, "squeue", "-h", "-j", bobSlurm}, nil); err != nil ||
		!strings.Contains(string(o), "COMPLETED") {
		t.Fatalf("mallory's fake squeue is not in effect: %q %v", o, err)
	}
	os.Remove(marker)

	for _, mode := range []struct{ name, pollUser string }{{"probe account", cl.ProbeUser}, {"per owner", ""}} {
		t.Run(mode.name, func(t *testing.T) {
			if mode.pollUser == "mallory" || mode.pollUser == "bob" {
				stacktest.Skip(t, "the stack's probe_user %s owns jobs", mode.pollUser)
			}
			store := postgres.New(pgtest.Schema(t))
			spec := job.Spec{Method: "sft", Model: job.BuiltinTiny, Dataset: job.Dataset{Path: "/data/x.jsonl"},
				Resources: job.Resources{Cluster: cl.Name, Partition: cl.DefaultPartition, GPUs: 1, CPUs: 1, MemoryMB: 1024, TimeLimitMinutes: 5}}
			spec.Normalize()
			mk := func(owner, slurmID string) job.Job {
				id := postgres.NewID()
				j, _, err := store.Create(ctx, job.Job{ID: id, OwnerSubject: "sub-" + owner, User: owner, Cluster: cl.Name, Spec: spec,
					SpecHash: spec.Hash(), JobDir: slurm.JobDir(cl.JobRoot, owner, id)}, quota.Limits{})
				if err != nil {
					t.Fatal(err)
				}
				if j, err = store.Transition(ctx, j.ID, job.Change{From: job.Submitting, To: job.Queued, SlurmID: slurmID}); err != nil {
					t.Fatal(err)
				}
				return j
			}
			mallorys := mk("mallory", "1") // the oldest live job
			time.Sleep(10 * time.Millisecond)
			bobs := mk("bob", bobSlurm)
			rec := &reconcile.Reconciler{Store: store, Clusters: []reconcile.Cluster{{Name: cl.Name, Slurm: sc, PollUser: mode.pollUser,
				Policy: reconcile.Policy{RestartBudget: 1, PauseGrace: time.Minute, LostGrace: time.Hour}}}}
			for pass := 0; pass < 3; pass++ {
				if err := rec.RunOnce(ctx); err != nil {
					t.Fatalf("pass %d: %v", pass, err)
				}
			}
			b, _ := store.Get(ctx, bobs.ID)
			if b.State != job.Queued || b.SlurmState != string(slurm.StatePending) {
				t.Errorf("bob's job is %s (Slurm %s, %q), want queued and PENDING", b.State, b.SlurmState, b.Reason)
			}
			_, faked := os.Stat(marker)
			switch {
			case mode.pollUser != "" && faked == nil:
				t.Errorf("mallory's login ran squeue although the probe account polls")
			case mode.pollUser == "" && faked != nil:
				t.Errorf("per owner: mallory's own jobs were not polled through her login")
			}
			os.Remove(marker)
			m, _ := store.Get(ctx, mallorys.ID)
			t.Logf("bob's job: %s/%s; mallory's job: %s/%s", b.State, b.SlurmState, m.State, m.SlurmState)
		})
	}
}

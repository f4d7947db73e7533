package artifact_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/artifact"
	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/postgres/pgtest"
	"github.com/ftgate/ftgate/internal/quota"
	"github.com/ftgate/ftgate/internal/sshconn"
	"github.com/ftgate/ftgate/internal/stacktest"
)

// makeCheckpoints writes complete checkpoints step-<N> with metric loss[i] as the
// trainer does (files plus manifest.json), as user.
const makeCheckpoints = `
import hashlib, json, os, sys
d = sys.argv[1]
for arg in sys.argv[2:]:
    step, metric = arg.split(":")
    c = os.path.join(d, "checkpoints", "step-" + step)
    os.makedirs(c)
    data = os.urandom(1000)
    open(os.path.join(c, "w.pt"), "wb").write(data)
    m = {"format": 1, "step": int(step), "metric": float(metric), "created_at": 1.0,
         "files": {"w.pt": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}}}
    open(os.path.join(c, "manifest.json"), "w").write(json.dumps(m))
`

func TestIntegrationRetention(t *testing.T) {
	st := stacktest.Require(t)
	ca, err := sshconn.LoadSigner(st.UserCAKey)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := sshconn.New(sshconn.Config{Addr: st.SSHAddr, KnownHostsFile: st.KnownHosts, UserCA: ca})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	store := postgres.New(pgtest.Schema(t))
	ctx := context.Background()
	run := func(argv ...string) string {
		t.Helper()
		out, stderr, err := fsys.Run(ctx, "alice", argv, nil)
		if err != nil {
			t.Fatalf("%q: %v: %s", argv, err, stderr)
		}
		return string(out)
	}
	newJob := func(state job.State, endedAgo time.Duration, pinned bool, cks ...string) job.Job {
		t.Helper()
		s := job.Spec{Method: "sft", Model: "builtin:tiny", Dataset: job.Dataset{Path: "/d/t.jsonl"}}
		s.Normalize()
		id := postgres.NewID()
		j, _, err := store.Create(ctx, job.Job{ID: id, OwnerSubject: "sub-alice", User: "alice", Cluster: "dev", Spec: s,
			SpecHash: s.Hash(), JobDir: st.JobRoot + "/alice/" + id}, quota.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Pool.Exec(ctx, `UPDATE jobs SET state = $2, ended_at = $3, pinned = $4 WHERE id = $1`,
			id, string(state), time.Now().Add(-endedAgo), pinned); err != nil {
			t.Fatal(err)
		}
		run(append([]string{st.Python, "-c", makeCheckpoints, j.JobDir}, cks...)...)
		t.Cleanup(func() { _, _, _ = fsys.Run(context.Background(), "alice", []string{"rm", "-rf", "--", j.JobDir}, nil) })
		return j
	}
	live := newJob(job.Running, 0, false, "10:0.5", "20:0.9", "30:0.8", "40:0.7")
	old := newJob(job.Succeeded, 40*24*time.Hour, false, "10:1")
	pinned := newJob(job.Failed, 40*24*time.Hour, true, "10:1")
	recent := newJob(job.Succeeded, time.Hour, false, "10:3", "20:2", "30:1")
	// A symlink planted in the job root must not redirect a purge.
	run("ln", "-s", "/etc", old.JobDir+"/checkpoints/step-99")

	r := &artifact.Retainer{Store: store, Clusters: []artifact.Cluster{{Name: "dev", Root: st.JobRoot, FS: fsys,
		Policy: artifact.Policy{KeepLast: 2, KeepBest: true, MaxAge: 30 * 24 * time.Hour}}}}
	res, err := r.Pass(ctx)
	if err != nil || res.Errors != 0 {
		t.Fatalf("Pass: %+v, %v", res, err)
	}
	ls := func(j job.Job) []string {
		out, _, err := fsys.Run(ctx, "alice", []string{"ls", j.JobDir + "/checkpoints"}, nil)
		if err != nil {
			return nil
		}
		return strings.Fields(string(out))
	}
	if got := ls(live); !slices.Equal(got, []string{"step-10", "step-30", "step-40"}) {
		t.Errorf("live job keeps %v, want the best (step-10) and the last two", got)
	}
	if got := ls(recent); !slices.Equal(got, []string{"step-20", "step-30"}) {
		t.Errorf("recently ended job keeps %v, want the last two (step-30 is also the best)", got)
	}
	if ls(old) != nil {
		t.Error("expired job directory still there")
	}
	if got := ls(pinned); len(got) != 1 {
		t.Errorf("pinned job lost its files: %v", got)
	}
	if _, purged, _ := store.Pinned(ctx, old.ID); purged == nil {
		t.Error("purge of the expired job not recorded")
	}
	if !strings.Contains(run("ls", "/etc/passwd"), "passwd") {
		t.Fatal("/etc touched")
	}
	if len(res.Purged) != 1 || res.Purged[0] != old.ID {
		t.Errorf("purged %v, want only %s", res.Purged, old.ID)
	}
	// A second pass has nothing to do.
	res, err = r.Pass(ctx)
	if err != nil || len(res.Rotated)+len(res.Purged) != 0 {
		t.Errorf("second pass: %+v, %v", res, err)
	}
}

package reconcile

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/slurm"
)

// lyingSlurm answers Poll like Slurm would, except through mallory's login, whose
// shell startup files replace squeue: it reports every id as COMPLETED (with any
// owner it likes).
type lyingSlurm struct {
	fakeSlurm
	truth  map[string]slurm.Status
	lieAs  string   // the owner the lie claims
	owners []string // per poll: "account=owner,owner" (sorted, distinct)
}

func (f *lyingSlurm) PollAs(ctx context.Context, user string, owners, ids []string) (map[string]slurm.Status, error) {
	f.polls++
	f.pollUsers = append(f.pollUsers, user)
	f.owners = append(f.owners, user+"="+strings.Join(slices.Compact(slices.Sorted(slices.Values(owners))), ","))
	out := map[string]slurm.Status{}
	for _, id := range ids {
		if user == "mallory" {
			out[id] = slurm.Status{ID: id, State: slurm.StateCompleted, User: f.lieAs}
			continue
		}
		if s, ok := f.truth[id]; ok {
			out[id] = s
		}
	}
	return out, nil
}

// trustSetup: mallory's old paused job (the oldest live job) and bob's running job.
func trustSetup(pollUser string) (*Reconciler, *memStore, *lyingSlurm) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	st := &memStore{jobs: map[string]*job.Job{}}
	fs := &lyingSlurm{fakeSlurm: fakeSlurm{files: map[string]string{}}, truth: map[string]slurm.Status{
		"10": {ID: "10", State: slurm.StatePending, RequeuedHeld: true, Held: true, User: "mallory"},
		"20": {ID: "20", State: slurm.StateRunning, User: "bob"},
	}}
	r := &Reconciler{Store: st, Now: func() time.Time { return now },
		Clusters: []Cluster{{Name: "dev", Slurm: fs, PollUser: pollUser, Policy: Policy{RestartBudget: 1, PauseGrace: time.Minute, LostGrace: time.Minute}}}}
	st.jobs["m"] = &job.Job{ID: "m", Cluster: "dev", User: "mallory", State: job.Paused, SlurmID: "10", JobDir: "/jobs/mallory/m",
		CreatedAt: now.Add(-48 * time.Hour), UpdatedAt: now.Add(-47 * time.Hour)}
	st.jobs["b"] = &job.Job{ID: "b", Cluster: "dev", User: "bob", State: job.Running, SlurmID: "20", JobDir: "/jobs/bob/b",
		CreatedAt: now.Add(-time.Hour), UpdatedAt: now.Add(-time.Hour)}
	return r, st, fs
}

// TestLyingShellCannotChangeAnotherUsersJob: whatever mallory's shell prints, bob's
// running job stays running, polled through the probe account or per owner.
func TestLyingShellCannotChangeAnotherUsersJob(t *testing.T) {
	for _, tc := range []struct {
		name, pollUser, lieAs string
		wantPolls, wantOwners []string
	}{
		{"probe account", "ftgate-probe", "bob", []string{"ftgate-probe"}, []string{"ftgate-probe=bob,mallory"}},
		{"per owner, lie claims bob's ownership", "", "bob", []string{"bob", "mallory"}, []string{"bob=bob", "mallory=mallory"}},
		{"per owner, lie claims mallory's ownership", "", "mallory", []string{"bob", "mallory"}, []string{"bob=bob", "mallory=mallory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, st, fs := trustSetup(tc.pollUser)
			fs.lieAs = tc.lieAs
			for pass := 0; pass < 3; pass++ {
				if err := r.RunOnce(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if b := st.jobs["b"]; b.State != job.Running {
				t.Errorf("bob's job is %s (%s), want running", b.State, b.Reason)
			}
			if got := slices.Compact(slices.Sorted(slices.Values(fs.pollUsers))); !slices.Equal(got, tc.wantPolls) {
				t.Errorf("polled as %v, want %v", got, tc.wantPolls)
			}
			// The owners narrow the query (squeue -u for many ids): those of the jobs.
			if got := slices.Compact(slices.Sorted(slices.Values(fs.owners))); !slices.Equal(got, tc.wantOwners) {
				t.Errorf("polled for owners %v, want %v", got, tc.wantOwners)
			}
			if tc.pollUser != "" && fs.polls != 3 {
				t.Errorf("%d polls in 3 passes, want one per pass", fs.polls)
			}
		})
	}
}

// TestRowOfAnotherOwnerIsDropped: a row for a job's Slurm id that belongs to someone
// else (an id reused after a controller reset, or a lie) never decides the job.
func TestRowOfAnotherOwnerIsDropped(t *testing.T) {
	r, st, fs := trustSetup("ftgate-probe")
	fs.truth["20"] = slurm.Status{ID: "20", State: slurm.StateFailed, User: "carol"}
	r.Clusters[0].Policy.LostGrace = 24 * time.Hour // not seen is not lost yet
	if err := r.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b := st.jobs["b"]; b.State != job.Running {
		t.Errorf("bob's job is %s (%s) after carol's row, want running (not seen)", b.State, b.Reason)
	}
}

// downSlurm fails every poll like an unreachable slurmctld but serves progress files.
type downSlurm struct{ fakeSlurm }

func (f *downSlurm) PollAs(ctx context.Context, user string, owners, ids []string) (map[string]slurm.Status, error) {
	f.polls++
	return nil, &job.Error{Code: job.EUnavailable, Message: "the Slurm controller is unreachable", Err: slurm.ErrController}
}

// TestProgressFlowsWhileControllerIsDown: with squeue failing, progress.json is still
// read and written each pass; no job changes state.
func TestProgressFlowsWhileControllerIsDown(t *testing.T) {
	r, st, _ := setup()
	fs := &downSlurm{fakeSlurm{status: map[string]slurm.Status{}, files: map[string]string{}}}
	r.Clusters[0].Slurm = fs
	r.Clusters[0].Policy.LostGrace = time.Nanosecond
	before := map[string]job.State{}
	for id, j := range st.jobs {
		before[id] = j.State
	}
	for step := 10; step <= 30; step += 10 {
		fs.files["/jobs/alice/b/progress.json"] = `{"phase":"training","step":` + itoa(step) + `,"total_steps":100}`
		err := r.RunOnce(context.Background())
		if !errors.Is(err, slurm.ErrController) {
			t.Fatalf("pass error %v, want the poll's ErrController", err)
		}
		if got := st.jobs["b"].Progress.Step; got != int64(step) {
			t.Errorf("progress of b is step %d while the controller is down, want %d", got, step)
		}
	}
	for id, j := range st.jobs {
		if j.State != before[id] {
			t.Errorf("job %s went %s -> %s while Slurm was unreachable", id, before[id], j.State)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

var _ Store = (*memStore)(nil)

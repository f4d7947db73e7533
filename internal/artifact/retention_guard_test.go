package artifact

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// retStore is a RetentionStore answering fixed lists and recording its calls.
type retStore struct {
	rotating, expired []job.Job
	failExpired       error
	calls, purged     []string
}

func (s *retStore) Rotating(_ context.Context, cluster string, since time.Time, limit int) ([]job.Job, error) {
	s.calls = append(s.calls, "rotating "+cluster+" "+since.Format(time.RFC3339))
	return s.rotating, nil
}

func (s *retStore) Expired(_ context.Context, cluster string, cutoff time.Time, limit int) ([]job.Job, error) {
	s.calls = append(s.calls, "expired "+cluster+" "+cutoff.Format(time.RFC3339))
	return s.expired, s.failExpired
}

func (s *retStore) MarkPurged(_ context.Context, id string, at time.Time) error {
	s.purged = append(s.purged, id)
	return nil
}

// TestRetainerPass: one pass rotates the checkpoints of recent jobs (the oldest go,
// keep_last stay), purges expired job directories and records them, counts a job it
// cannot purge as an error without stopping, and ends on a store failure.
func TestRetainerPass(t *testing.T) {
	root, d, l := tree(t)
	ctx := context.Background()
	os.RemoveAll(filepath.Join(d.Path, "checkpoints"))
	files := map[string]string{"model.pt": "w"}
	for _, n := range []int64{10, 20, 30} {
		writeCkpt(t, d, "step-"+strconv.FormatInt(n, 10), n, files, map[string]int64{"model.pt": -1}, nil)
	}
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	rotating := job.Job{ID: "j1", User: "alice", JobDir: d.Path}
	expired := job.Job{ID: "j10", User: "alice", JobDir: filepath.Join(root, "alice", "j10")}
	outside := job.Job{ID: "jx", User: "alice", JobDir: "/elsewhere/alice/jx"}
	st := &retStore{rotating: []job.Job{rotating}, expired: []job.Job{outside, expired}}
	r := &Retainer{Store: st, Now: func() time.Time { return now },
		Clusters: []Cluster{{Name: "dev", Root: root, FS: l, Policy: Policy{KeepLast: 2, MaxAge: 48 * time.Hour}}}}
	res, err := r.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Rotated, ",") != "j1/step-10" || strings.Join(res.Purged, ",") != "j10" || res.Errors != 1 {
		t.Errorf("pass: %+v; want j1/step-10 rotated, j10 purged, 1 error", res)
	}
	if want := []string{"rotating dev 2026-05-31T12:00:00Z", "expired dev 2026-05-30T12:00:00Z"}; !slices.Equal(st.calls, want) {
		t.Errorf("store calls %v, want %v", st.calls, want)
	}
	if exists(filepath.Join(d.Path, "checkpoints", "step-10")) || !exists(filepath.Join(d.Path, "checkpoints", "step-20")) ||
		!exists(filepath.Join(d.Path, "checkpoints", "step-30")) || exists(expired.JobDir) || !slices.Equal(st.purged, []string{"j10"}) {
		t.Errorf("after the pass: purged %v, files wrong", st.purged)
	}
	// No policy: nothing is asked or deleted.
	st2 := &retStore{rotating: []job.Job{rotating}}
	r.Store, r.Clusters[0].Policy = st2, Policy{}
	if res, err := r.Pass(ctx); err != nil || len(st2.calls) != 0 || len(res.Rotated)+len(res.Purged) != 0 {
		t.Errorf("pass without a policy: %+v %v, calls %v", res, err, st2.calls)
	}
	// A store failure ends the pass with the error.
	st3 := &retStore{failExpired: errors.New("database down")}
	r.Store, r.Clusters[0].Policy = st3, Policy{MaxAge: time.Hour}
	if _, err := r.Pass(ctx); err == nil {
		t.Error("store failure: no error")
	}
}

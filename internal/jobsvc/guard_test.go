package jobsvc

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

// pauseStore is fakeStore that also keeps the pause time as the Postgres store does
// (SetPause sets it, ClearPause clears it).
type pauseStore struct {
	*fakeStore
	mu    sync.Mutex
	pause map[string]*time.Time
}

func (p *pauseStore) Transition(ctx context.Context, id string, c job.Change) (job.Job, error) {
	j, err := p.fakeStore.Transition(ctx, id, c)
	if err != nil {
		return j, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	switch {
	case c.SetPause:
		p.pause[id] = &now
	case c.ClearPause:
		p.pause[id] = nil
	}
	j.PauseRequested = p.pause[id]
	return j, nil
}

// TestPauseRevertClearsPauseTime: a pause that cannot reach the trainer is reverted
// completely: running again and no pause time left behind (the reconciler would read
// a pause time as a pause in progress, and its grace would cancel the job).
func TestPauseRevertClearsPauseTime(t *testing.T) {
	t.Parallel()
	for _, failing := range []string{"WriteFile", "Signal"} {
		e := newEnv(t, job.Job{ID: "j", State: job.Running, SlurmID: "7"})
		ps := &pauseStore{fakeStore: e.store, pause: map[string]*time.Time{}}
		e.svc.Store = ps
		e.slurm.fail[failing] = job.Errorf(job.EUnavailable, "%s failed", failing)
		if _, _, err := e.svc.Pause(context.Background(), e.job(t, "j"), "alice"); job.ErrorCode(err) != job.EUnavailable {
			t.Fatalf("%s fails: err %v, want EUnavailable", failing, err)
		}
		if st := e.job(t, "j").State; st != job.Running || ps.pause["j"] != nil {
			t.Errorf("%s fails: state %s, pause time %v; want running without a pause time", failing, st, ps.pause["j"])
		}
	}
}

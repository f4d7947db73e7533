package artifact

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/worker"
)

// Policy is a cluster's retention policy, enforced by the gateway.
type Policy struct {
	// KeepLast is how many of a job's newest complete checkpoints are kept (0: the
	// gateway does not rotate checkpoints).
	KeepLast int
	// KeepBest also keeps the complete checkpoint with the lowest loss.
	KeepBest bool
	// MaxAge deletes a finished, unpinned job's directory this long after it ended
	// (0: never).
	MaxAge time.Duration
}

// Rotate returns the names of the checkpoints to delete under p: every complete
// checkpoint that is neither among the KeepLast newest complete ones nor, with
// KeepBest, the best. Incomplete checkpoints are left to the trainer.
func Rotate(cks []Checkpoint, p Policy) []string {
	if p.KeepLast <= 0 {
		return nil
	}
	var complete []Checkpoint
	for _, c := range cks {
		if c.Complete {
			complete = append(complete, c)
		}
	}
	sort.Slice(complete, func(i, j int) bool { return complete[i].Step < complete[j].Step })
	keep := map[string]bool{}
	for i := max(len(complete)-p.KeepLast, 0); i < len(complete); i++ {
		keep[complete[i].Name] = true
	}
	if p.KeepBest {
		for _, c := range complete {
			if c.Best {
				keep[c.Name] = true
			}
		}
	}
	var del []string
	for _, c := range complete {
		if !keep[c.Name] {
			del = append(del, c.Name)
		}
	}
	return del
}

// RetentionStore is what the retainer needs from the job store; *postgres.Store
// implements it.
type RetentionStore interface {
	Expired(ctx context.Context, cluster string, cutoff time.Time, limit int) ([]job.Job, error)
	Rotating(ctx context.Context, cluster string, since time.Time, limit int) ([]job.Job, error)
	MarkPurged(ctx context.Context, id string, at time.Time) error
}

// Cluster is one cluster under a retention policy.
type Cluster struct {
	Name   string
	Root   string // job root
	FS     FS
	Policy Policy
}

// Retainer rotates checkpoints and purges expired job directories. Deletions are
// idempotent, so replicas running it at once do no harm.
type Retainer struct {
	Store    RetentionStore
	Clusters []Cluster
	// Interval between passes (default 10m).
	Interval time.Duration
	// Lead, when set, is asked before each pass; a nil release means another replica
	// runs retention now, and the pass is skipped.
	Lead func(ctx context.Context) (release func(), err error)
	Log  *slog.Logger
	Now  func() time.Time
}

// Result counts what a pass did.
type Result struct {
	Rotated []string // job/checkpoint
	Purged  []string // job ids
	Errors  int
}

func (r *Retainer) now() time.Time { return worker.Now(r.Now) }

func (r *Retainer) log() *slog.Logger { return worker.Logger(r.Log) }

// Run makes a pass every Interval until ctx ends, each while leading (Lead).
func (r *Retainer) Run(ctx context.Context) {
	iv := r.Interval
	if iv <= 0 {
		iv = 10 * time.Minute
	}
	loop := &worker.Loop{Name: "retention", Interval: iv, Pass: r.logPass, Log: r.log()}
	if r.Lead != nil {
		loop.Lead = func(ctx context.Context) (worker.Lease, error) {
			release, err := r.Lead(ctx)
			if release == nil {
				return nil, err
			}
			return worker.ReleaseFunc(release), err
		}
	}
	loop.Run(ctx)
}

func (r *Retainer) logPass(ctx context.Context) error {
	res, err := r.Pass(ctx)
	if err == nil && len(res.Rotated)+len(res.Purged) > 0 {
		r.log().Info("retention pass", "rotated", len(res.Rotated), "purged", len(res.Purged), "errors", res.Errors)
	}
	return err
}

// batch caps the jobs one pass looks at per cluster and kind.
const batch = 500

// Pass rotates checkpoints of live and recently ended jobs and purges expired ones.
// Per-job failures are logged and counted; store failures end the pass.
func (r *Retainer) Pass(ctx context.Context) (Result, error) {
	var res Result
	now := r.now()
	for _, cl := range r.Clusters {
		if cl.Policy.KeepLast > 0 {
			jobs, err := r.Store.Rotating(ctx, cl.Name, now.Add(-24*time.Hour), batch)
			if err != nil {
				return res, err
			}
			for _, j := range jobs {
				names, err := rotateJob(ctx, cl, j)
				for _, n := range names {
					res.Rotated = append(res.Rotated, j.ID+"/"+n)
				}
				if err != nil {
					res.Errors++
					r.log().Warn("rotate checkpoints", "job", j.ID, "err", err)
				}
			}
		}
		if cl.Policy.MaxAge > 0 {
			jobs, err := r.Store.Expired(ctx, cl.Name, now.Add(-cl.Policy.MaxAge), batch)
			if err != nil {
				return res, err
			}
			for _, j := range jobs {
				d, err := ForJob(cl.FS, cl.Root, j)
				if err == nil {
					err = d.Purge(ctx)
				}
				if err == nil {
					err = r.Store.MarkPurged(ctx, j.ID, now)
				}
				if err != nil {
					res.Errors++
					r.log().Warn("purge expired job directory", "job", j.ID, "err", err)
					continue
				}
				res.Purged = append(res.Purged, j.ID)
				r.log().Info("purged expired job directory", "job", j.ID, "dir", j.JobDir, "ended", j.EndedAt)
			}
		}
	}
	return res, ctx.Err()
}

func rotateJob(ctx context.Context, cl Cluster, j job.Job) ([]string, error) {
	d, err := ForJob(cl.FS, cl.Root, j)
	if err != nil {
		return nil, err
	}
	cks, err := d.Checkpoints(ctx)
	if err != nil {
		if job.ErrorCode(err) == job.ENotFound {
			return nil, nil
		}
		return nil, err
	}
	var done []string
	var errs []error
	for _, name := range Rotate(cks, cl.Policy) {
		if err := d.Remove(ctx, job.CheckpointsDir+"/"+name); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, name)
	}
	return done, errors.Join(errs...)
}

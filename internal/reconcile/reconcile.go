// Package reconcile follows live jobs in Slurm and their progress files and writes the
// differences into Postgres. One replica leads per database (a Postgres advisory
// lock); the others wait and take over when the leader dies.
//
// Each pass, per cluster: the poll (squeue for all live ids, sacct only for those that
// left squeue), one batched read of progress.json per Unix user, the pure Decide per
// job, the Slurm actions those decisions need (requeuehold, hold, scancel, requeue),
// then every change in one transaction whose events reach listeners through NOTIFY.
//
// Trust: whatever runs through a user's login (startup files, shell functions, PATH)
// is under that user's control, so its output decides only that user's jobs. The poll
// of all users' jobs runs as the cluster's PollUser (the probe or service account: a
// site-controlled account that owns no jobs), one squeue per pass; without one, each
// owner's jobs are polled through that owner's login (one squeue, plus sacct when
// needed, per user with live jobs per pass). Either way a row counts only when its
// owner (Status.User) is the job's Slurm owner.
//
// While Slurm cannot be polled (slurmctld down), progress files are still read and
// progress written (events keep flowing); no state is decided for unpolled jobs.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"path"
	"slices"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/metrics"
	"github.com/ftgate/ftgate/internal/postgres"
	"github.com/ftgate/ftgate/internal/slurm"
	"github.com/ftgate/ftgate/internal/worker"
)

// Store is the part of the job store the reconciler uses.
type Store interface {
	Live(ctx context.Context, cluster string) ([]job.Job, error)
	Apply(ctx context.Context, ups []postgres.Update) ([]string, error)
	RecordRun(ctx context.Context, cluster string, at time.Time, d time.Duration, runErr error) error
}

// Slurm is the part of *slurm.Client the reconciler uses.
type Slurm interface {
	PollAs(ctx context.Context, as string, owners, ids []string) (map[string]slurm.Status, error)
	ReadFiles(ctx context.Context, user string, paths []string, maxEach int64) ([]slurm.File, error)
	RequeueHold(ctx context.Context, user, id string) error
	Hold(ctx context.Context, user, id string) error
	Cancel(ctx context.Context, user, id string) error
	Requeue(ctx context.Context, user, id string) error
}

// Cluster is one cluster the reconciler follows.
type Cluster struct {
	Name     string
	Slurm    Slurm
	Policy   Policy
	Interval time.Duration
	// PollUser is the trusted account that polls every live job in one squeue: the
	// probe account (no job owner, Slurm operator level under PrivateData=jobs) or the
	// service account. Empty: poll each owner's jobs as that owner.
	PollUser string
	// ServiceUser, in service-account mode, owns every job in Slurm.
	ServiceUser string
}

// owner is the account that owns j in Slurm.
func (c Cluster) owner(j job.Job) string {
	if c.ServiceUser != "" {
		return c.ServiceUser
	}
	return j.User
}

// Lease is a held leadership; *postgres.Leader implements it.
type Lease = worker.Lease

// Reconciler runs the passes.
type Reconciler struct {
	Store    Store
	Clusters []Cluster
	// Lead tries to become the leader; it returns nil, nil while another replica leads.
	Lead    func(ctx context.Context) (Lease, error)
	Log     *slog.Logger
	Metrics *metrics.Metrics
	Now     func() time.Time
}

const maxProgressBytes = 64 << 10

func (r *Reconciler) now() time.Time { return worker.Now(r.Now) }

func (r *Reconciler) log() *slog.Logger { return worker.Logger(r.Log) }

// Run waits for leadership, then runs passes at the shortest cluster interval until
// ctx ends or the lease is lost (then it waits for leadership again).
func (r *Reconciler) Run(ctx context.Context) {
	interval := time.Duration(0)
	for _, c := range r.Clusters {
		if interval == 0 || (c.Interval > 0 && c.Interval < interval) {
			interval = c.Interval
		}
	}
	if interval <= 0 {
		interval = 2 * time.Second
	}
	(&worker.Loop{Name: "reconciler", Interval: interval, Lead: r.Lead, Hold: true, Pass: r.RunOnce, Log: r.log()}).Run(ctx)
}

// RunOnce does one pass over every cluster.
func (r *Reconciler) RunOnce(ctx context.Context) error {
	var errs []error
	for _, c := range r.Clusters {
		start := time.Now()
		err := r.cluster(ctx, c)
		d := time.Since(start)
		if r.Metrics != nil {
			res := "ok"
			if err != nil {
				res = "error"
			}
			r.Metrics.Reconciles.WithLabelValues(c.Name, res).Inc()
			r.Metrics.ReconcileDuration.WithLabelValues(c.Name).Observe(d.Seconds())
			if err == nil {
				r.Metrics.ReconcileLastOK.WithLabelValues(c.Name).SetToCurrentTime()
			}
		}
		if rerr := r.Store.RecordRun(context.WithoutCancel(ctx), c.Name, r.now(), d, err); rerr != nil {
			errs = append(errs, rerr)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("cluster %s: %w", c.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (r *Reconciler) cluster(ctx context.Context, c Cluster) error {
	live, err := r.Store.Live(ctx, c.Name)
	if err != nil {
		return err
	}
	var jobs []job.Job
	for _, j := range live {
		if j.State == job.Submitting || j.SlurmID == "" {
			continue // the submitter's
		}
		jobs = append(jobs, j)
	}
	if len(jobs) == 0 {
		return nil
	}
	status, pollErr := r.poll(ctx, c, jobs)
	progress := r.readProgress(ctx, c, jobs, status)
	now := r.now()
	var ups []postgres.Update
	for _, j := range jobs {
		u := postgres.Update{ID: j.ID}
		p, havePos := progress[j.ID]
		if havePos && progressChanged(j.Progress, p) {
			u.Progress = &p
		}
		polled, ok := status[j.ID]
		if !ok { // not polled this pass: progress only
			if u.Progress != nil {
				ups = append(ups, u)
			}
			continue
		}
		var st *slurm.Status
		if polled.found {
			s := polled.Status
			st = &s
			// Only what changed is written: rewriting every live row every pass made
			// the write 7 s of a 14 s pass over 10,000 held jobs.
			u.Seen = seenDue(j, now, c.Policy)
			if string(s.State) != j.SlurmState {
				u.SlurmState = string(s.State)
			}
		}
		if !havePos {
			p = j.Progress
		}
		d := Decide(j, st, p, c.Policy, now)
		u.Change = r.act(ctx, c, j, d)
		if u.Change != nil && u.Change.SlurmState == "" && st != nil {
			u.Change.SlurmState = string(st.State)
		}
		if u.Change != nil && st != nil {
			runTimes(u.Change, st, now)
		}
		if st != nil && st.Restarts > j.RestartCount && (u.Change == nil || u.Change.RestartCount == nil) {
			n := st.Restarts
			u.RestartCount = &n
		}
		if u.Change != nil || u.Progress != nil || u.Seen || u.SlurmState != "" || u.RestartCount != nil {
			ups = append(ups, u)
		}
	}
	conflicts, err := r.Store.Apply(ctx, ups)
	if err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	for _, u := range ups {
		if u.Change != nil && r.Metrics != nil && !contains(conflicts, u.ID) {
			r.Metrics.Transitions.WithLabelValues(string(u.Change.From), string(u.Change.To)).Inc()
		}
	}
	if len(conflicts) > 0 {
		r.log().Info("reconciler: jobs changed by users during the pass; next pass sees them", "jobs", conflicts)
	}
	if pollErr != nil {
		return fmt.Errorf("poll: %w", pollErr)
	}
	return nil
}

// seenDue reports whether a pass that found j in Slurm records it as seen now. LastSeen
// only has to be fresh to within a fraction of LostGrace (it decides when a vanished job
// is lost), so it is rewritten once it is older than a per-job threshold between 1/8 and
// 1/4 of LostGrace; spreading the thresholds by job id keeps thousands of jobs seen
// together from being rewritten in the same pass again. A job seen for the first time,
// or with no LostGrace, is always recorded.
func seenDue(j job.Job, now time.Time, pol Policy) bool {
	if j.LastSeen == nil || pol.LostGrace <= 0 {
		return true
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(j.ID))
	eighth := pol.LostGrace / 8
	threshold := eighth + time.Duration(h.Sum64()%uint64(eighth+1))
	return now.Sub(*j.LastSeen) >= threshold
}

// polled is what the poll of a pass says about one job.
type polled struct {
	slurm.Status
	found bool // Slurm knows the job (as this job's owner's)
}

// poll polls the jobs' Slurm ids, through c.PollUser in one Poll or else once per
// owner, and returns the result per gateway job id; jobs whose poll failed are absent.
// A row whose owner is not the job's is dropped (counted as not found) and logged.
func (r *Reconciler) poll(ctx context.Context, c Cluster, jobs []job.Job) (map[string]polled, error) {
	groups := map[string][]job.Job{} // polling account -> its jobs
	if c.PollUser != "" {
		groups[c.PollUser] = jobs
	} else {
		for _, j := range jobs {
			groups[c.owner(j)] = append(groups[c.owner(j)], j)
		}
	}
	accounts := make([]string, 0, len(groups))
	for a := range groups {
		accounts = append(accounts, a)
	}
	slices.Sort(accounts)
	out := map[string]polled{}
	var errs []error
	for _, as := range accounts {
		js := groups[as]
		ids := make([]string, len(js))
		var owners []string
		for i, j := range js {
			ids[i] = j.SlurmID
			owners = append(owners, c.owner(j))
		}
		st, err := c.Slurm.PollAs(ctx, as, owners, ids)
		if err != nil {
			errs = append(errs, fmt.Errorf("as %s: %w", as, err))
			continue
		}
		for _, j := range js {
			s, ok := st[j.SlurmID]
			if ok && s.User != c.owner(j) {
				r.log().Warn("reconciler: dropped a Slurm row owned by someone else", "cluster", c.Name, "job", j.ID,
					"slurm_id", j.SlurmID, "owner", c.owner(j), "row_user", s.User, "polled_as", as)
				ok = false
			}
			out[j.ID] = polled{Status: s, found: ok}
		}
	}
	return out, errors.Join(errs...)
}

// runTimes copies into c the times Slurm reported for the job's current run (the
// store records runs from them, for GPU-hours): the start of a job that runs or has
// ended, the end of one that has ended. A pending job's times are Slurm's forecast and
// are not used; times after now are not either (the store then uses the time of the
// write).
func runTimes(c *job.Change, st *slurm.Status, now time.Time) {
	if st.State == slurm.StatePending || st.State == slurm.StateRequeued {
		return
	}
	if !st.Start.IsZero() && !st.Start.After(now) {
		c.RunStart = st.Start
	}
	if st.State.Terminal() && !st.End.IsZero() && !st.End.After(now) && !st.End.Before(st.Start) {
		c.RunEnd = st.End
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// act runs the decision's Slurm action and returns the change to write.
func (r *Reconciler) act(ctx context.Context, c Cluster, j job.Job, d Decision) *job.Change {
	if d.Action == None {
		return d.Change
	}
	var err error
	switch d.Action {
	case RequeueHold:
		err = c.Slurm.RequeueHold(ctx, j.User, j.SlurmID)
	case Hold:
		err = c.Slurm.Hold(ctx, j.User, j.SlurmID)
	case Cancel:
		err = c.Slurm.Cancel(ctx, j.User, j.SlurmID)
	case Requeue:
		err = c.Slurm.Requeue(ctx, j.User, j.SlurmID)
	}
	switch {
	case err == nil:
		return d.Change
	case errors.Is(err, slurm.ErrInvalidJob) && d.OnActionGone != nil:
		return d.OnActionGone
	}
	r.log().Warn("reconciler: slurm action failed; retrying next pass", "job", j.ID, "slurm_id", j.SlurmID, "action", d.Action, "err", err)
	return nil
}

// readProgress reads progress.json and gpu.json of the jobs that may have progressed,
// one batched read per Unix user (job directories belong to their users).
func (r *Reconciler) readProgress(ctx context.Context, c Cluster, jobs []job.Job, status map[string]polled) map[string]job.Progress {
	byUser := map[string][]job.Job{}
	for _, j := range jobs {
		st, ok := status[j.ID]
		if j.JobDir == "" || j.State == job.Paused || (ok && st.found && st.State == slurm.StatePending && j.State == job.Queued) {
			continue
		}
		byUser[j.User] = append(byUser[j.User], j)
	}
	out := map[string]job.Progress{}
	for user, js := range byUser {
		paths := make([]string, 0, 2*len(js))
		for _, j := range js {
			paths = append(paths, path.Join(j.JobDir, "progress.json"), path.Join(j.JobDir, "gpu.json"))
		}
		files, err := c.Slurm.ReadFiles(ctx, user, paths, maxProgressBytes)
		if err != nil {
			r.log().Warn("reconciler: read progress", "cluster", c.Name, "user", user, "err", err)
			continue
		}
		for i, j := range js {
			if 2*i >= len(files) {
				break
			}
			f := files[2*i]
			if !f.Exists || f.Truncated {
				continue
			}
			p, err := ParseProgress(f.Data)
			if err != nil {
				r.log().Warn("reconciler: bad progress.json", "job", j.ID, "err", err)
				continue
			}
			if 2*i+1 < len(files) {
				if g := files[2*i+1]; g.Exists && !g.Truncated {
					p.GPUs = ParseGPUs(g.Data)
				}
			}
			out[j.ID] = p
		}
	}
	return out
}

func progressChanged(old, p job.Progress) bool {
	if old.Phase != p.Phase || old.Step != p.Step || old.LatestCheckpoint != p.LatestCheckpoint || old.Error != p.Error ||
		!slices.Equal(old.GPUs, p.GPUs) {
		return true
	}
	if (old.UpdatedAt == nil) != (p.UpdatedAt == nil) {
		return true
	}
	return old.UpdatedAt != nil && !old.UpdatedAt.Equal(*p.UpdatedAt)
}

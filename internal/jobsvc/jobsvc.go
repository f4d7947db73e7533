// Package jobsvc holds the job operations a caller may ask for (create, cancel, pause,
// resume, purge, pin) with their orchestration of the store, Slurm and the job
// directory: the order of the calls, the control file and the compensating revert.
// The HTTP layer parses, authorises and renders; it calls this package for the rest.
package jobsvc

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/quota"
	"github.com/ftgate/ftgate/internal/slurm"
	"github.com/ftgate/ftgate/internal/submit"
	"github.com/ftgate/ftgate/internal/worker"
)

// Store is what the operations need from the job store; *postgres.Store implements it.
type Store interface {
	// Create stores j unless it passes one of lim (ETooMany), checked and counted in
	// the same transaction.
	Create(ctx context.Context, j job.Job, lim quota.Limits) (job.Job, bool, error)
	Get(ctx context.Context, id string) (job.Job, error)
	Transition(ctx context.Context, id string, c job.Change) (job.Job, error)
	// Usage is what Unix account user holds now, runs in the window included.
	Usage(ctx context.Context, user string, lim quota.Limits) (quota.Usage, error)
	// ByIdempotencyKey returns owner's job created with key (ENotFound: none).
	ByIdempotencyKey(ctx context.Context, owner, key string) (job.Job, error)
	SetPinned(ctx context.Context, id string, pinned bool) error
	MarkPurged(ctx context.Context, id string, at time.Time) error
}

// Slurm is the Slurm control the operations use; *slurm.Client implements it.
type Slurm interface {
	Cancel(ctx context.Context, user, id string) error
	Signal(ctx context.Context, user, id string) error
	Hold(ctx context.Context, user, id string) error
	Release(ctx context.Context, user, id string) error
	Poll(ctx context.Context, user string, ids []string) (map[string]slurm.Status, error)
}

// Files writes files in job directories; *sshconn.Pool implements it.
type Files interface {
	WriteFile(ctx context.Context, user, path string, data []byte, perm os.FileMode) error
}

// Purger removes a job's directory on its cluster (an *artifact.Dir).
type Purger interface {
	Purge(ctx context.Context) error
}

// Cluster is one cluster's access as the operations need it.
type Cluster struct {
	Slurm Slurm
	Files Files
	// Dir opens a job's directory for Purge.
	Dir func(j job.Job) (Purger, error)
	// Capacity reads what is free now, as the probe account (resources.no_wait); nil:
	// the cluster has no probe account.
	Capacity func(ctx context.Context) (*slurm.Capacity, error)
}

// Service runs the job operations.
type Service struct {
	Store Store
	// Cluster returns a job's cluster, or an EUnavailable error when the gateway does
	// not serve it.
	Cluster func(name string) (*Cluster, error)
	// Limits resolves a user's limits from the Unix account and its groups
	// (config.Limits.For); nil: no limits. ETooMany above them.
	Limits func(user string, groups []string) quota.Limits
	// Submitter is this replica's submitter (nil: none runs here; another replica's
	// claims the jobs).
	Submitter Submitter
	// Transitioned is called after each state change the service writes (metrics).
	Transitioned func(from, to job.State)
	Log          *slog.Logger
	Now          func() time.Time
}

// limits are j's owner's limits, with the groups recorded at its submission.
func (s *Service) limits(j job.Job) quota.Limits {
	if s.Limits == nil {
		return quota.Limits{}
	}
	return s.Limits(j.User, j.OwnerGroups)
}

func (s *Service) log() *slog.Logger { return worker.Logger(s.Log) }

func (s *Service) now() time.Time { return worker.Now(s.Now) }

// Submitter is the part of *submit.Submitter the service uses.
type Submitter interface {
	// Kick wakes it for a job that became due for submission.
	Kick()
	// Reserve takes a free submission slot for a job about to be created (nil: none).
	Reserve() *submit.Slot
}

func (s *Service) kick() {
	if s.Submitter != nil {
		s.Submitter.Kick()
	}
}

func (s *Service) transition(ctx context.Context, j job.Job, c job.Change) (job.Job, error) {
	out, err := s.Store.Transition(ctx, j.ID, c)
	if err == nil && s.Transitioned != nil {
		s.Transitioned(c.From, c.To)
	}
	return out, err
}

func (s *Service) cluster(j job.Job) (*Cluster, error) {
	if s.Cluster == nil {
		return nil, job.Errorf(job.EUnavailable, "cluster %s is not configured on this gateway", j.Cluster)
	}
	return s.Cluster(j.Cluster)
}

// slurmCluster is cluster for operations that need Slurm and the job directory.
func (s *Service) slurmCluster(j job.Job) (*Cluster, error) {
	cl, err := s.cluster(j)
	if err == nil && (cl.Slurm == nil || cl.Files == nil) {
		err = job.Errorf(job.EUnavailable, "cluster %s is not configured on this gateway", j.Cluster)
	}
	return cl, err
}

// Create stores a new job in submitting (or answers the earlier job of the same
// idempotency key, created false) and wakes the submitter. It is the one place jobs
// are created: the owner's limits (with j.OwnerGroups, the caller's groups) are
// checked here, counted by the store in the transaction that inserts the job.
//
// A spec with resources.no_wait is refused (EConflict, with the free GPU count) when
// its partition has no room for it now; a repeated request (the same
// Idempotency-Key) answers its earlier job instead, which may hold those GPUs by now.
func (s *Service) Create(ctx context.Context, j job.Job) (job.Job, bool, error) {
	if j.Spec.Resources.NoWait && !s.replay(ctx, j) {
		if err := s.noWait(ctx, j); err != nil {
			return j, false, err
		}
	}
	// With a free slot here the job is created claimed, and its submission starts
	// without waiting for a claim pass.
	var slot *submit.Slot
	if s.Submitter != nil {
		slot = s.Submitter.Reserve()
	}
	if slot != nil {
		slot.Claim(&j, s.now())
	}
	out, created, err := s.Store.Create(ctx, j, s.limits(j))
	switch {
	case slot != nil && created && err == nil:
		slot.Start(out)
	case slot != nil:
		slot.Release()
	}
	if err != nil {
		return out, false, err
	}
	if created && slot == nil {
		s.kick()
	}
	return out, created, nil
}

// replay reports whether j repeats an earlier request: its owner already has a job of
// its Idempotency-Key (the store then answers it, or refuses a different body).
func (s *Service) replay(ctx context.Context, j job.Job) bool {
	if j.IdempotencyKey == "" {
		return false
	}
	_, err := s.Store.ByIdempotencyKey(ctx, j.OwnerSubject, j.IdempotencyKey)
	return err == nil
}

// noWait refuses j with EConflict when its partition has no room for it now: fewer
// than resources.nodes available nodes with resources.gpus free GPUs each, as the
// probe account reads them (a read at most seconds old). Slurm may still queue a job
// that fits (a higher-priority job pending, a node taken meanwhile): the check is
// about free GPUs, not the scheduler's order.
func (s *Service) noWait(ctx context.Context, j job.Job) error {
	cl, err := s.cluster(j)
	if err != nil {
		return err
	}
	r := j.Spec.Resources
	if cl.Capacity == nil {
		return job.Errorf(job.EUnavailable, "resources.no_wait: cluster %s cannot read its free GPUs (no probe account); submit without no_wait to queue", j.Cluster)
	}
	capa, err := cl.Capacity(ctx)
	if err != nil {
		return &job.Error{Code: job.EUnavailable, Err: err,
			Message: fmt.Sprintf("resources.no_wait: cannot read the free GPUs of partition %s now; retry, or submit without no_wait to queue", r.Partition)}
	}
	free, fits := capa.FreeGPUs(r.Partition, r.Nodes, r.GPUs)
	if fits {
		return nil
	}
	e := job.Errorf(job.EConflict, "no room now: partition %s has %d free GPUs and this job needs %d (%d on each of %d nodes); "+
		"resources.no_wait refuses it instead of queueing: submit later, or without no_wait to wait in the queue",
		r.Partition, free, r.TotalGPUs(), r.GPUs, max(r.Nodes, 1))
	e.Details = map[string]any{"free_gpus": free, "requested_gpus": r.TotalGPUs(), "cluster": j.Cluster, "partition": r.Partition}
	return e
}

// Cancel cancels j in any non-terminal state; a cancelled job answers as it is. A job
// in submitting is cancelled in the store only: the submitter sees the conflict when
// it records its sbatch result and cancels that Slurm job. by names the caller.
func (s *Service) Cancel(ctx context.Context, j job.Job, by string) (job.Job, error) {
	for range 5 {
		switch {
		case j.State == job.Cancelled:
			return j, nil
		case j.State.Terminal():
			return j, job.Errorf(job.EConflict, "job already %s; only unfinished jobs can be cancelled", j.State)
		}
		if j.SlurmID != "" && j.State != job.Submitting {
			cl, err := s.slurmCluster(j)
			if err != nil {
				return j, err
			}
			if err := cl.Slurm.Cancel(ctx, j.User, j.SlurmID); err != nil {
				return j, err
			}
		}
		out, err := s.transition(ctx, j, job.Change{From: j.State, To: job.Cancelled, Reason: "cancelled by " + by, ClearPause: true})
		if err == nil {
			return out, nil
		}
		if job.ErrorCode(err) != job.EConflict {
			return j, err
		}
		// The job moved under us (e.g. the submitter recorded its sbatch): look again.
		if j, err = s.Store.Get(ctx, j.ID); err != nil {
			return j, err
		}
	}
	return j, job.Errorf(job.EConflict, "job keeps changing state; retry")
}

// Pause pauses j. A queued job is held (paused at once, pending false); a running
// job is marked pausing, asked through the control file to checkpoint and exit, and
// signalled (pending true: the reconciler sees it paused once it exits). When the
// request cannot reach the job the pausing mark is reverted. Pausing a paused or
// pausing job answers it as it is.
func (s *Service) Pause(ctx context.Context, j job.Job, by string) (out job.Job, pending bool, err error) {
	switch j.State {
	case job.Paused, job.Pausing:
		return j, false, nil
	case job.Submitting:
		return j, false, job.Errorf(job.EConflict, "job is still being submitted; retry in a few seconds")
	case job.Queued, job.Running:
	default:
		return j, false, job.Errorf(job.EConflict, "job already %s; only queued or running jobs can be paused", j.State)
	}
	cl, err := s.slurmCluster(j)
	if err != nil {
		return j, false, err
	}
	if j.State == job.Queued {
		// Never signal a pending job (scancel --signal retries ~95 s): hold it.
		if err := cl.Slurm.Hold(ctx, j.User, j.SlurmID); err != nil {
			return j, false, err
		}
		out, err := s.transition(ctx, j, job.Change{From: job.Queued, To: job.Paused, SetPause: true, Reason: "paused by " + by})
		return out, false, err
	}
	// Running: mark pausing first so the reconciler reads the job's end as a pause,
	// then ask the trainer to checkpoint and exit.
	out, err = s.transition(ctx, j, job.Change{From: job.Running, To: job.Pausing, SetPause: true, Reason: "pause requested by " + by})
	if err != nil {
		return j, false, err
	}
	err = cl.Files.WriteFile(ctx, j.User, path.Join(j.JobDir, job.ControlJSON), job.ControlPause, 0o644)
	if err == nil {
		err = cl.Slurm.Signal(ctx, j.User, j.SlurmID)
	}
	if err != nil {
		revert := job.Change{From: job.Pausing, To: job.Running, ClearPause: true, Reason: job.ClearReason}
		if _, rerr := s.Store.Transition(context.WithoutCancel(ctx), j.ID, revert); rerr != nil {
			s.log().Error("revert failed pause", "job", j.ID, "err", rerr)
		}
		return j, false, err
	}
	return out, true, nil
}

// Resume resumes a paused job: it clears the pause request in the control file, then
// releases the held Slurm job, or, when Slurm no longer holds it (finished with its
// checkpoint, or purged from Slurm's memory), queues the same job directory for a new
// submission. A resume that would pass the owner's limits is refused (ETooMany): the
// job waits to start again and holds its GPUs again.
func (s *Service) Resume(ctx context.Context, j job.Job, by string) (job.Job, error) {
	switch j.State {
	case job.Paused:
	case job.Pausing:
		return j, job.Errorf(job.EConflict, "job is still pausing (writing its checkpoint); resume once it is paused")
	case job.Submitting, job.Queued, job.Running:
		return j, job.Errorf(job.EConflict, "job is %s, not paused; only a paused job can be resumed", j.State)
	default:
		return j, job.Errorf(job.EConflict, "job already %s; a finished job cannot be resumed (submit it again)", j.State)
	}
	if lim := s.limits(j); !lim.None() {
		// The paused job itself is counted among the unfinished ones (Add.Active 0).
		u, err := s.Store.Usage(ctx, j.User, lim)
		if err != nil {
			return j, err
		}
		if err := lim.Check(u, quota.Add{Queued: 1, GPUs: j.Spec.Resources.TotalGPUs()}); err != nil {
			return j, err
		}
	}
	cl, err := s.slurmCluster(j)
	if err != nil {
		return j, err
	}
	if err := cl.Files.WriteFile(ctx, j.User, path.Join(j.JobDir, job.ControlJSON), job.ControlRun, 0o644); err != nil {
		return j, err
	}
	held := false
	if j.SlurmID != "" {
		st, err := cl.Slurm.Poll(ctx, j.User, []string{j.SlurmID})
		if err != nil {
			return j, err
		}
		if v, ok := st[j.SlurmID]; ok && !v.State.Terminal() {
			held = true
		}
	}
	c := job.Change{From: job.Paused, To: job.Submitting, ClearPause: true, Reason: "resubmitted: Slurm no longer holds the job"}
	if held {
		if err := cl.Slurm.Release(ctx, j.User, j.SlurmID); err != nil {
			return j, err
		}
		c = job.Change{From: job.Paused, To: job.Queued, ClearPause: true, Reason: "resumed by " + by}
	}
	out, err := s.transition(ctx, j, c)
	if err != nil {
		return j, err
	}
	if c.To == job.Submitting {
		s.kick()
	}
	return out, nil
}

// Purge removes the directory of a finished job on its cluster and records when;
// the job's record stays.
func (s *Service) Purge(ctx context.Context, j job.Job, by string) error {
	if !j.State.Terminal() {
		return job.Errorf(job.EConflict, "job is %s; cancel it or wait for it to finish before purging its files", j.State)
	}
	cl, err := s.cluster(j)
	if err != nil {
		return err
	}
	if cl.Dir == nil {
		return job.Errorf(job.EUnavailable, "artifact access is not configured for cluster %s", j.Cluster)
	}
	d, err := cl.Dir(j)
	if err != nil {
		return err
	}
	if err := d.Purge(ctx); err != nil {
		return err
	}
	if err := s.Store.MarkPurged(ctx, j.ID, s.now()); err != nil {
		s.log().Warn("record purge", "job", j.ID, "err", err)
	}
	s.log().Info("job directory purged", "job", j.ID, "dir", j.JobDir, "by", by)
	return nil
}

// Pin keeps (pinned) or releases a job's files past the cluster's retention period.
func (s *Service) Pin(ctx context.Context, j job.Job, pinned bool) error {
	return s.Store.SetPinned(ctx, j.ID, pinned)
}

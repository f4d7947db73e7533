// Package submit is the durable submitter: it takes jobs in state submitting from
// Postgres and, as the job's Unix user in one remote command, creates their job
// directory, writes job.json and job.sbatch and runs sbatch (SFTP and a separate
// sbatch for scripts too large for a command line).
//
// It is a small table-driven worker rather than a queue library: the jobs table is the
// queue. A claim leases a due job by moving its next_attempt_at forward (FOR UPDATE
// SKIP LOCKED), so replicas never work on the same job and a crash only delays it until
// the lease ends. Every attempt after the first begins by looking the job's tag up in
// Slurm, so an sbatch whose answer was lost is found instead of submitted twice.
package submit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/ftgate/ftgate/internal/job"
	"github.com/ftgate/ftgate/internal/metrics"
	"github.com/ftgate/ftgate/internal/slurm"
	"github.com/ftgate/ftgate/internal/worker"
)

// Store is the part of the job store the submitter uses.
type Store interface {
	ClaimSubmissions(ctx context.Context, limit int, lease time.Duration) ([]job.Job, error)
	RetrySubmission(ctx context.Context, id string, at time.Time, reason string) error
	Transition(ctx context.Context, id string, c job.Change) (job.Job, error)
}

// Slurm is the part of *slurm.Client the submitter uses.
type Slurm interface {
	Render(req slurm.Request) (string, error)
	Submit(ctx context.Context, user string, req slurm.Request) (slurm.Submitted, error)
	SubmitInDir(ctx context.Context, user string, req slurm.Request, jobDir string, jobJSON []byte) (slurm.Submitted, error)
	FindByTag(ctx context.Context, user, jobID string, since time.Time) (*slurm.Found, error)
	Cancel(ctx context.Context, user, id string) error
}

// Files is the part of *sshconn.Pool the submitter uses.
type Files interface {
	MkdirAll(ctx context.Context, user, path string, perm os.FileMode) error
	WriteFile(ctx context.Context, user, path string, data []byte, perm os.FileMode) error
}

// Cluster is one cluster's Slurm and file access.
type Cluster struct {
	Slurm Slurm
	Files Files
}

// Submitter submits jobs. Its zero durations take the defaults below.
type Submitter struct {
	Store    Store
	Clusters map[string]Cluster
	Log      *slog.Logger
	Metrics  *metrics.Metrics
	// Batch is how many jobs one pass claims (default 16).
	Batch int
	// Lease is how long a claimed job is hidden from other replicas (default 2m).
	Lease time.Duration
	// Interval between passes when not kicked (default 2s).
	Interval time.Duration
	// MaxAttempts before a job that keeps failing is marked failed (default 20).
	MaxAttempts int
	// Backoff returns the delay before attempt n+1 (default exponential from 1s to 5m, with jitter).
	Backoff func(attempt int) time.Duration
	Now     func() time.Time

	once  sync.Once
	kick  chan struct{}
	slots chan struct{} // one token per submission in flight (Batch)
	wg    sync.WaitGroup

	mu      sync.Mutex
	running bool            // Run works: Reserve may hand out slots
	ctx     context.Context // Run's
}

func (s *Submitter) init() { s.once.Do(s.setDefaults) }

func (s *Submitter) setDefaults() {
	if s.Batch <= 0 {
		s.Batch = 16
	}
	if s.Lease <= 0 {
		s.Lease = 2 * time.Minute
	}
	if s.Interval <= 0 {
		s.Interval = 2 * time.Second
	}
	if s.MaxAttempts <= 0 {
		s.MaxAttempts = 20
	}
	if s.Backoff == nil {
		s.Backoff = Backoff
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	s.kick = make(chan struct{}, 1)
	s.slots = make(chan struct{}, s.Batch)
}

// Backoff is the default retry delay: 1s doubling per attempt up to 5m, ±20% jitter.
func Backoff(attempt int) time.Duration { return worker.Backoff(attempt, time.Second, 5*time.Minute) }

// Kick wakes the worker for a new job without waiting for the interval.
func (s *Submitter) Kick() {
	s.init()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run works until ctx ends, with up to Batch submissions in flight. It claims as soon
// as it is kicked (a new job) or a submission ends, for as many jobs as there are free
// slots, so one slow sbatch never holds back the jobs claimed with it, and waits for
// the submissions in flight before returning.
func (s *Submitter) Run(ctx context.Context) {
	s.init()
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	s.mu.Lock()
	s.running, s.ctx = true, ctx
	s.mu.Unlock()
	defer s.wg.Wait()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()
	for {
		if free := s.Batch - len(s.slots); free > 0 && ctx.Err() == nil {
			jobs, err := s.Store.ClaimSubmissions(ctx, free, s.Lease)
			if err != nil && ctx.Err() == nil {
				s.Log.Warn("submit pass failed", "err", fmt.Errorf("claim submissions: %w", err))
			}
			for _, j := range jobs {
				// A Reserve between the count and here may have taken a slot: then
				// this waits (the job's lease runs) until a submission ends.
				s.slots <- struct{}{}
				s.wg.Add(1)
				go s.work(ctx, j)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
	}
}

// work submits j in the slot it holds, then frees the slot.
func (s *Submitter) work(ctx context.Context, j job.Job) {
	defer s.wg.Done()
	s.submitOne(ctx, j)
	<-s.slots
	// Jobs may have become due while every slot was busy (their kicks found no free
	// slot): claim again now that one is free.
	s.Kick()
}

// Slot is a submission slot taken before its job exists: the job is created already
// claimed by this replica (its first attempt, leased as a claim leases), and the
// submitter starts on it at once, without waking up and claiming it from the table.
// A replica that dies in between leaves a leased job that another replica claims when
// the lease ends, as after any claim. Exactly one of Start or Release must follow.
type Slot struct {
	s    *Submitter
	done bool
}

// Reserve takes a free slot while Run works; nil when none is free or Run is not
// running (the job is then created due, and a pass claims it).
func (s *Submitter) Reserve() *Slot {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running || s.ctx.Err() != nil {
		return nil
	}
	select {
	case s.slots <- struct{}{}:
	default:
		return nil
	}
	s.wg.Add(1) // Run waits for the slot's submission, or for its release
	return &Slot{s: s}
}

// Claim marks j, about to be created, as claimed by the slot: attempt 1, leased from
// now. The store creates it with these instead of due now.
func (sl *Slot) Claim(j *job.Job, now time.Time) {
	j.SubmitAttempts = 1
	j.NextAttempt = now.Add(sl.s.Lease)
}

// Start submits j, created with Claim, in the slot.
func (sl *Slot) Start(j job.Job) {
	if sl.done {
		return
	}
	sl.done = true
	sl.s.mu.Lock()
	ctx := sl.s.ctx
	sl.s.mu.Unlock()
	go sl.s.work(ctx, j)
}

// Release frees a slot whose job was not created.
func (sl *Slot) Release() {
	if sl.done {
		return
	}
	sl.done = true
	<-sl.s.slots
	sl.s.wg.Done()
}

// RunOnce claims the due jobs (at most Batch), works on each and waits for them; it
// returns how many it claimed.
func (s *Submitter) RunOnce(ctx context.Context) (int, error) {
	s.init()
	jobs, err := s.Store.ClaimSubmissions(ctx, s.Batch, s.Lease)
	if err != nil {
		return 0, fmt.Errorf("claim submissions: %w", err)
	}
	done := make(chan struct{}, len(jobs))
	for _, j := range jobs {
		go func() {
			defer func() { done <- struct{}{} }()
			s.submitOne(ctx, j)
		}()
	}
	for range jobs {
		<-done
	}
	return len(jobs), nil
}

// Request maps a job to its Slurm request.
func Request(j job.Job) slurm.Request {
	r := j.Spec.Resources
	return slurm.Request{JobID: j.ID, User: j.User, Partition: r.Partition, Nodes: r.Nodes,
		ProcsPerNode: j.Spec.Distributed.ProcessesPerNode, GPUs: r.GPUs, GPUType: r.GPUType,
		CPUs: r.CPUs, MemoryMB: r.MemoryMB, TimeLimitMinutes: r.TimeLimitMinutes}
}

func (s *Submitter) count(cluster, result string, start time.Time) {
	if s.Metrics == nil {
		return
	}
	s.Metrics.Submits.WithLabelValues(cluster, result).Inc()
	s.Metrics.SubmitDuration.WithLabelValues(cluster).Observe(time.Since(start).Seconds())
}

func (s *Submitter) submitOne(ctx context.Context, j job.Job) {
	start := time.Now()
	log := s.Log.With("job", j.ID, "user", j.User, "cluster", j.Cluster, "attempt", j.SubmitAttempts)
	cl, ok := s.Clusters[j.Cluster]
	if !ok {
		s.fail(ctx, log, j, fmt.Sprintf("cluster %q is not configured", j.Cluster))
		s.count(j.Cluster, "failed", start)
		return
	}
	// An attempt must end before its lease does, or another replica could start a
	// second one before this one's sbatch is visible to its tag lookup.
	actx, cancel := context.WithTimeout(ctx, max(s.Lease-10*time.Second, s.Lease/2))
	slurmID, err := s.attempt(actx, cl, j)
	cancel()
	if err != nil {
		code := job.ErrorCode(err)
		switch {
		case code == job.EInvalid || code == job.EUnprocessable:
			log.Info("submission refused", "err", err)
			s.fail(ctx, log, j, "submission refused: "+job.ErrorMessage(err))
			s.count(j.Cluster, "failed", start)
		case j.SubmitAttempts >= s.MaxAttempts:
			log.Warn("submission failed for good", "err", err)
			s.fail(ctx, log, j, fmt.Sprintf("submission failed after %d attempts: %v", j.SubmitAttempts, describe(err)))
			s.count(j.Cluster, "failed", start)
		default:
			next := s.Now().Add(s.Backoff(j.SubmitAttempts))
			log.Warn("submission will be retried", "err", err, "next", next)
			if rerr := s.Store.RetrySubmission(context.WithoutCancel(ctx), j.ID, next, "submit retry: "+describe(err)); rerr != nil {
				log.Error("schedule retry", "err", rerr)
			}
			s.count(j.Cluster, "retry", start)
		}
		return
	}
	_, err = s.Store.Transition(context.WithoutCancel(ctx), j.ID, job.Change{From: job.Submitting, To: job.Queued,
		SlurmID: slurmID, SlurmState: string(slurm.StatePending), Reason: job.ClearReason})
	if job.ErrorCode(err) == job.EConflict {
		// Cancelled while we submitted: cancel what we created.
		log.Info("job cancelled during submission; cancelling its Slurm job", "slurm_id", slurmID)
		if cerr := cl.Slurm.Cancel(context.WithoutCancel(ctx), j.User, slurmID); cerr != nil {
			log.Error("cancel Slurm job of a cancelled submission", "slurm_id", slurmID, "err", cerr)
		}
		s.count(j.Cluster, "cancelled", start)
		return
	}
	if err != nil {
		// The Slurm job exists; the next attempt finds it by its tag.
		log.Error("record submission", "slurm_id", slurmID, "err", err)
		s.count(j.Cluster, "retry", start)
		return
	}
	log.Info("submitted", "slurm_id", slurmID, "duration", time.Since(start))
	s.count(j.Cluster, "submitted", start)
}

func describe(err error) string {
	var je *job.Error
	if errors.As(err, &je) {
		if je.Err != nil {
			return je.Message + ": " + je.Err.Error()
		}
		return je.Message
	}
	return err.Error()
}

// attempt does one submission and returns the Slurm job id.
func (s *Submitter) attempt(ctx context.Context, cl Cluster, j job.Job) (string, error) {
	req := Request(j)
	if j.SubmitAttempts > 1 || j.SlurmID != "" {
		// An earlier attempt may have reached sbatch: find it by its tag. For a
		// resubmission of a purged job, the old Slurm id does not count.
		f, err := cl.Slurm.FindByTag(ctx, j.User, j.ID, j.CreatedAt.Add(-time.Minute))
		if err != nil {
			return "", fmt.Errorf("look up earlier submission: %w", err)
		}
		if f != nil && f.ID != j.SlurmID {
			return f.ID, nil
		}
	}
	script, err := cl.Slurm.Render(req)
	if err != nil {
		return "", err
	}
	if j.JobDir == "" {
		return "", job.Errorf(job.EInternal, "job has no job directory")
	}
	if len(script) <= slurm.MaxInlineScript {
		// One remote command: mkdir, job.json, job.sbatch and sbatch.
		sub, err := cl.Slurm.SubmitInDir(ctx, j.User, req, j.JobDir, j.Spec.JSON())
		if err != nil {
			return "", err
		}
		if AfterSbatch != nil {
			AfterSbatch(j.ID, sub.ID)
		}
		return sub.ID, nil
	}
	// A script too large for a command line: SFTP for the files, then sbatch.
	if err := cl.Files.MkdirAll(ctx, j.User, j.JobDir, 0o700); err != nil {
		return "", fmt.Errorf("create job directory: %w", err)
	}
	if err := cl.Files.WriteFile(ctx, j.User, j.JobDir+"/job.json", j.Spec.JSON(), 0o644); err != nil {
		return "", fmt.Errorf("write job.json: %w", err)
	}
	if err := cl.Files.WriteFile(ctx, j.User, j.JobDir+"/job.sbatch", []byte(script), 0o644); err != nil {
		return "", fmt.Errorf("write job.sbatch: %w", err)
	}
	sub, err := cl.Slurm.Submit(ctx, j.User, req)
	if err != nil {
		return "", err
	}
	if AfterSbatch != nil {
		AfterSbatch(j.ID, sub.ID)
	}
	return sub.ID, nil
}

// AfterSbatch, when set, runs after each successful sbatch and before its result is
// recorded. It is a test hook: only the gateway's test binary sets it (to crash at that
// exact point); production code leaves it nil.
var AfterSbatch func(jobID, slurmID string)

func (s *Submitter) fail(ctx context.Context, log *slog.Logger, j job.Job, reason string) {
	_, err := s.Store.Transition(context.WithoutCancel(ctx), j.ID, job.Change{From: job.Submitting, To: job.Failed, Reason: reason})
	if err != nil && job.ErrorCode(err) != job.EConflict {
		log.Error("mark job failed", "err", err)
	}
}

package slurm

import (
	"context"
	"errors"
	"fmt"

	"github.com/ftgate/ftgate/internal/job"
)

func checkSlurmID(id string) error {
	if !job.SlurmIDRE.MatchString(id) {
		return invalid("slurm_job_id", "must match %s, got %q", job.SlurmIDRE, id)
	}
	return nil
}

// control runs one scontrol/scancel action and maps its errors.
func (c *Client) control(ctx context.Context, user, id string, args ...string) error {
	if err := checkSlurmID(id); err != nil {
		return err
	}
	_, stderr, status, err := c.run(ctx, user, "", append(args, id)...)
	if err != nil {
		return fmt.Errorf("run %s: %w", args[0], err)
	}
	if status == 0 {
		return nil
	}
	return controlError(args, id, stderr, status)
}

// Cancel cancels the job; cancelling a finished or unknown job is success.
func (c *Client) Cancel(ctx context.Context, user, id string) error {
	err := c.control(ctx, user, id, "scancel")
	if errors.Is(err, ErrInvalidJob) {
		return nil
	}
	return err
}

// Signal sends the cluster's checkpoint signal to the job's batch shell
// (scancel --batch --signal). It refuses PENDING jobs with job.EConflict (ErrPending):
// Slurm would retry such a signal for about 95 s and fail.
func (c *Client) Signal(ctx context.Context, user, id string) error {
	if err := checkSlurmID(id); err != nil {
		return err
	}
	st, err := c.Poll(ctx, user, []string{id})
	if err != nil {
		return err
	}
	s, ok := st[id]
	switch {
	case !ok:
		return &job.Error{Code: job.ENotFound, Message: "Slurm no longer knows job " + id, Err: ErrInvalidJob}
	case s.State == StatePending || s.State == StateRequeued || s.State == StateConfiguring:
		return &job.Error{Code: job.EConflict, Message: "Slurm job " + id + " is pending; it cannot receive a signal", Err: ErrPending}
	case s.State != StateRunning:
		return &job.Error{Code: job.EConflict, Message: fmt.Sprintf("Slurm job %s is %s; it cannot receive a signal", id, s.State)}
	}
	return c.control(ctx, user, id, "scancel", "--batch", "--signal="+c.opts.CheckpointSignal)
}

// Hold holds a pending job (scontrol hold).
func (c *Client) Hold(ctx context.Context, user, id string) error {
	return c.control(ctx, user, id, "scontrol", "hold")
}

// Release releases a held job. It does not set StartTime=now: after a requeue Slurm
// holds the job back until requeue time + cred_expire + 1 s, and starting it earlier
// fails the run at once ("Killing non-startable batch JobId=N: Job credential revoked",
// FAILED 1:0, seen on 22.05 with a resume 0.3 s after a pause). Once that time has
// passed, release alone starts the job within a scheduling pass (0.23 s measured).
func (c *Client) Release(ctx context.Context, user, id string) error {
	return c.control(ctx, user, id, "scontrol", "release")
}

// Requeue requeues a running or finished job (scontrol requeue).
func (c *Client) Requeue(ctx context.Context, user, id string) error {
	return c.control(ctx, user, id, "scontrol", "requeue")
}

// RequeueHold requeues a job in held state (scontrol requeuehold).
func (c *Client) RequeueHold(ctx context.Context, user, id string) error {
	return c.control(ctx, user, id, "scontrol", "requeuehold")
}

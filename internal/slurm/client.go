package slurm

import (
	"context"
	"errors"
	"time"
)

var errTODO = errors.New("slurm: not implemented yet")

// Client runs Slurm commands for one cluster.
type Client struct {
	r    Runner
	opts Options
}

// New validates o, loads the batch template (embedded, or o.TemplateDir) and returns a Client.
func New(r Runner, o Options) (*Client, error) {
	return &Client{r: r, opts: o}, nil
}

// Render validates req and returns the batch script (the dry-run path).
func (c *Client) Render(req Request) (string, error) { return "", errTODO }

// Submit validates req, refuses requests the partition can never run (more CPUs, GPUs
// or memory than its largest node), renders the script and pipes it to
// `sbatch --parsable` as user.
func (c *Client) Submit(ctx context.Context, user string, req Request) (Submitted, error) {
	return Submitted{}, errTODO
}

// FindByTag returns the newest Slurm job tagged with the gateway job id (squeue first,
// then sacct from since), or nil when there is none.
func (c *Client) FindByTag(ctx context.Context, user, jobID string, since time.Time) (*Found, error) {
	return nil, errTODO
}

// Cancel cancels the job; cancelling a finished or unknown job is success.
func (c *Client) Cancel(ctx context.Context, user, id string) error { return errTODO }

// Signal sends the cluster's checkpoint signal to the job's batch shell
// (scancel --batch --signal). It refuses PENDING jobs with job.EConflict (ErrPending).
func (c *Client) Signal(ctx context.Context, user, id string) error { return errTODO }

// Hold holds a pending job (scontrol hold).
func (c *Client) Hold(ctx context.Context, user, id string) error { return errTODO }

// Release releases a held job and, once it is PENDING, sets StartTime=now so it does
// not wait out the requeue delay.
func (c *Client) Release(ctx context.Context, user, id string) error { return errTODO }

// Requeue requeues a running or finished job (scontrol requeue).
func (c *Client) Requeue(ctx context.Context, user, id string) error { return errTODO }

// RequeueHold requeues a job in held state (scontrol requeuehold).
func (c *Client) RequeueHold(ctx context.Context, user, id string) error { return errTODO }

// Poll returns the status of each id Slurm still knows; ids unknown to both squeue and
// sacct are absent from the map.
func (c *Client) Poll(ctx context.Context, user string, ids []string) (map[string]Status, error) {
	return nil, errTODO
}

// Capacity returns nodes and partitions with CPU, memory and GPU totals and allocations.
func (c *Client) Capacity(ctx context.Context, user string) (*Capacity, error) {
	return nil, errTODO
}

// ReadFiles reads many small files in one remote command, at most maxEach bytes each.
// The result is in the order of paths; missing files have Exists false.
func (c *Client) ReadFiles(ctx context.Context, user string, paths []string, maxEach int64) ([]File, error) {
	return nil, errTODO
}

// Tail reads at most max bytes of path from byte offset and returns them with the
// offset to continue from. A missing file returns no data and next == offset. A file
// now shorter than offset was truncated or replaced: Tail then reads from byte 0, so
// next < offset tells the caller it started over.
func (c *Client) Tail(ctx context.Context, user, path string, offset, max int64) (data []byte, next int64, err error) {
	return nil, 0, errTODO
}

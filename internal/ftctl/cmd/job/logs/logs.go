package logs

import (
	"context"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
)

// LogsOptions are the options of `ftctl logs`.
type LogsOptions struct {
	IO     *cmdutil.IOStreams
	Client func() (*client.Client, error)
	JobID  string
	Follow bool
	Tail   int
}

// NewCmdLogs returns `ftctl logs JOB`.
func NewCmdLogs(f *cmdutil.Factory, runF func(context.Context, *LogsOptions) error) *cobra.Command {
	opts := &LogsOptions{Tail: -1}
	cmd := &cobra.Command{
		Use:   "logs JOB [-f] [--tail N]",
		Short: "Print a job's output (the Slurm output file)",
		Long: `Print a job's output: what the trainer and the batch script wrote to the Slurm
output file (kept across restarts). With -f, keep printing new output until the job
ends; a dropped connection resumes where it stopped.`,
		Example: `  ftctl logs 01JD5X3M8ZQ
  ftctl logs 01JD5X3M8ZQ --tail 20 -f`,
		Args: cmdutil.JobArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO, opts.Client, opts.JobID = f.IO, f.APIClient, args[0]
			if opts.Tail < -1 || opts.Tail > 100000 {
				return cmdutil.UsageErrorf("--tail must be between 0 and 100000, got %d", opts.Tail)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runLogs(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Follow, "follow", "f", false, "keep printing new output until the job ends")
	cmd.Flags().IntVarP(&opts.Tail, "tail", "n", -1, "print only the last N lines first (-1: all)")
	return cmd
}

// logOffsetHeader carries the byte offset, in the log file, of the answer's first byte.
const logOffsetHeader = "X-Log-Offset"

func runLogs(ctx context.Context, opts *LogsOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	var offset int64 = -1
	backoff := 500 * time.Millisecond
	for attempt := 0; ; attempt++ {
		lo := client.LogOptions{Follow: opts.Follow}
		switch {
		case offset >= 0:
			lo.Offset = offset
		case opts.Tail >= 0:
			lo.Tail = opts.Tail
		}
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if !opts.Follow {
			rctx, cancel = context.WithTimeout(ctx, 5*time.Minute)
		}
		resp, err := c.Logs(rctx, opts.JobID, lo)
		if err != nil {
			cancel()
			var ce *apiclient.ConnError
			if !opts.Follow || offset < 0 || !errors.As(err, &ce) || attempt > 30 {
				return err
			}
		} else {
			start := offset
			if h := resp.Header.Get(logOffsetHeader); h != "" {
				if n, perr := strconv.ParseInt(h, 10, 64); perr == nil {
					start = n
				}
			}
			if start < 0 {
				start = 0
			}
			n, cerr := io.Copy(opts.IO.Out, resp.Body)
			resp.Body.Close()
			cancel()
			offset = start + n
			if cerr == nil || !opts.Follow {
				// The server ends a follow stream when the job has ended.
				return cerr
			}
			attempt = 0
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

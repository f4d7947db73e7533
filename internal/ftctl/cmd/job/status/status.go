package status

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/shared"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/render"
	"github.com/ftgate/ftgate/internal/job"
)

// JobStatusOptions are the options of `ftctl status`.
type JobStatusOptions struct {
	IO     *cmdutil.IOStreams
	Client func() (*client.Client, error)
	Now    func() time.Time
	JobID  string
	JSON   bool
}

// NewCmdJobStatus returns `ftctl status JOB`.
func NewCmdJobStatus(f *cmdutil.Factory, runF func(context.Context, *JobStatusOptions) error) *cobra.Command {
	opts := &JobStatusOptions{}
	cmd := &cobra.Command{
		Use:   "status JOB",
		Short: "Show a job: state and reason, Slurm id, progress, restarts, checkpoints",
		Example: `  ftctl status 01JD5X3M8ZQ
  ftctl status 01JD5X3M8ZQ --json`,
		Args: cmdutil.JobArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO, opts.Client, opts.Now, opts.JobID = f.IO, f.APIClient, f.Clock(), args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runJobStatus(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the gateway's JSON answer")
	return cmd
}

// listCheckpoints reads GET /api/training/{id}/checkpoints: the complete ones, oldest
// first. A job without a directory yet (404) has none.
func listCheckpoints(ctx context.Context, c *client.Client, id string) ([]client.Checkpoint, error) {
	out, err := c.Checkpoints(ctx, id)
	if client.IsStatus(err, http.StatusNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var done []client.Checkpoint
	for _, cp := range out.Checkpoints {
		if cp.Complete {
			done = append(done, cp)
		}
	}
	return done, nil
}

func runJobStatus(ctx context.Context, opts *JobStatusOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiclient.DefaultTimeout)
	defer cancel()
	j, err := c.Job(ctx, opts.JobID)
	if err != nil {
		return err
	}
	if opts.JSON {
		return cmdutil.PrintJSON(opts.IO.Out, j)
	}
	cps, cpErr := listCheckpoints(ctx, c, opts.JobID)
	writeJobStatus(opts.IO.Out, j, cps, cpErr, opts.Now())
	return nil
}

func writeJobStatus(w io.Writer, j job.Job, cps []client.Checkpoint, cpErr error, now time.Time) {
	var rows [][2]string
	add := func(k, v string) {
		if v != "" {
			rows = append(rows, [2]string{k, v})
		}
	}
	s := j.Spec
	add("Job", j.ID)
	add("Name", s.Name)
	add("User", j.User)
	state := string(j.State)
	if j.Reason != "" {
		state += " (" + j.Reason + ")"
	}
	add("State", state)
	slurm := "-"
	if j.SlurmID != "" {
		slurm = j.SlurmID
		if j.SlurmState != "" {
			slurm += " " + j.SlurmState
		}
	}
	add("Slurm job", slurm)
	res := s.Resources
	where := j.Cluster
	if res.Partition != "" {
		where += ", partition " + res.Partition
	}
	add("Cluster", where)
	add("Method", s.Method)
	add("Model", s.Model)
	add("Dataset", s.Dataset.Path)
	add("Eval dataset", s.Dataset.EvalPath)
	gpus := render.Plural(res.GPUs, "GPU", "GPUs")
	if res.GPUType != "" {
		gpus += " (" + res.GPUType + ")"
	}
	add("Resources", fmt.Sprintf("%s, %s, %d MB, time limit %s", gpus, render.Plural(res.CPUs, "CPU", "CPUs"), res.MemoryMB,
		render.FormatDuration(time.Duration(res.TimeLimitMinutes)*time.Minute)))
	p := j.Progress
	if p.Phase != "" || p.Step > 0 {
		add("Phase", p.Phase)
		add("Progress", shared.ProgressLine(p))
	}
	add("Restarts", fmt.Sprint(j.RestartCount))
	add("Error", p.Error)
	add("Created", timeAgo(&j.CreatedAt, now))
	add("Started", timeAgo(j.StartedAt, now))
	add("Ended", timeAgo(j.EndedAt, now))
	if j.StartedAt != nil {
		add("Elapsed", shared.Elapsed(j, now))
	}
	add("Job directory", j.JobDir)
	switch {
	case cpErr != nil:
		add("Checkpoints", "unknown ("+firstLine(cpErr.Error())+")")
	case len(cps) == 0:
		add("Checkpoints", render.Dash(p.LatestCheckpoint))
	default:
		names := make([]string, len(cps))
		for i, cp := range cps {
			names[i] = cp.Name
			if cp.Loss != nil {
				names[i] += " loss " + render.FormatLoss(cp.Loss)
			}
			if cp.Best {
				names[i] += " (best)"
			}
		}
		add("Checkpoints", strings.Join(names, ", "))
	}
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%-*s  %s\n", width+1, r[0]+":", r[1])
	}
	_, _ = io.WriteString(w, b.String())
}

func timeAgo(t *time.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), render.FormatAge(*t, now))
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

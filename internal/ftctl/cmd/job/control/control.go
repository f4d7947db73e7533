package control

import (
	"context"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/render"
	"github.com/ftgate/ftgate/internal/job"
)

// ControlOptions are the options of `ftctl pause|resume|cancel`.
type ControlOptions struct {
	IO     *cmdutil.IOStreams
	Client func() (*client.Client, error)
	Action string
	JobID  string
	JSON   bool
}

var controlHelp = map[string][2]string{
	"pause": {"Pause a job: a running job checkpoints and stops, a queued job is held",
		`Pause a job. A running job writes a checkpoint and stops (state pausing, then
paused); a queued job is held in the queue (paused at once). Pausing a paused job
changes nothing. Resume it with ftctl resume.`},
	"resume": {"Resume a paused job from its latest checkpoint",
		`Resume a paused job: it is queued again and continues from its latest
checkpoint. Resuming a job that is already queued or running changes nothing.`},
	"cancel": {"Cancel a job",
		`Cancel a job that has not finished. Cancelling a cancelled job changes nothing.
Its checkpoints and logs stay available for download.`},
}

// NewCmdControl returns `ftctl pause`, `ftctl resume` or `ftctl cancel`.
func NewCmdControl(f *cmdutil.Factory, action string, runF func(context.Context, *ControlOptions) error) *cobra.Command {
	opts := &ControlOptions{Action: action}
	cmd := &cobra.Command{
		Use:     action + " JOB",
		Short:   controlHelp[action][0],
		Long:    controlHelp[action][1],
		Example: "  ftctl " + action + " 01JD5X3M8ZQ",
		Args:    cmdutil.JobArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO, opts.Client, opts.JobID = f.IO, f.APIClient, args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runControl(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the job as JSON after the change")
	return cmd
}

func runControl(ctx context.Context, opts *ControlOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiclient.DefaultTimeout)
	defer cancel()
	before, err := c.Job(ctx, opts.JobID)
	if err != nil {
		return err
	}
	act := map[string]func(context.Context, string) (client.Job, error){"pause": c.Pause, "resume": c.Resume, "cancel": c.Cancel}[opts.Action]
	if act == nil {
		return fmt.Errorf("unknown action %q", opts.Action)
	}
	after, err := act(ctx, opts.JobID)
	if err != nil && opts.Action == "resume" && client.IsStatus(err, http.StatusConflict) {
		// Resuming a job that already runs again is not a mistake.
		now, gerr := c.Job(ctx, opts.JobID)
		if gerr == nil && (now.State == job.Queued || now.State == job.Running || now.State == job.Submitting) {
			if opts.JSON {
				return cmdutil.PrintJSON(opts.IO.Out, now)
			}
			fmt.Fprintf(opts.IO.Out, "Job %s is already %s; nothing to resume\n", opts.JobID, now.State)
			return nil
		}
	}
	if err != nil {
		return err
	}
	if opts.JSON {
		return cmdutil.PrintJSON(opts.IO.Out, after)
	}
	fmt.Fprintln(opts.IO.Out, controlLine(opts.Action, before, after))
	return nil
}

func controlLine(action string, before, after job.Job) string {
	id := after.ID
	if id == "" {
		id = before.ID
	}
	switch action {
	case "pause":
		switch {
		case before.State == job.Paused:
			return fmt.Sprintf("Job %s is already paused; resume it with `ftctl resume %s`", id, id)
		case before.State == job.Pausing:
			return fmt.Sprintf("Job %s is already pausing: its trainer is writing a checkpoint", id)
		case after.State == job.Pausing:
			return fmt.Sprintf("Pausing job %s: its trainer is writing a checkpoint; `ftctl status %s` shows when it is paused", id, id)
		}
		return fmt.Sprintf("Paused job %s; resume it with `ftctl resume %s`", id, id)
	case "resume":
		if after.State == job.Submitting {
			return fmt.Sprintf("Resumed job %s: Slurm no longer held it, so it is being submitted again and continues from its latest checkpoint", id)
		}
		from := ""
		if cp := after.Progress.LatestCheckpoint; cp != "" {
			from = " from checkpoint " + cp
		}
		return fmt.Sprintf("Resumed job %s: %s, continuing%s", id, after.State, render.OrDefault(from, " from its latest checkpoint"))
	case "cancel":
		if before.State == job.Cancelled {
			return fmt.Sprintf("Job %s is already cancelled", id)
		}
		return fmt.Sprintf("Cancelled job %s", id)
	}
	return fmt.Sprintf("Job %s is %s", id, after.State)
}

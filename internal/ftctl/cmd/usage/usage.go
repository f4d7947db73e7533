// Package usage is `ftctl usage`: what a user holds against the gateway's limits.
package usage

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/render"
	"github.com/ftgate/ftgate/internal/quota"
)

// UsageOptions are the options of `ftctl usage`.
type UsageOptions struct {
	IO     *cmdutil.IOStreams
	Client func() (*client.Client, error)
	JSON   bool
	User   string
	// Now is the clock for "frees up in" (nil: time.Now).
	Now func() time.Time
}

// NewCmdUsage returns `ftctl usage`.
func NewCmdUsage(f *cmdutil.Factory, runF func(context.Context, *UsageOptions) error) *cobra.Command {
	opts := &UsageOptions{}
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "Show your jobs, GPUs and GPU-hours against the gateway's limits",
		Long: `Show what you hold against the gateway's limits: unfinished jobs, jobs waiting to
start (the queue cap), GPUs of your queued and running jobs, and the GPU-hours your
runs used in the rolling window (every restart is a run; running ones count up to
now). A limit of "-" is no limit. At the GPU-hour limit it says when it frees up.

Admins may look at any user with --user.`,
		Example: `  ftctl usage
  ftctl usage --user bob
  ftctl usage --json | jq .gpu_hours`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO, opts.Client = f.IO, f.APIClient
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runUsage(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the gateway's JSON answer")
	cmd.Flags().StringVar(&opts.User, "user", "", "another user's usage (admins only)")
	return cmd
}

func runUsage(ctx context.Context, opts *UsageOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiclient.DefaultTimeout)
	defer cancel()
	u, err := c.Usage(ctx, opts.User)
	if err != nil {
		return err
	}
	if opts.JSON {
		return cmdutil.PrintJSON(opts.IO.Out, u)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	return Render(opts.IO.Out, u, now())
}

// barWidth is the inner width of the usage bars.
const barWidth = 20

// Render writes u as a table with one bar per limit.
func Render(w io.Writer, u client.Usage, now time.Time) error {
	groups := "none"
	if len(u.Groups) > 0 {
		groups = strings.Join(u.Groups, ", ")
	}
	window := quota.FormatWindow(time.Duration(u.Limits.WindowSeconds) * time.Second)
	if _, err := fmt.Fprintf(w, "User %s (groups: %s)\n\n", u.User, groups); err != nil {
		return err
	}
	t := render.NewTable("LIMIT", "USED", "MAX", "")
	t.AlignRight(1, 2)
	row := func(name string, used, max float64, format func(float64) string) {
		if max <= 0 {
			t.Row(name, format(used), "-", "no limit")
			return
		}
		pct := int(used * 100 / max)
		t.Row(name, format(used), format(max), fmt.Sprintf("%s %d%%", render.ProgressBar(int64(used*1000), int64(max*1000), barWidth), pct))
	}
	count := func(v float64) string { return strconv.Itoa(int(v)) }
	hours := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	l := u.Limits
	row("unfinished jobs", float64(u.ActiveJobs), float64(l.MaxActiveJobs), count)
	row("waiting to start", float64(u.QueuedJobs), float64(l.MaxQueuedJobs), count)
	row("GPUs queued+running", float64(u.GPUsHeld), float64(l.MaxGPUs), count)
	row("GPU-hours ("+window+")", u.GPUHours, l.GPUHoursPerWindow, hours)
	for _, g := range u.GroupBudgets {
		row("group "+g.Group+" GPU-hours (shared)", g.GPUHours, g.GPUHoursPerWindow, hours)
	}
	if err := t.Render(w); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nGPUs in use now: %d\n", u.GPUsInUse)
	if err == nil && l.GPUHoursPerWindow > 0 && u.GPUHours >= l.GPUHoursPerWindow {
		if u.GPUHoursFreesAt != nil {
			_, err = fmt.Fprintf(w, "GPU-hour limit reached: new jobs are accepted again at %s (in %s)\n",
				u.GPUHoursFreesAt.UTC().Format(time.RFC3339), render.FormatDuration(u.GPUHoursFreesAt.Sub(now)))
		} else {
			_, err = fmt.Fprintln(w, "GPU-hour limit reached: your running jobs alone hold it; it frees up after they end")
		}
	}
	for _, g := range u.GroupBudgets {
		switch {
		case err != nil || g.GPUHours < g.GPUHoursPerWindow:
		case g.FreesAt != nil:
			_, err = fmt.Fprintf(w, "Group %s's budget is used up: new GPU jobs are accepted again at %s (in %s)\n",
				g.Group, g.FreesAt.UTC().Format(time.RFC3339), render.FormatDuration(g.FreesAt.Sub(now)))
		default:
			_, err = fmt.Fprintf(w, "Group %s's budget is used up by its running jobs; it frees up after they end\n", g.Group)
		}
	}
	return err
}

package list

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strconv"
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

// ListOptions are the options of `ftctl list`.
type ListOptions struct {
	IO       *cmdutil.IOStreams
	Client   func() (*client.Client, error)
	Now      func() time.Time
	States   []string
	Since    string
	Until    string
	Model    string
	Search   string
	Sort     string
	Order    string
	Cluster  string
	User     string
	AllUsers bool
	Limit    int
	Cursor   string
	JSON     bool
}

// NewCmdList returns `ftctl list`.
func NewCmdList(f *cmdutil.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{}
	cmd := &cobra.Command{
		Use:     "list [--state S] [--since T] [--until T] [--model M] [--search S] [--cluster C] [--sort K [--order O]] [--limit N]",
		Aliases: []string{"ls"},
		Short:   "List your jobs, newest first or sorted",
		Long: `List jobs, newest first, as a table: id, name, state, method, model, GPUs,
progress (step/total), latest loss, elapsed run time and age.

--search matches a substring of the name or the model (any case). --sort orders by
created (the default), duration (running time so far), loss or eval_loss (the
latest); --order asc|desc overrides the default direction (newest and longest first,
lowest loss first). Ties go by job id; jobs without a value come last either way.

--since and --until take a duration back from now (90m, 24h, 7d), a date
(2026-01-02, UTC) or an RFC 3339 time. Admins see everyone's jobs with --all-users
or one user's with --user.`,
		Example: `  ftctl list
  ftctl ls --state running,queued
  ftctl list --since 7d --model builtin:tiny --limit 50
  ftctl list --sort loss --search llama
  ftctl list --sort duration --order asc
  ftctl list --cursor NEXT     # the next page, as printed after a full page`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO, opts.Client, opts.Now = f.IO, f.APIClient, f.Clock()
			if err := cmdutil.CheckLimit(opts.Limit); err != nil {
				return err
			}
			if opts.AllUsers && opts.User != "" {
				return cmdutil.UsageErrorf("--all-users and --user cannot be combined")
			}
			for _, s := range opts.States {
				for _, st := range strings.Split(s, ",") {
					if !job.State(strings.TrimSpace(st)).Valid() {
						return cmdutil.UsageErrorf("--state %q: want one of %s", st, joinStates())
					}
				}
			}
			if opts.Sort != "" && !slices.Contains(job.Sorts, job.Sort(opts.Sort)) {
				return cmdutil.UsageErrorf("--sort %q: want one of %s", opts.Sort, job.SortNames())
			}
			if opts.Order != "" && opts.Order != "asc" && opts.Order != "desc" {
				return cmdutil.UsageErrorf("--order %q: want asc or desc", opts.Order)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runList(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringSliceVar(&opts.States, "state", nil, "only jobs in these states (comma-separated): "+joinStates())
	cmd.Flags().StringVar(&opts.Since, "since", "", "only jobs created after: 24h, 7d, 2026-01-02 or RFC 3339")
	cmd.Flags().StringVar(&opts.Until, "until", "", "only jobs created before: 24h, 7d, 2026-01-02 or RFC 3339")
	cmd.Flags().StringVar(&opts.Model, "model", "", "only jobs of this model")
	cmd.Flags().StringVar(&opts.Search, "search", "", "only jobs whose name or model contains this (any case)")
	cmd.Flags().StringVar(&opts.Cluster, "cluster", "", "only jobs on this cluster")
	cmd.Flags().StringVar(&opts.Sort, "sort", "", "order by: "+job.SortNames())
	cmd.Flags().StringVar(&opts.Order, "order", "", "asc or desc (default: desc for created and duration, asc for losses)")
	cmd.Flags().StringVar(&opts.User, "user", "", "only this user's jobs (admins)")
	cmd.Flags().BoolVarP(&opts.AllUsers, "all-users", "A", false, "everyone's jobs (admins)")
	cmdutil.AddPageFlags(cmd, &opts.Limit, &opts.Cursor, 20, "jobs")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the gateway's JSON answer")
	return cmd
}

func joinStates() string {
	s := make([]string, len(job.States))
	for i, st := range job.States {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

// parseWhen turns 24h, 7d, a date or an RFC 3339 time into RFC 3339.
func parseWhen(flag, v string, now time.Time) (string, error) {
	if v == "" {
		return "", nil
	}
	if strings.HasSuffix(v, "d") {
		if n, err := strconv.Atoi(strings.TrimSuffix(v, "d")); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour).UTC().Format(time.RFC3339), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d).UTC().Format(time.RFC3339), nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t.Format(time.RFC3339), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC().Format(time.RFC3339), nil
	}
	return "", cmdutil.UsageErrorf("%s %q: want a duration (90m, 24h, 7d), a date (2026-01-02) or an RFC 3339 time", flag, v)
}

func runList(ctx context.Context, opts *ListOptions) error {
	now := opts.Now()
	lo := client.ListOptions{Limit: opts.Limit, Model: opts.Model, Search: opts.Search, Cluster: opts.Cluster,
		Sort: opts.Sort, Order: opts.Order, Cursor: opts.Cursor}
	for _, s := range opts.States {
		for _, st := range strings.Split(s, ",") {
			lo.States = append(lo.States, job.State(strings.TrimSpace(st)))
		}
	}
	var err error
	if lo.From, err = parseWhen("--since", opts.Since, now); err != nil {
		return err
	}
	if lo.To, err = parseWhen("--until", opts.Until, now); err != nil {
		return err
	}
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiclient.DefaultTimeout)
	defer cancel()
	lo.User = opts.User
	if lo.User == "" && !opts.AllUsers {
		// Admins see everyone's jobs unless asked for one user's: ask for our own.
		me, err := c.Whoami(ctx)
		if err != nil {
			return err
		}
		if me.Admin {
			lo.User = me.Username
		}
	}
	page, err := c.Jobs(ctx, lo)
	if err != nil {
		return err
	}
	if opts.JSON {
		return cmdutil.PrintJSON(opts.IO.Out, page)
	}
	if len(page.Jobs) == 0 {
		fmt.Fprintln(opts.IO.ErrOut, "No jobs match.")
		return nil
	}
	header := []string{"ID", "NAME", "STATE", "METHOD", "MODEL", "GPUS", "PROGRESS", "LOSS", "ELAPSED", "AGE"}
	if opts.AllUsers || opts.User != "" {
		header = append([]string{"ID", "USER"}, header[1:]...)
	}
	t := render.NewTable(header...)
	for _, j := range page.Jobs {
		row := []string{j.ID, render.Dash(j.Spec.Name), string(j.State), j.Spec.Method, shortModel(j.Spec.Model),
			strconv.Itoa(j.Spec.Resources.GPUs), progressCell(j), render.FormatLoss(j.Progress.Loss), shared.Elapsed(j, now), render.FormatAge(j.CreatedAt, now)}
		if opts.AllUsers || opts.User != "" {
			row = append([]string{j.ID, j.User}, row[1:]...)
		}
		t.Row(row...)
	}
	if err := t.Render(opts.IO.Out); err != nil {
		return err
	}
	cmdutil.PrintNextPage(opts.IO.ErrOut, "jobs", page.NextCursor)
	return nil
}

// shortModel shows the last element of a model path.
func shortModel(m string) string {
	if strings.HasPrefix(m, "/") {
		return path.Base(m)
	}
	return m
}

func progressCell(j job.Job) string {
	p := j.Progress
	if p.TotalSteps <= 0 {
		if p.Step > 0 {
			return strconv.FormatInt(p.Step, 10)
		}
		return "-"
	}
	return fmt.Sprintf("%d/%d", p.Step, p.TotalSteps)
}

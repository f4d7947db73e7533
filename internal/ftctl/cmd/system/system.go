package system

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/render"
	"github.com/ftgate/ftgate/internal/job"
)

// SystemOptions are the options of `ftctl system`.
type SystemOptions struct {
	IO     *cmdutil.IOStreams
	Client func() (*client.Client, error)
	JSON   bool
}

// NewCmdSystem returns `ftctl system`.
func NewCmdSystem(f *cmdutil.Factory, runF func(context.Context, *SystemOptions) error) *cobra.Command {
	opts := &SystemOptions{}
	cmd := &cobra.Command{
		Use:   "system",
		Short: "Show GPUs free and used per partition, and the queue",
		Long: `Show each cluster's partitions with their GPUs (total, allocated, free, most on
one node) and how many jobs are submitting, queued, running, pausing and paused.`,
		Example: `  ftctl system
  ftctl system --json | jq '.clusters[].partitions[] | {name, gpus_free}'`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO, opts.Client = f.IO, f.APIClient
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runSystem(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the gateway's JSON answer")
	return cmd
}

func runSystem(ctx context.Context, opts *SystemOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiclient.DefaultTimeout)
	defer cancel()
	st, err := c.SystemStatus(ctx)
	if err != nil {
		return err
	}
	if opts.JSON {
		return cmdutil.PrintJSON(opts.IO.Out, st)
	}
	t := render.NewTable("CLUSTER", "PARTITION", "STATE", "GPUS", "USED", "FREE", "MAX/NODE")
	t.AlignRight(3, 4, 5, 6)
	for _, cl := range st.Clusters {
		for _, p := range cl.Partitions {
			t.Row(cl.Name, p.Name, p.State, strconv.Itoa(p.GPUsTotal), strconv.Itoa(p.GPUsAllocated), strconv.Itoa(p.GPUsFree), strconv.Itoa(p.MaxNodeGPUs))
		}
	}
	out := opts.IO.Out
	if t.Len() > 0 {
		if err := t.Render(out); err != nil {
			return err
		}
		fmt.Fprintln(out)
	}
	q := render.NewTable("CLUSTER", "SUBMITTING", "QUEUED", "RUNNING", "PAUSING", "PAUSED")
	q.AlignRight(1, 2, 3, 4, 5)
	for _, cl := range st.Clusters {
		n := func(s job.State) string { return strconv.Itoa(cl.Jobs[string(s)]) }
		q.Row(cl.Name, n(job.Submitting), n(job.Queued), n(job.Running), n(job.Pausing), n(job.Paused))
	}
	if err := q.Render(out); err != nil {
		return err
	}
	for _, cl := range st.Clusters {
		if cl.CapacityError != "" {
			fmt.Fprintf(opts.IO.ErrOut, "warning: cluster %s: GPU capacity unknown: %s\n", cl.Name, cl.CapacityError)
		}
		if cl.ReconcilerError != "" {
			fmt.Fprintf(opts.IO.ErrOut, "warning: cluster %s: the gateway cannot follow Slurm: %s\n", cl.Name, cl.ReconcilerError)
		}
	}
	return nil
}

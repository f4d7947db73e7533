// Package list is `ftctl webhook list`.
package list

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/render"
)

// ListOptions are the options of `ftctl webhook list`.
type ListOptions struct {
	IO     *cmdutil.IOStreams
	Client func() (*client.Client, error)
	Now    func() time.Time
	Limit  int
	Cursor string
	JSON   bool
}

// NewCmdList returns `ftctl webhook list`.
func NewCmdList(f *cmdutil.Factory, runF func(context.Context, *ListOptions) error) *cobra.Command {
	opts := &ListOptions{}
	cmd := &cobra.Command{
		Use:     "list [--limit N] [--cursor C]",
		Aliases: []string{"ls"},
		Short:   "List your webhook endpoints",
		Long: `List your webhook endpoints, newest first: id, URL, events and age. Secrets are
never shown again; to replace a lost one, add the URL again and remove the old
endpoint.`,
		Example: `  ftctl webhook list
  ftctl webhook list --json | jq -r '.webhooks[].id'`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO, opts.Client, opts.Now = f.IO, f.APIClient, f.Clock()
			if err := cmdutil.CheckLimit(opts.Limit); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runList(cmd.Context(), opts)
		},
	}
	cmdutil.AddPageFlags(cmd, &opts.Limit, &opts.Cursor, 50, "endpoints")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the gateway's JSON answer")
	return cmd
}

func runList(ctx context.Context, opts *ListOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiclient.DefaultTimeout)
	defer cancel()
	page, err := c.Webhooks(ctx, client.PageOptions{Limit: opts.Limit, Cursor: opts.Cursor})
	if err != nil {
		return err
	}
	if opts.JSON {
		return cmdutil.PrintJSON(opts.IO.Out, page)
	}
	if len(page.Webhooks) == 0 {
		fmt.Fprintln(opts.IO.ErrOut, "No webhooks. Add one with ftctl webhook add URL --event job.succeeded")
		return nil
	}
	now := opts.Now()
	t := render.NewTable("ID", "URL", "EVENTS", "AGE")
	for _, w := range page.Webhooks {
		t.Row(w.ID, w.URL, strings.Join(w.Events, ","), render.FormatAge(w.CreatedAt, now))
	}
	if err := t.Render(opts.IO.Out); err != nil {
		return err
	}
	cmdutil.PrintNextPage(opts.IO.ErrOut, "webhooks", page.NextCursor)
	return nil
}

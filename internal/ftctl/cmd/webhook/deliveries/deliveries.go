// Package deliveries is `ftctl webhook deliveries`.
package deliveries

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/webhook/shared"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/render"
	"github.com/ftgate/ftgate/internal/webhook"
)

// DeliveriesOptions are the options of `ftctl webhook deliveries`.
type DeliveriesOptions struct {
	IO     *cmdutil.IOStreams
	Client func() (*client.Client, error)
	Now    func() time.Time
	ID     string
	Limit  int
	Cursor string
	JSON   bool
}

// NewCmdDeliveries returns `ftctl webhook deliveries`.
func NewCmdDeliveries(f *cmdutil.Factory, runF func(context.Context, *DeliveriesOptions) error) *cobra.Command {
	opts := &DeliveriesOptions{}
	cmd := &cobra.Command{
		Use:   "deliveries ID [--limit N] [--cursor C]",
		Short: "Show a webhook's delivery log",
		Long: `Show a webhook endpoint's delivery log, newest first: each event's delivery id
(the idempotency id your receiver sees), event, job, state (pending, delivered or
failed), attempts, the last answer (HTTP status or error) and when the next attempt
is due.`,
		Example: `  ftctl webhook deliveries 3f1c2b9e-8d4a-4f6e-9b1a-2c3d4e5f6a7b
  ftctl webhook deliveries 3f1c2b9e-8d4a-4f6e-9b1a-2c3d4e5f6a7b --json | jq '.deliveries[] | select(.state == "failed")'`,
		Args: shared.IDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO, opts.Client, opts.Now, opts.ID = f.IO, f.APIClient, f.Clock(), args[0]
			if err := cmdutil.CheckLimit(opts.Limit); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runDeliveries(cmd.Context(), opts)
		},
	}
	cmdutil.AddPageFlags(cmd, &opts.Limit, &opts.Cursor, 20, "deliveries")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the gateway's JSON answer")
	return cmd
}

func runDeliveries(ctx context.Context, opts *DeliveriesOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiclient.DefaultTimeout)
	defer cancel()
	page, err := c.WebhookDeliveries(ctx, opts.ID, client.PageOptions{Limit: opts.Limit, Cursor: opts.Cursor})
	if err != nil {
		return shared.NotFoundHint(err)
	}
	if opts.JSON {
		return cmdutil.PrintJSON(opts.IO.Out, page)
	}
	if len(page.Deliveries) == 0 {
		fmt.Fprintln(opts.IO.ErrOut, "No deliveries yet: one is made for each event the webhook listens to.")
		return nil
	}
	now := opts.Now()
	t := render.NewTable("ID", "EVENT", "JOB", "STATE", "ATTEMPTS", "LAST ANSWER", "NEXT", "AGE")
	t.AlignRight(4)
	for _, d := range page.Deliveries {
		t.Row(d.ID, d.Event, d.JobID, d.State, strconv.Itoa(d.Attempts), lastAnswer(d), next(d, now), render.FormatAge(d.CreatedAt, now))
	}
	if err := t.Render(opts.IO.Out); err != nil {
		return err
	}
	cmdutil.PrintNextPage(opts.IO.ErrOut, "deliveries", page.NextCursor)
	return nil
}

// lastAnswer is the last attempt's HTTP status, else its error, shortened.
func lastAnswer(d client.WebhookDelivery) string {
	switch {
	case d.Attempts == 0:
		return "-"
	case d.LastStatus != 0 && d.LastError == "":
		return strconv.Itoa(d.LastStatus)
	}
	s := d.LastError
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return render.Dash(s)
}

// next is when the next attempt is due: "now", "in 3m", or "-" when none will be.
func next(d client.WebhookDelivery, now time.Time) string {
	if d.State != webhook.DeliveryPending || d.NextAttemptAt == nil {
		return "-"
	}
	if in := d.NextAttemptAt.Sub(now); in > 0 {
		return "in " + render.FormatDuration(in)
	}
	return "now"
}

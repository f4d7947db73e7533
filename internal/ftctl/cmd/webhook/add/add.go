// Package add is `ftctl webhook add`.
package add

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/webhook"
)

// AddOptions are the options of `ftctl webhook add`.
type AddOptions struct {
	IO     *cmdutil.IOStreams
	Client func() (*client.Client, error)
	URL    string
	Events []string
	JSON   bool
}

// NewCmdAdd returns `ftctl webhook add`.
func NewCmdAdd(f *cmdutil.Factory, runF func(context.Context, *AddOptions) error) *cobra.Command {
	opts := &AddOptions{}
	cmd := &cobra.Command{
		Use:   "add URL --event EVENT [--event EVENT]...",
		Short: "Register a URL to receive your jobs' events",
		Long: `Register a webhook endpoint: from now on the gateway POSTs each of your jobs'
events you name to URL (http:// or https://). Events: ` + strings.Join(webhook.Events, ", ") + `.

The answer includes the endpoint's signing secret (whsec_...), shown this once:
store it where your receiver reads it. The receiver checks each request's
Ftgate-Webhook-Signature header against it (docs/webhooks.md). The gateway's admin
decides which hosts webhooks may reach; private and loopback addresses are refused
unless allowed.`,
		Example: `  ftctl webhook add https://hooks.example.edu/ftgate --event job.succeeded --event job.failed
  ftctl webhook add https://hooks.example.edu/ftgate -e job.paused,job.checkpoint
  ftctl webhook add https://hooks.example.edu/ftgate -e job.failed --json | jq -r .secret`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return cmdutil.UsageErrorf("%s needs exactly one URL argument, got %d", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO, opts.Client, opts.URL = f.IO, f.APIClient, args[0]
			if len(opts.Events) == 0 {
				return cmdutil.UsageErrorf("name at least one --event: %s", strings.Join(webhook.Events, ", "))
			}
			for _, e := range opts.Events {
				if !slices.Contains(webhook.Events, e) {
					return cmdutil.UsageErrorf("--event %q: want one of %s", e, strings.Join(webhook.Events, ", "))
				}
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runAdd(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringSliceVarP(&opts.Events, "event", "e", nil, "event to receive (repeat or comma-separate): "+strings.Join(webhook.Events, ", "))
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the gateway's JSON answer (with the secret)")
	return cmd
}

func runAdd(ctx context.Context, opts *AddOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiclient.DefaultTimeout)
	defer cancel()
	w, err := c.CreateWebhook(ctx, client.WebhookRequest{URL: opts.URL, Events: opts.Events})
	if err != nil {
		return err
	}
	if opts.JSON {
		return cmdutil.PrintJSON(opts.IO.Out, w)
	}
	out := opts.IO.Out
	fmt.Fprintf(out, "Added webhook %s\n", w.ID)
	fmt.Fprintf(out, "URL:    %s\n", w.URL)
	fmt.Fprintf(out, "Events: %s\n", strings.Join(w.Events, ", "))
	fmt.Fprintf(out, "Secret: %s\n", w.Secret)
	fmt.Fprintln(opts.IO.ErrOut, "The secret is shown only now: store it for your receiver, which checks each request's Ftgate-Webhook-Signature with it (docs/webhooks.md).")
	return nil
}

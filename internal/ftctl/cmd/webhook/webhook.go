// Package webhook is `ftctl webhook`: add, list, rm, deliveries.
package webhook

import (
	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/webhook/add"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/webhook/deliveries"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/webhook/list"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/webhook/rm"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
)

// NewCmdWebhook returns `ftctl webhook` and its subcommands.
func NewCmdWebhook(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "webhook <command>",
		Aliases: []string{"webhooks"},
		Short:   "Get your jobs' events POSTed to a URL of yours, signed",
		Long: `Register webhook endpoints: the gateway POSTs your jobs' events to them as JSON,
signed with HMAC-SHA256 (header Ftgate-Webhook-Signature: v1=hex of the HMAC of
timestamp + "." + body, with the secret shown once by ftctl webhook add). Events:
job.succeeded, job.failed, job.cancelled, job.paused, job.checkpoint.

Deliveries come from a durable outbox and are retried with backoff until the
receiver answers 2xx: at least once, with an id that stays the same across retries
(drop repeats by it). Reject timestamps more than 5 minutes from your clock.
Receiver code in Go and Python: docs/webhooks.md.`,
		Example: `  ftctl webhook add https://hooks.example.edu/ftgate --event job.succeeded --event job.failed
  ftctl webhook list
  ftctl webhook deliveries 3f1c2b9e-8d4a-4f6e-9b1a-2c3d4e5f6a7b
  ftctl webhook rm 3f1c2b9e-8d4a-4f6e-9b1a-2c3d4e5f6a7b`,
	}
	cmd.AddCommand(add.NewCmdAdd(f, nil), list.NewCmdList(f, nil), rm.NewCmdRm(f, nil), deliveries.NewCmdDeliveries(f, nil))
	return cmd
}

// Package rm is `ftctl webhook rm`.
package rm

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/webhook/shared"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
)

// RmOptions are the options of `ftctl webhook rm`.
type RmOptions struct {
	IO     *cmdutil.IOStreams
	Client func() (*client.Client, error)
	ID     string
	JSON   bool
}

// NewCmdRm returns `ftctl webhook rm`.
func NewCmdRm(f *cmdutil.Factory, runF func(context.Context, *RmOptions) error) *cobra.Command {
	opts := &RmOptions{}
	cmd := &cobra.Command{
		Use:     "rm ID",
		Aliases: []string{"remove", "delete"},
		Short:   "Remove a webhook endpoint",
		Long: `Remove a webhook endpoint and its delivery log. Deliveries still waiting to be
sent to it are dropped.`,
		Example: "  ftctl webhook rm 3f1c2b9e-8d4a-4f6e-9b1a-2c3d4e5f6a7b",
		Args:    shared.IDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.IO, opts.Client, opts.ID = f.IO, f.APIClient, args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runRm(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the gateway's JSON answer")
	return cmd
}

func runRm(ctx context.Context, opts *RmOptions) error {
	c, err := opts.Client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiclient.DefaultTimeout)
	defer cancel()
	res, err := c.DeleteWebhook(ctx, opts.ID)
	if err != nil {
		return shared.NotFoundHint(err)
	}
	if opts.JSON {
		return cmdutil.PrintJSON(opts.IO.Out, res)
	}
	fmt.Fprintf(opts.IO.Out, "Removed webhook %s\n", res.ID)
	return nil
}

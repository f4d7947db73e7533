// Package status is `ftctl auth status`.
package status

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/auth/shared"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/tokencache"
)

// StatusOptions are the options of `ftctl auth status`.
type StatusOptions struct {
	IO         *cmdutil.IOStreams
	Server     string
	Cache      *tokencache.TokenCache
	HTTPClient *http.Client
	Now        func() time.Time
}

// NewCmdStatus returns `ftctl auth status`.
func NewCmdStatus(f *cmdutil.Factory, runF func(context.Context, *StatusOptions) error) *cobra.Command {
	opts := &StatusOptions{}
	return &cobra.Command{
		Use:   "status",
		Short: "Show who you are logged in as (exit code 4 when not logged in)",
		Example: `  ftctl auth status
  ftctl auth status >/dev/null || ftctl auth login   # log in only when needed`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			server, err := f.Server()
			if err != nil {
				return err
			}
			cache, err := f.TokenCache()
			if err != nil {
				return err
			}
			opts.IO, opts.Server, opts.Cache, opts.HTTPClient, opts.Now = f.IO, server, cache, f.PlainHTTPClient(), f.Clock()
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runStatus(cmd.Context(), opts)
		},
	}
}

func runStatus(ctx context.Context, opts *StatusOptions) error {
	s, err := opts.Cache.Load(opts.Server)
	if err != nil {
		return err
	}
	if s == nil {
		fmt.Fprintf(opts.IO.Out, "Not logged in to %s.\n", opts.Server)
		return &apiclient.LoginRequiredError{Server: opts.Server}
	}
	bearer, err := opts.Cache.Token(ctx, opts.Server)
	if err != nil {
		fmt.Fprintf(opts.IO.Out, "Server:  %s\nIssuer:  %s\nSession: expired\n", opts.Server, s.Issuer)
		return err
	}
	if s, err = opts.Cache.Load(opts.Server); err != nil || s == nil {
		return fmt.Errorf("reload session: %v", err)
	}
	_, exp := s.Bearer()
	fmt.Fprintf(opts.IO.Out, "Server:  %s\nIssuer:  %s\n", opts.Server, s.Issuer)
	who, err := shared.FetchWhoami(ctx, opts.HTTPClient, opts.Server, bearer)
	if err != nil {
		fmt.Fprintf(opts.IO.Out, "Account: refused by the gateway\n")
		return err
	}
	role := "user"
	if who.Admin {
		role = "admin"
	}
	fmt.Fprintf(opts.IO.Out, "Account: %s\nSubject: %s\nRole:    %s\nToken:   valid until %s (refreshed automatically)\n",
		who.Username, who.Subject, role, exp.UTC().Format(time.RFC3339))
	return nil
}

// Package token is `ftctl auth token`.
package token

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/tokencache"
)

// TokenOptions are the options of `ftctl auth token`.
type TokenOptions struct {
	IO     *cmdutil.IOStreams
	Server string
	Cache  *tokencache.TokenCache
}

// NewCmdToken returns `ftctl auth token`.
func NewCmdToken(f *cmdutil.Factory, runF func(context.Context, *TokenOptions) error) *cobra.Command {
	opts := &TokenOptions{}
	return &cobra.Command{
		Use:     "token",
		Short:   "Print a fresh bearer token for the gateway (for curl)",
		Example: `  curl -H "Authorization: Bearer $(ftctl auth token)" "$FTCTL_SERVER/api/whoami"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			server, err := f.Server()
			if err != nil {
				return err
			}
			cache, err := f.TokenCache()
			if err != nil {
				return err
			}
			opts.IO, opts.Server, opts.Cache = f.IO, server, cache
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runToken(cmd.Context(), opts)
		},
	}
}

func runToken(ctx context.Context, opts *TokenOptions) error {
	tok, err := opts.Cache.Token(ctx, opts.Server)
	if err != nil {
		return err
	}
	fmt.Fprintln(opts.IO.Out, strings.TrimSpace(tok))
	return nil
}

// Package logout is `ftctl auth logout`.
package logout

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/tokencache"
)

// LogoutOptions are the options of `ftctl auth logout`.
type LogoutOptions struct {
	IO     *cmdutil.IOStreams
	Server string
	Cache  *tokencache.TokenCache
}

// NewCmdLogout returns `ftctl auth logout`.
func NewCmdLogout(f *cmdutil.Factory, runF func(context.Context, *LogoutOptions) error) *cobra.Command {
	opts := &LogoutOptions{}
	return &cobra.Command{
		Use:   "logout",
		Short: "Forget the cached tokens for the gateway",
		Args:  cobra.NoArgs,
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
			return runLogout(opts)
		},
	}
}

func runLogout(opts *LogoutOptions) error {
	had, err := opts.Cache.Delete(opts.Server)
	if err != nil {
		return err
	}
	if !had {
		fmt.Fprintf(opts.IO.Out, "Not logged in to %s.\n", opts.Server)
		return nil
	}
	fmt.Fprintf(opts.IO.Out, "Logged out of %s.\n", opts.Server)
	return nil
}

// Package auth is `ftctl auth`: login, status, logout, token.
package auth

import (
	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/auth/login"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/auth/logout"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/auth/status"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/auth/token"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
)

// NewCmdAuth returns `ftctl auth` and its subcommands.
func NewCmdAuth(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth <command>",
		Short: "Log in to a gateway and manage your tokens",
		Long: `Log in to an ftgate gateway with your institution's identity provider.
Tokens are cached under your config directory (mode 0600) and refreshed
automatically; commands that need a login exit with code 4 when there is none.`,
		Example: `  ftctl auth login --server https://ftgate.example.edu
  ftctl auth status
  curl -H "Authorization: Bearer $(ftctl auth token)" "$FTCTL_SERVER/api/whoami"
  ftctl auth logout`,
	}
	cmd.AddCommand(login.NewCmdLogin(f, nil), status.NewCmdStatus(f, nil), logout.NewCmdLogout(f, nil), token.NewCmdToken(f, nil))
	return cmd
}

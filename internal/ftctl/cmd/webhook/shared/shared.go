// Package shared holds what the `ftctl webhook` verbs share: the ID argument and the
// hint for an unknown one.
package shared

import (
	"net/http"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
)

var idRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// IDArg accepts exactly one ID argument that looks like a webhook id (as `ftctl
// webhook list` prints it).
func IDArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return cmdutil.UsageErrorf("%s needs exactly one webhook ID argument, got %d", cmd.CommandPath(), len(args))
	}
	if !idRE.MatchString(args[0]) {
		return cmdutil.UsageErrorf("ID %q is not a webhook id (see ftctl webhook list)", args[0])
	}
	return nil
}

// NotFoundHint points a 404 of a webhook route at the list of webhooks.
func NotFoundHint(err error) error {
	if client.IsStatus(err, http.StatusNotFound) {
		return cmdutil.WithHint(err, "`ftctl webhook list` shows your webhooks")
	}
	return err
}

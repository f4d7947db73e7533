package ftctltest

import (
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
)

// FlagServer is the gateway URL of FlagFactory: nothing listens there, flag tests
// stop at the runF seam before any request.
const FlagServer = "http://127.0.0.1:1"

// FlagFactory is a Factory for flag tests: FTCTL_SERVER is FlagServer, the config
// directory a fresh temporary one.
func FlagFactory(t *testing.T) *cmdutil.Factory {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ftctl")
	f := cmdutil.NewFactory(nil, io.Discard, io.Discard)
	f.Getenv = func(k string) string {
		return map[string]string{"FTCTL_SERVER": FlagServer, "FTCTL_CONFIG_DIR": dir}[k]
	}
	f.Now = func() time.Time { return T0 }
	return f
}

// Exec runs cmd (a command built with a runF that records its options) with args.
func Exec(cmd *cobra.Command, args ...string) error {
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	return cmd.Execute()
}

package cmdutil

import (
	"encoding/json"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/internal/job"
)

// JobArg accepts exactly one JOB argument that is an ftgate job id (job.ValidID).
func JobArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return UsageErrorf("%s needs exactly one JOB argument, got %d", cmd.CommandPath(), len(args))
	}
	if !job.ValidID(args[0]) {
		return UsageErrorf("JOB %q is not a job id (up to 64 letters, digits, '_', '-')", args[0])
	}
	return nil
}

// NoArgs refuses arguments with a usage error.
func NoArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return UsageErrorf("%s takes no arguments, got %q", cmd.CommandPath(), args[0])
	}
	return nil
}

// PrintJSON writes v (a wire type of the gateway's answer) as indented JSON.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// IsTerminal reports whether w is a character device (an interactive terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

package cmdutil

import (
	"encoding/json"
	"io"
	"os"
	"regexp"

	"github.com/spf13/cobra"
)

var jobIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// JobArg accepts exactly one JOB argument that looks like a job id.
func JobArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return UsageErrorf("%s needs exactly one JOB argument, got %d", cmd.CommandPath(), len(args))
	}
	if !jobIDRE.MatchString(args[0]) {
		return UsageErrorf("JOB %q is not a job id (letters, digits, '_', '.', '-')", args[0])
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

package cmdutil

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/client"
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

// Completion completes a command's first argument (or a flag's value) with what list
// asks the gateway for ("value\tdescription" lines starting with prefix), within 5 s;
// any error completes nothing. Files are never offered.
func Completion(f *Factory, list func(ctx context.Context, c *client.Client, prefix string) ([]string, error)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := f.APIClient()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
		defer cancel()
		out, err := list(ctx, c, prefix)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

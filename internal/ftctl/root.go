// Package ftctl implements the ftctl command-line client.
package ftctl

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	ExitOK        = 0
	ExitError     = 1
	ExitUsage     = 2
	ExitLogin     = 4
	ExitJobFailed = 8
)

// Version is set at build time.
var Version = "dev"

// NewCmdRoot returns the root command.
func NewCmdRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "ftctl",
		Short: "Fine-tune language models on your Slurm cluster through ftgate",
		Long: `ftctl talks to an ftgate gateway: submit fine-tuning jobs, follow them live,
pause and resume them, and download their models, checkpoints and logs.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.AddCommand(NewCmdGPUStat(nil))
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root
}

// Main runs ftctl with args and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := NewCmdRoot(stdout, stderr)
	root.SetIn(stdin)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "ftctl:", err)
		return ExitError
	}
	return ExitOK
}

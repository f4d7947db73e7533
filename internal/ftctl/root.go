// Package ftctl implements the ftctl command-line client.
package ftctl

import (
	"errors"
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

// NewCmdRoot returns the root command over f.
func NewCmdRoot(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "ftctl",
		Short: "Fine-tune language models on your Slurm cluster through ftgate",
		Long: `ftctl talks to an ftgate gateway: submit fine-tuning jobs, follow them live,
pause and resume them, and download their models, checkpoints and logs.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.PersistentFlags().StringVar(&f.ServerFlag, "server", "", "gateway URL (default: $FTCTL_SERVER, then the config file's server)")
	root.AddCommand(NewCmdAuth(f))
	AddJobCommands(root, f)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErrorf("%v", err) })
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	return root
}

// Main runs ftctl with args and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return Run(NewFactory(stdin, stdout, stderr), args)
}

// Run runs ftctl over f with args and returns the exit code: 4 when a login is needed.
func Run(f *Factory, args []string) int {
	root := NewCmdRoot(f)
	root.SetArgs(args)
	err := root.Execute()
	var failed *jobFailedError
	if err != nil && !errors.As(err, &failed) {
		// The job's outcome was already printed; other errors are one line with a hint.
		fmt.Fprintln(f.IO.ErrOut, "ftctl:", FormatError(err))
	}
	return ExitCode(err)
}

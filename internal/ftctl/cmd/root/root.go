// Package root assembles ftctl's commands and runs them: Main is the program.
package root

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/auth"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/control"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/download"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/list"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/logs"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/status"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/submit"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/watch"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/system"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/template"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/usage"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/webhook"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/version"
)

// NewCmdRoot returns the root command over f.
func NewCmdRoot(f *cmdutil.Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "ftctl",
		Short: "Fine-tune language models on your Slurm cluster through ftgate",
		Long: `ftctl talks to an ftgate gateway: submit fine-tuning jobs, follow them live,
pause and resume them, and download their models, checkpoints and logs.

Exit codes: 0 success, 1 error, 2 usage mistake, 4 login needed, 8 job failed
(with --exit-status).`,
		Example: `  ftctl auth login --server https://ftgate.example.edu
  ftctl submit -f examples/sft-tiny.yaml --watch
  ftctl list --state running
  ftctl download JOB`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.String(),
	}
	root.PersistentFlags().StringVar(&f.ServerFlag, "server", "", "gateway URL (default: $FTCTL_SERVER, then the config file's server)")
	root.SetVersionTemplate("ftctl {{.Version}}\n")
	root.AddCommand(auth.NewCmdAuth(f), webhook.NewCmdWebhook(f))
	AddJobCommands(root, f)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return cmdutil.UsageErrorf("%v", err) })
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	return root
}

// Main runs ftctl with args and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return Run(cmdutil.NewFactory(stdin, stdout, stderr), args)
}

// Run runs ftctl over f with args and returns the exit code: 4 when a login is needed.
func Run(f *cmdutil.Factory, args []string) int {
	root := NewCmdRoot(f)
	root.SetArgs(args)
	err := root.Execute()
	var failed *cmdutil.JobFailedError
	if err != nil && !errors.As(err, &failed) {
		// The job's outcome was already printed; other errors are one line with a hint.
		fmt.Fprintln(f.IO.ErrOut, "ftctl:", cmdutil.FormatError(err))
	}
	return cmdutil.ExitCode(err)
}

// AddJobCommands adds the job commands (submit, list, status, watch, logs, pause,
// resume, cancel, download, system, usage, template) to root.
func AddJobCommands(root *cobra.Command, f *cmdutil.Factory) {
	cmds := []*cobra.Command{
		submit.NewCmdSubmit(f, nil),
		list.NewCmdList(f, nil),
		status.NewCmdJobStatus(f, nil),
		watch.NewCmdWatch(f, nil),
		logs.NewCmdLogs(f, nil),
		control.NewCmdControl(f, "pause", nil),
		control.NewCmdControl(f, "resume", nil),
		control.NewCmdControl(f, "cancel", nil),
		download.NewCmdDownload(f, nil),
		system.NewCmdSystem(f, nil),
		usage.NewCmdUsage(f, nil),
	}
	for _, c := range cmds {
		if strings.Contains(c.Use, "JOB") {
			c.ValidArgsFunction = completeJobIDs(f)
		}
	}
	_ = cmds[0].RegisterFlagCompletionFunc("template", template.CompleteNames(f))
	root.AddCommand(cmds...)
	root.AddCommand(template.NewCmdTemplate(f, completeJobIDs(f)))
}

// completeJobIDs completes a JOB argument with the caller's latest jobs.
func completeJobIDs(f *cmdutil.Factory) cobra.CompletionFunc {
	return cmdutil.Completion(f, func(ctx context.Context, c *client.Client, prefix string) ([]string, error) {
		page, err := c.Jobs(ctx, client.ListOptions{Limit: 50})
		var out []string
		for _, j := range page.Jobs {
			if strings.HasPrefix(j.ID, prefix) {
				out = append(out, j.ID+"\t"+strings.TrimSpace(j.Spec.Name+" "+string(j.State)))
			}
		}
		return out, err
	})
}

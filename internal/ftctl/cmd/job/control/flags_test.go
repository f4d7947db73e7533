package control_test

import (
	"context"
	"testing"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/control"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
)

// TestNewCmdControl parses flags through the runF seam: what reaches the run
// function, and the usage errors (exit 2) caught before any request.
func TestNewCmdControl(t *testing.T) {
	t.Parallel()
	ftctltest.FlagTable[control.ControlOptions]{
		NewCmd: func(f *cmdutil.Factory, runF func(context.Context, *control.ControlOptions) error) *cobra.Command {
			return control.NewCmdControl(f, "pause", runF)
		},
		Set: []string{"IO", "Client"},
	}.Run(t, []ftctltest.FlagCase[control.ControlOptions]{
		{Args: "j1", Want: control.ControlOptions{Action: "pause", JobID: "j1"}},
		{Args: "j1 --json", Want: control.ControlOptions{Action: "pause", JobID: "j1", JSON: true}},
		{Args: "", WantErr: "needs exactly one JOB argument, got 0"},
		{Args: "a/b", WantErr: `JOB "a/b" is not a job id`},
	})
}

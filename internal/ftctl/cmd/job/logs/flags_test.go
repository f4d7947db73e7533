package logs_test

import (
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/logs"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
)

// TestNewCmdLogs parses flags through the runF seam: what reaches the run
// function, and the usage errors (exit 2) caught before any request.
func TestNewCmdLogs(t *testing.T) {
	t.Parallel()
	ftctltest.FlagTable[logs.LogsOptions]{
		NewCmd: logs.NewCmdLogs,
		Set:    []string{"IO", "Client"},
	}.Run(t, []ftctltest.FlagCase[logs.LogsOptions]{
		{Args: "j1", Want: logs.LogsOptions{JobID: "j1", Tail: -1}},
		{Args: "j1 -f -n 20", Want: logs.LogsOptions{JobID: "j1", Follow: true, Tail: 20}},
		{Args: "j1 --tail 0", Want: logs.LogsOptions{JobID: "j1", Tail: 0}},
		{Args: "j1 --tail 100001", WantErr: "--tail must be between 0 and 100000, got 100001"},
		{Args: "j1 --tail -2", WantErr: "--tail must be between 0 and 100000, got -2"},
		{Args: "", WantErr: "needs exactly one JOB argument"},
	})
}

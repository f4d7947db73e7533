package status_test

import (
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/status"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
)

// TestNewCmdJobStatus parses flags through the runF seam: what reaches the run
// function, and the usage errors (exit 2) caught before any request.
func TestNewCmdJobStatus(t *testing.T) {
	t.Parallel()
	ftctltest.FlagTable[status.JobStatusOptions]{
		NewCmd: status.NewCmdJobStatus,
		Set:    []string{"IO", "Client", "Now"},
	}.Run(t, []ftctltest.FlagCase[status.JobStatusOptions]{
		{Args: "j1", Want: status.JobStatusOptions{JobID: "j1"}},
		{Args: "01JD5X3M8ZQ --json", Want: status.JobStatusOptions{JobID: "01JD5X3M8ZQ", JSON: true}},
		{Args: "", WantErr: "needs exactly one JOB argument, got 0"},
		{Args: "j1 j2", WantErr: "needs exactly one JOB argument, got 2"},
		{Args: "../x", WantErr: `JOB "../x" is not a job id`},
	})
}

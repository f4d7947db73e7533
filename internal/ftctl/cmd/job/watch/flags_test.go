package watch_test

import (
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/watch"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
)

// TestNewCmdWatch parses flags through the runF seam: what reaches the run
// function, and the usage errors (exit 2) caught before any request.
func TestNewCmdWatch(t *testing.T) {
	t.Parallel()
	ftctltest.FlagTable[watch.WatchOptions]{
		NewCmd: watch.NewCmdWatch,
		Set:    []string{"IO", "Client", "Now"},
	}.Run(t, []ftctltest.FlagCase[watch.WatchOptions]{
		{Args: "j1", Want: watch.WatchOptions{JobID: "j1", Interval: 5 * time.Second}},
		{Args: "j1 --exit-status --json --interval 250ms", Want: watch.WatchOptions{JobID: "j1", ExitStatus: true, JSON: true, Interval: 250 * time.Millisecond}},
		{Args: "j1 --interval 10ms", WantErr: "--interval must be at least 100ms, got 10ms"},
		{Args: "", WantErr: "needs exactly one JOB argument"},
	})
}

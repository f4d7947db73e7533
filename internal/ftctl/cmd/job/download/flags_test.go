package download_test

import (
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/download"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
)

// TestNewCmdDownload parses flags through the runF seam: what reaches the run
// function, and the usage errors (exit 2) caught before any request.
func TestNewCmdDownload(t *testing.T) {
	t.Parallel()
	ftctltest.FlagTable[download.DownloadOptions]{
		NewCmd: download.NewCmdDownload,
		Set:    []string{"IO", "Client"},
	}.Run(t, []ftctltest.FlagCase[download.DownloadOptions]{
		{Args: "j1", Want: download.DownloadOptions{JobID: "j1", Dir: "j1-model"}},
		{Args: "j1 --checkpoint step-100", Want: download.DownloadOptions{JobID: "j1", Checkpoint: "step-100", Dir: "j1-step-100"}},
		{Args: "j1 --logs", Want: download.DownloadOptions{JobID: "j1", Logs: true, Dir: "."}},
		{Args: "j1 --logs -o out", Want: download.DownloadOptions{JobID: "j1", Logs: true, Dir: "out"}},
		{Args: "j1 --logs --checkpoint step-1", WantErr: "--checkpoint and --logs cannot be combined"},
		{Args: "j1 --checkpoint ../x", WantErr: `--checkpoint "../x": want a checkpoint name like step-100`},
		{Args: "j1 --checkpoint step-", WantErr: `--checkpoint "step-": want a checkpoint name`},
	})
}

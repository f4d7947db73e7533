package download_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/download"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
)

// TestNewCmdDownload parses flags through the runF seam: what reaches the run
// function, and the usage errors (exit 2) caught before any request.
func TestNewCmdDownload(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    string
		want    download.DownloadOptions // IO and Client are checked as set, not compared
		wantErr string
	}{
		{args: "j1", want: download.DownloadOptions{JobID: "j1", Dir: "j1-model"}},
		{args: "j1 --checkpoint step-100", want: download.DownloadOptions{JobID: "j1", Checkpoint: "step-100", Dir: "j1-step-100"}},
		{args: "j1 --logs", want: download.DownloadOptions{JobID: "j1", Logs: true, Dir: "."}},
		{args: "j1 --logs -o out", want: download.DownloadOptions{JobID: "j1", Logs: true, Dir: "out"}},
		{args: "j1 --logs --checkpoint step-1", wantErr: "--checkpoint and --logs cannot be combined"},
		{args: "j1 --checkpoint ../x", wantErr: `--checkpoint "../x": want a checkpoint name like step-100`},
		{args: "j1 --checkpoint step-", wantErr: `--checkpoint "step-": want a checkpoint name`},
	} {
		var got *download.DownloadOptions
		cmd := download.NewCmdDownload(ftctltest.FlagFactory(t), func(_ context.Context, o *download.DownloadOptions) error { got = o; return nil })
		cmd.SetContext(context.Background())
		err := ftctltest.Exec(cmd, strings.Fields(tc.args)...)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || cmdutil.ExitCode(err) != cmdutil.ExitUsage {
				t.Errorf("%q: error %v (exit %d), want usage error %q", tc.args, err, cmdutil.ExitCode(err), tc.wantErr)
			}
			if got != nil {
				t.Errorf("%q: runF was called despite the error", tc.args)
			}
			continue
		}
		if err != nil || got == nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got.IO == nil || got.Client == nil {
			t.Errorf("%q: IO, Client not set", tc.args)
		}
		got.IO, got.Client = nil, nil
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%q: options %+v, want %+v", tc.args, *got, tc.want)
		}
	}
}

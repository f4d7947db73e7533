package status_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/status"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
)

// TestNewCmdJobStatus parses flags through the runF seam: what reaches the run
// function, and the usage errors (exit 2) caught before any request.
func TestNewCmdJobStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    string
		want    status.JobStatusOptions // IO, Client and Now are checked as set, not compared
		wantErr string
	}{
		{args: "j1", want: status.JobStatusOptions{JobID: "j1"}},
		{args: "01JD5X3M8ZQ --json", want: status.JobStatusOptions{JobID: "01JD5X3M8ZQ", JSON: true}},
		{args: "", wantErr: "needs exactly one JOB argument, got 0"},
		{args: "j1 j2", wantErr: "needs exactly one JOB argument, got 2"},
		{args: "../x", wantErr: `JOB "../x" is not a job id`},
	} {
		var got *status.JobStatusOptions
		cmd := status.NewCmdJobStatus(ftctltest.FlagFactory(t), func(_ context.Context, o *status.JobStatusOptions) error { got = o; return nil })
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
		if got.IO == nil || got.Client == nil || got.Now == nil {
			t.Errorf("%q: IO, Client, Now not set", tc.args)
		}
		got.IO, got.Client, got.Now = nil, nil, nil
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%q: options %+v, want %+v", tc.args, *got, tc.want)
		}
	}
}

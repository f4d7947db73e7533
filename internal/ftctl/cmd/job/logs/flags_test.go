package logs_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/logs"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
)

// TestNewCmdLogs parses flags through the runF seam: what reaches the run
// function, and the usage errors (exit 2) caught before any request.
func TestNewCmdLogs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    string
		want    logs.LogsOptions // IO and Client are checked as set, not compared
		wantErr string
	}{
		{args: "j1", want: logs.LogsOptions{JobID: "j1", Tail: -1}},
		{args: "j1 -f -n 20", want: logs.LogsOptions{JobID: "j1", Follow: true, Tail: 20}},
		{args: "j1 --tail 0", want: logs.LogsOptions{JobID: "j1", Tail: 0}},
		{args: "j1 --tail 100001", wantErr: "--tail must be between 0 and 100000, got 100001"},
		{args: "j1 --tail -2", wantErr: "--tail must be between 0 and 100000, got -2"},
		{args: "", wantErr: "needs exactly one JOB argument"},
	} {
		var got *logs.LogsOptions
		cmd := logs.NewCmdLogs(ftctltest.FlagFactory(t), func(_ context.Context, o *logs.LogsOptions) error { got = o; return nil })
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

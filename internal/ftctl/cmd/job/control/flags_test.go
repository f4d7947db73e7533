package control_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/control"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
)

// TestNewCmdControl parses flags through the runF seam: what reaches the run
// function, and the usage errors (exit 2) caught before any request.
func TestNewCmdControl(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    string
		want    control.ControlOptions // IO and Client are checked as set, not compared
		wantErr string
	}{
		{args: "j1", want: control.ControlOptions{Action: "pause", JobID: "j1"}},
		{args: "j1 --json", want: control.ControlOptions{Action: "pause", JobID: "j1", JSON: true}},
		{args: "", wantErr: "needs exactly one JOB argument, got 0"},
		{args: "a/b", wantErr: `JOB "a/b" is not a job id`},
	} {
		var got *control.ControlOptions
		cmd := control.NewCmdControl(ftctltest.FlagFactory(t), "pause", func(_ context.Context, o *control.ControlOptions) error { got = o; return nil })
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

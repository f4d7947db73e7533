package watch_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/watch"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
)

// TestNewCmdWatch parses flags through the runF seam: what reaches the run
// function, and the usage errors (exit 2) caught before any request.
func TestNewCmdWatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    string
		want    watch.WatchOptions // IO, Client and Now are checked as set, not compared
		wantErr string
	}{
		{args: "j1", want: watch.WatchOptions{JobID: "j1", Interval: 5 * time.Second}},
		{args: "j1 --exit-status --json --interval 250ms", want: watch.WatchOptions{JobID: "j1", ExitStatus: true, JSON: true, Interval: 250 * time.Millisecond}},
		{args: "j1 --interval 10ms", wantErr: "--interval must be at least 100ms, got 10ms"},
		{args: "", wantErr: "needs exactly one JOB argument"},
	} {
		var got *watch.WatchOptions
		cmd := watch.NewCmdWatch(ftctltest.FlagFactory(t), func(_ context.Context, o *watch.WatchOptions) error { got = o; return nil })
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

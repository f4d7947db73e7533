package system_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/system"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
)

// TestNewCmdSystem parses flags through the runF seam: what reaches the run
// function, and the usage errors (exit 2) caught before any request.
func TestNewCmdSystem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    string
		want    system.SystemOptions // IO and Client are checked as set, not compared
		wantErr string
	}{
		{args: "", want: system.SystemOptions{}},
		{args: "--json", want: system.SystemOptions{JSON: true}},
		{args: "now", wantErr: `system takes no arguments, got "now"`},
	} {
		var got *system.SystemOptions
		cmd := system.NewCmdSystem(ftctltest.FlagFactory(t), func(_ context.Context, o *system.SystemOptions) error { got = o; return nil })
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

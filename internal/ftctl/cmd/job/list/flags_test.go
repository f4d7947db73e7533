package list_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/list"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
)

// TestNewCmdList parses flags through the runF seam: what reaches runList, and the
// usage errors (exit 2) caught before any request.
func TestNewCmdList(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    string
		want    list.ListOptions // IO, Client and Now are not compared
		wantErr string
	}{
		{args: "", want: list.ListOptions{Limit: 20}},
		{args: "--state running,queued --state paused --since 7d --until 2026-01-02 --model tiny --cluster dev -L 50 --cursor c2 --json",
			want: list.ListOptions{States: []string{"running", "queued", "paused"}, Since: "7d", Until: "2026-01-02", Model: "tiny", Cluster: "dev", Limit: 50, Cursor: "c2", JSON: true}},
		{args: "-A", want: list.ListOptions{AllUsers: true, Limit: 20}},
		{args: "--sort loss --search llama", want: list.ListOptions{Sort: "loss", Search: "llama", Limit: 20}},
		{args: "--sort duration --order asc", want: list.ListOptions{Sort: "duration", Order: "asc", Limit: 20}},
		{args: "--sort eval_loss --order desc", want: list.ListOptions{Sort: "eval_loss", Order: "desc", Limit: 20}},
		{args: "--sort size", wantErr: `--sort "size": want one of created, duration, loss, eval_loss`},
		{args: "--sort loss --order down", wantErr: `--order "down": want asc or desc`},
		{args: "--user bob", want: list.ListOptions{User: "bob", Limit: 20}},
		{args: "--limit 201", wantErr: "--limit must be between 1 and 200, got 201"},
		{args: "--all-users --user bob", wantErr: "--all-users and --user cannot be combined"},
		{args: "--state runing", wantErr: `--state "runing": want one of submitting, queued`},
		{args: "extra", wantErr: `list takes no arguments, got "extra"`},
	} {
		var got *list.ListOptions
		cmd := list.NewCmdList(ftctltest.FlagFactory(t), func(_ context.Context, o *list.ListOptions) error { got = o; return nil })
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
			t.Errorf("%q: IO, Client or Now not set", tc.args)
		}
		got.IO, got.Client, got.Now = nil, nil, nil
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%q: options %+v, want %+v", tc.args, *got, tc.want)
		}
	}
}

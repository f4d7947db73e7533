package add_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/webhook/add"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
)

// TestNewCmdAdd parses flags through the runF seam: what reaches the run function,
// and the usage errors (exit 2) caught before any request.
func TestNewCmdAdd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    string
		want    add.AddOptions // IO and Client are checked as set, not compared
		wantErr string
	}{
		{args: "https://hooks.example.edu/x --event job.failed", want: add.AddOptions{URL: "https://hooks.example.edu/x", Events: []string{"job.failed"}}},
		{args: "https://hooks.example.edu/x -e job.failed,job.paused -e job.checkpoint --json",
			want: add.AddOptions{URL: "https://hooks.example.edu/x", Events: []string{"job.failed", "job.paused", "job.checkpoint"}, JSON: true}},
		{args: "https://hooks.example.edu/x", wantErr: "name at least one --event: job.succeeded, job.failed"},
		{args: "https://hooks.example.edu/x -e job.done", wantErr: `--event "job.done": want one of`},
		{args: "-e job.failed", wantErr: "needs exactly one URL argument, got 0"},
		{args: "a b -e job.failed", wantErr: "needs exactly one URL argument, got 2"},
	} {
		var got *add.AddOptions
		cmd := add.NewCmdAdd(ftctltest.FlagFactory(t), func(_ context.Context, o *add.AddOptions) error { got = o; return nil })
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

func TestAdd(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	code, out, errOut := e.Run("webhook", "add", "https://hooks.example.edu/ftgate", "-e", "job.succeeded,job.failed")
	lines := strings.Split(out, "\n")
	if code != 0 || len(lines) < 4 || lines[0] != "Added webhook "+ftctltest.WebhookID(1) || lines[1] != "URL:    https://hooks.example.edu/ftgate" ||
		lines[2] != "Events: job.failed, job.succeeded" || !strings.HasPrefix(lines[3], "Secret: whsec_") || !strings.Contains(errOut, "shown only now") {
		t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
	}
	code, out, _ = e.Run("webhook", "add", "http://127.0.0.1:9/x", "-e", "job.paused", "--json")
	var w client.Webhook
	if code != 0 || json.Unmarshal([]byte(out), &w) != nil || !strings.HasPrefix(w.Secret, "whsec_") || w.URL != "http://127.0.0.1:9/x" {
		t.Fatalf("--json: exit %d %q", code, out)
	}
	// The gateway's refusals are one line and exit 1.
	for _, tc := range []struct{ url, want string }{
		{"http://[::1]:9/x", "ftctl: url: address ::1 is loopback; an admin must list it in webhooks.allow (HTTP 422) (hint: fix the named field)"},
		{"https://nowhere.example.edu/x", "ftctl: url: host nowhere.example.edu does not resolve: no such host (HTTP 422) (hint: fix the named field)"},
		{"hooks.example.edu/x", `ftctl: url: must be an http:// or https:// URL, got "hooks.example.edu/x" (HTTP 422) (hint: fix the named field)`},
	} {
		code, out, errOut := e.Run("webhook", "add", tc.url, "-e", "job.failed")
		if code != 1 || out != "" || strings.TrimSpace(errOut) != tc.want {
			t.Errorf("add %s: exit %d stdout %q stderr %q, want %q", tc.url, code, out, errOut, tc.want)
		}
	}
}

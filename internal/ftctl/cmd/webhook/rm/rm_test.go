package rm_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/webhook/rm"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/webhook"
)

func TestNewCmdRm(t *testing.T) {
	t.Parallel()
	id := ftctltest.WebhookID(1)
	for _, tc := range []struct {
		args    string
		want    rm.RmOptions
		wantErr string
	}{
		{args: id, want: rm.RmOptions{ID: id}},
		{args: id + " --json", want: rm.RmOptions{ID: id, JSON: true}},
		{args: "", wantErr: "needs exactly one webhook ID argument, got 0"},
		{args: "../x", wantErr: `ID "../x" is not a webhook id`},
	} {
		var got *rm.RmOptions
		cmd := rm.NewCmdRm(ftctltest.FlagFactory(t), func(_ context.Context, o *rm.RmOptions) error { got = o; return nil })
		cmd.SetContext(context.Background())
		err := ftctltest.Exec(cmd, strings.Fields(tc.args)...)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || cmdutil.ExitCode(err) != cmdutil.ExitUsage || got != nil {
				t.Errorf("%q: error %v (exit %d), want usage error %q", tc.args, err, cmdutil.ExitCode(err), tc.wantErr)
			}
			continue
		}
		if err != nil || got == nil || got.IO == nil || got.Client == nil {
			t.Fatalf("%q: %v %+v", tc.args, err, got)
		}
		got.IO, got.Client = nil, nil
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%q: options %+v, want %+v", tc.args, *got, tc.want)
		}
	}
}

func TestRm(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	ctx := context.Background()
	mine, _ := e.Webhooks.CreateEndpoint(ctx, webhook.Endpoint{OwnerSubject: "sub-alice", URL: "http://127.0.0.1:9/a", Events: []string{"job.failed"}}, 0)
	bobs, _ := e.Webhooks.CreateEndpoint(ctx, webhook.Endpoint{OwnerSubject: "sub-bob", URL: "http://127.0.0.1:9/b", Events: []string{"job.failed"}}, 0)
	if code, out, errOut := e.Run("webhook", "rm", bobs.ID); code != 1 || out != "" || !strings.Contains(errOut, "not found (HTTP 404) (hint: `ftctl webhook list` shows your webhooks)") {
		t.Errorf("rm bob's: exit %d %q %q", code, out, errOut)
	}
	if code, out, errOut := e.Run("webhook", "rm", mine.ID); code != 0 || out != "Removed webhook "+mine.ID+"\n" || errOut != "" {
		t.Errorf("rm: exit %d %q %q", code, out, errOut)
	}
	if _, err := e.Webhooks.Endpoint(ctx, mine.ID); err == nil {
		t.Error("the endpoint is still there")
	}
	if _, err := e.Webhooks.Endpoint(ctx, bobs.ID); err != nil {
		t.Error("bob's endpoint went away")
	}
}

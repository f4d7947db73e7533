package list_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/webhook/list"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/webhook"
)

func TestNewCmdList(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    string
		want    list.ListOptions
		wantErr string
	}{
		{args: "", want: list.ListOptions{Limit: 50}},
		{args: "-L 2 --cursor abc --json", want: list.ListOptions{Limit: 2, Cursor: "abc", JSON: true}},
		{args: "--limit 0", wantErr: "--limit must be between 1 and 200, got 0"},
		{args: "x", wantErr: `list takes no arguments, got "x"`},
	} {
		var got *list.ListOptions
		cmd := list.NewCmdList(ftctltest.FlagFactory(t), func(_ context.Context, o *list.ListOptions) error { got = o; return nil })
		cmd.SetContext(context.Background())
		err := ftctltest.Exec(cmd, strings.Fields(tc.args)...)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || cmdutil.ExitCode(err) != cmdutil.ExitUsage || got != nil {
				t.Errorf("%q: error %v (exit %d), want usage error %q", tc.args, err, cmdutil.ExitCode(err), tc.wantErr)
			}
			continue
		}
		if err != nil || got == nil || got.IO == nil || got.Client == nil || got.Now == nil {
			t.Fatalf("%q: %v %+v", tc.args, err, got)
		}
		got.IO, got.Client, got.Now = nil, nil, nil
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%q: options %+v, want %+v", tc.args, *got, tc.want)
		}
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	if code, _, errOut := e.Run("webhook", "list"); code != 0 || !strings.Contains(errOut, "No webhooks") {
		t.Fatalf("empty list: exit %d %q", code, errOut)
	}
	ctx := context.Background()
	for _, w := range []webhook.Endpoint{
		{OwnerSubject: "sub-alice", URL: "https://hooks.example.edu/a", Events: []string{"job.failed", "job.succeeded"}},
		{OwnerSubject: "sub-bob", URL: "https://hooks.example.edu/bob", Events: []string{"job.paused"}},
		{OwnerSubject: "sub-alice", URL: "http://127.0.0.1:9/b", Events: []string{"job.checkpoint"}, Secret: "whsec_never-shown"},
	} {
		if _, err := e.Webhooks.CreateEndpoint(ctx, w, 0); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := e.Run("webhook", "list")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d stderr %q", code, errOut)
	}
	ftctltest.Golden(t, "list.txt", out)
	code, out, errOut = e.Run("webhook", "ls", "-L", "1")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(errOut, "More webhooks: add --cursor 1") {
		t.Errorf("page of 1: exit %d %q %q", code, out, errOut)
	}
	code, out, _ = e.Run("webhook", "list", "--json")
	var page client.WebhookList
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Webhooks) != 2 || strings.Contains(out, "whsec_") {
		t.Errorf("--json: exit %d %q", code, out)
	}
}

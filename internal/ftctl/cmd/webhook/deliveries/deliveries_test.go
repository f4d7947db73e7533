package deliveries_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/webhook/deliveries"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/webhook"
)

func TestNewCmdDeliveries(t *testing.T) {
	t.Parallel()
	id := ftctltest.WebhookID(1)
	for _, tc := range []struct {
		args    string
		want    deliveries.DeliveriesOptions
		wantErr string
	}{
		{args: id, want: deliveries.DeliveriesOptions{ID: id, Limit: 20}},
		{args: id + " -L 5 --cursor c --json", want: deliveries.DeliveriesOptions{ID: id, Limit: 5, Cursor: "c", JSON: true}},
		{args: id + " --limit 201", wantErr: "--limit must be between 1 and 200, got 201"},
		{args: "", wantErr: "needs exactly one webhook ID argument, got 0"},
		{args: "j1", wantErr: `ID "j1" is not a webhook id`},
	} {
		var got *deliveries.DeliveriesOptions
		cmd := deliveries.NewCmdDeliveries(ftctltest.FlagFactory(t), func(_ context.Context, o *deliveries.DeliveriesOptions) error { got = o; return nil })
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

func TestDeliveries(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	w, _ := e.Webhooks.CreateEndpoint(context.Background(), webhook.Endpoint{OwnerSubject: "sub-alice", URL: "http://127.0.0.1:9/a", Events: webhook.Events}, 0)
	if code, _, errOut := e.Run("webhook", "deliveries", w.ID); code != 0 || !strings.Contains(errOut, "No deliveries yet") {
		t.Fatalf("empty log: exit %d %q", code, errOut)
	}
	at := func(d time.Duration) *time.Time { t := ftctltest.T0.Add(d); return &t }
	job := "00000000-0000-4000-8000-00000000000a"
	for _, d := range []webhook.Delivery{
		{ID: "d4", Event: "job.checkpoint", State: "pending", CreatedAt: ftctltest.T0.Add(-5 * time.Second), NextAttemptAt: at(-5 * time.Second)},
		{ID: "d3", Event: "job.paused", State: "pending", Attempts: 2, LastStatus: 503, LastError: "HTTP 503: try again later, the receiver is being redeployed right now", LastAttemptAt: at(-time.Minute), NextAttemptAt: at(90 * time.Second), CreatedAt: ftctltest.T0.Add(-3 * time.Minute)},
		{ID: "d2", Event: "job.failed", State: "failed", Attempts: 10, LastError: "dial tcp 127.0.0.1:9: connect: connection refused", CreatedAt: ftctltest.T0.Add(-26 * time.Hour)},
		{ID: "d1", Event: "job.succeeded", State: "delivered", Attempts: 1, LastStatus: 204, DeliveredAt: at(-50 * time.Hour), CreatedAt: ftctltest.T0.Add(-50 * time.Hour)},
	} {
		d.EndpointID, d.JobID = w.ID, job
		e.Webhooks.AddDelivery(d)
	}
	code, out, errOut := e.Run("webhook", "deliveries", w.ID)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d stderr %q", code, errOut)
	}
	ftctltest.Golden(t, "deliveries.txt", out)
	code, out, errOut = e.Run("webhook", "deliveries", w.ID, "-L", "3")
	if code != 0 || strings.Count(out, "\n") != 4 || !strings.Contains(errOut, "More deliveries: add --cursor 3") {
		t.Errorf("page of 3: exit %d %q %q", code, out, errOut)
	}
	code, out, _ = e.Run("webhook", "deliveries", w.ID, "--json")
	var page client.DeliveryList
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Deliveries) != 4 || page.WebhookID != w.ID {
		t.Errorf("--json: exit %d %q", code, out)
	}
	other := ftctltest.WebhookID(99)
	if code, _, errOut := e.Run("webhook", "deliveries", other); code != 1 || !strings.Contains(errOut, "(HTTP 404) (hint: `ftctl webhook list` shows your webhooks)") {
		t.Errorf("unknown webhook: exit %d %q", code, errOut)
	}
}

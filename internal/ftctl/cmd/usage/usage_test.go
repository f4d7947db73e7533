package usage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/config"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/usage"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/quota"
)

// TestNewCmdUsage parses flags through the runF seam.
func TestNewCmdUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    string
		want    usage.UsageOptions
		wantErr string
	}{
		{args: "", want: usage.UsageOptions{}},
		{args: "--json --user bob", want: usage.UsageOptions{JSON: true, User: "bob"}},
		{args: "alice", wantErr: `usage takes no arguments, got "alice"`},
	} {
		var got *usage.UsageOptions
		cmd := usage.NewCmdUsage(ftctltest.FlagFactory(t), func(_ context.Context, o *usage.UsageOptions) error { got = o; return nil })
		cmd.SetContext(context.Background())
		err := ftctltest.Exec(cmd, strings.Fields(tc.args)...)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || cmdutil.ExitCode(err) != cmdutil.ExitUsage || got != nil {
				t.Errorf("%q: error %v (exit %d), want usage error %q", tc.args, err, cmdutil.ExitCode(err), tc.wantErr)
			}
			continue
		}
		if err != nil || got == nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		got.IO, got.Client = nil, nil
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("%q: options %+v, want %+v", tc.args, *got, tc.want)
		}
	}
}

// seed gives alice the SeedList jobs (one succeeded 1-GPU run of 12 minutes three
// days ago, one 4-GPU job running for 8 minutes, one queued) and the limits.
func seed(t *testing.T) *ftctltest.Env {
	e := ftctltest.NewEnv(t)
	ftctltest.SeedList(e)
	e.API.Limits = config.Limits{MaxActiveJobsPerUser: 10, MaxQueuedJobsPerUser: 5, MaxGPUsPerUser: 8, GPUHoursPerWindow: 100, Window: 168 * time.Hour,
		Groups: map[string]config.LimitOverride{"lab": {MaxGPUsPerUser: ftctltest.Ptr(16)}}}
	done := ftctltest.T0.Add(-3*24*time.Hour + 13*time.Minute)
	e.Store.AddRun("alice", quota.Run{Start: ftctltest.T0.Add(-3*24*time.Hour + time.Minute), End: &done, GPUs: 1})
	e.Store.AddRun("alice", quota.Run{Start: ftctltest.T0.Add(-8 * time.Minute), GPUs: 4})
	return e
}

func TestUsage(t *testing.T) {
	t.Parallel()
	e := seed(t)
	code, out, errOut := e.Run("usage")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d stderr %q", code, errOut)
	}
	ftctltest.Golden(t, "usage.txt", out)

	code, out, _ = e.Run("usage", "--json")
	var u client.Usage
	if code != 0 || json.Unmarshal([]byte(out), &u) != nil {
		t.Fatalf("--json: exit %d, %q", code, out)
	}
	// 1 GPU × 12 min + 4 GPUs × 8 min = 0.2 + 0.5333 GPU-hours.
	if u.User != "alice" || u.ActiveJobs != 2 || u.QueuedJobs != 1 || u.GPUsInUse != 4 || u.GPUsHeld != 5 ||
		u.GPUHours < 0.733 || u.GPUHours > 0.734 || u.Limits.MaxGPUs != 8 || u.Limits.WindowSeconds != 7*24*3600 {
		t.Errorf("--json: %+v", u)
	}
}

// TestUsageOtherUser: --user is for admins; others get the gateway's 403 as one line.
func TestUsageOtherUser(t *testing.T) {
	t.Parallel()
	e := seed(t)
	code, _, errOut := e.Run("usage", "--user", "bob")
	if code != 1 || !strings.Contains(errOut, "only admins may see another user's usage") {
		t.Errorf("alice --user bob: exit %d, stderr %q", code, errOut)
	}
	e.Token = "admin"
	e.Login()
	code, out, errOut := e.Run("usage", "--user", "bob", "--json")
	var u client.Usage
	if code != 0 || json.Unmarshal([]byte(out), &u) != nil || u.User != "bob" || u.ActiveJobs != 0 || u.GPUHours != 0 {
		t.Errorf("admin --user bob: exit %d, %q %q", code, out, errOut)
	}
}

// TestRenderLimitReached: at the GPU-hour limit the table says when it frees up, or
// that running jobs alone hold it; a zero limit is no limit.
func TestRenderLimitReached(t *testing.T) {
	t.Parallel()
	now := ftctltest.T0
	at := now.Add(26*time.Hour + 30*time.Minute)
	u := client.Usage{User: "alice", Groups: []string{"lab"}, ActiveJobs: 1, GPUHours: 120.25, GPUHoursFreesAt: &at,
		Limits: client.UsageLimits{MaxActiveJobs: 10, GPUHoursPerWindow: 100, WindowSeconds: 86400}}
	var b bytes.Buffer
	if err := usage.Render(&b, u, now); err != nil {
		t.Fatal(err)
	}
	ftctltest.Golden(t, "usage-limit.txt", b.String())
	u.GPUHoursFreesAt = nil
	b.Reset()
	if err := usage.Render(&b, u, now); err != nil || !strings.Contains(b.String(), "your running jobs alone hold it") {
		t.Errorf("without frees_at: %v\n%s", err, b.String())
	}
}

// TestRenderGroupBudgets: each shared group budget is a row of the table; a used-up
// one says when it frees up, or that the group's running jobs hold it.
func TestRenderGroupBudgets(t *testing.T) {
	t.Parallel()
	now := ftctltest.T0
	at := now.Add(3 * time.Hour)
	u := client.Usage{User: "alice", Groups: []string{"lab", "nlp"}, GPUHours: 2,
		Limits: client.UsageLimits{MaxActiveJobs: 10, WindowSeconds: 7 * 86400},
		GroupBudgets: []client.GroupBudgetUsage{{Group: "lab", GPUHours: 500.5, GPUHoursPerWindow: 500, FreesAt: &at},
			{Group: "nlp", GPUHours: 12, GPUHoursPerWindow: 100}}}
	var b bytes.Buffer
	if err := usage.Render(&b, u, now); err != nil {
		t.Fatal(err)
	}
	ftctltest.Golden(t, "usage-groups.txt", b.String())
	u.GroupBudgets[0].FreesAt = nil
	b.Reset()
	if err := usage.Render(&b, u, now); err != nil || !strings.Contains(b.String(), "Group lab's budget is used up by its running jobs") ||
		strings.Contains(b.String(), "Group nlp") {
		t.Errorf("without frees_at: %v\n%s", err, b.String())
	}
}

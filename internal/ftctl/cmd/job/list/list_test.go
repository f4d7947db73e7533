package list_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
)

func TestList(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	ftctltest.SeedList(e)
	// The cursor after the first two jobs, as the gateway's store encodes it.
	e.Token = "alice"
	e.Login()
	_, out, _ := e.Run("list", "--limit", "2", "--json")
	var first client.JobList
	if err := json.Unmarshal([]byte(out), &first); err != nil || first.NextCursor == "" {
		t.Fatalf("first page: %v, next_cursor %q; out %q", err, first.NextCursor, out)
	}
	cursor := first.NextCursor
	for _, tc := range []struct {
		name   string
		token  string
		args   []string
		query  string // of the /api/jobs request
		golden string
		stderr string
	}{
		{"mine", "alice", []string{"list"}, "limit=20", "list.txt", ""},
		{"running", "alice", []string{"ls", "--state", "running,queued"}, "limit=20&status=running%2Cqueued", "list-running.txt", ""},
		{"page", "alice", []string{"list", "--limit", "2"}, "limit=2", "list-page1.txt", "More jobs: add --cursor " + cursor + "\n"},
		{"next page", "alice", []string{"list", "--limit", "2", "--cursor", cursor}, "cursor=" + cursor + "&limit=2", "list-page2.txt", ""},
		{"sort by loss", "alice", []string{"list", "--sort", "loss"}, "limit=20&sort=loss", "list-sort-loss.txt", ""},
		{"longest first", "alice", []string{"list", "--sort", "duration"}, "limit=20&sort=duration", "list-sort-duration.txt", ""},
		{"search", "alice", []string{"list", "--sort", "loss", "--order", "desc", "--search", "LLAMA"}, "limit=20&order=desc&q=LLAMA&sort=loss", "list-search.txt", ""},
		{"since", "alice", []string{"list", "--since", "1h", "--model", "tiny"}, "from=2026-11-29T11%3A00%3A00Z&limit=20&model=tiny", "list-since.txt", ""},
		{"admin own", "admin", []string{"list"}, "limit=20&user=admin", "", "No jobs match.\n"},
		{"admin all", "admin", []string{"list", "--all-users"}, "limit=20", "list-all-users.txt", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.Token = tc.token
			e.Login()
			e.ResetRequests()
			code, out, errOut := e.Run(tc.args...)
			if code != 0 || errOut != tc.stderr {
				t.Fatalf("exit %d, stderr %q, want 0 and %q", code, errOut, tc.stderr)
			}
			var q string
			for _, r := range e.Requests() {
				if r.URL.Path == "/api/jobs" {
					q = r.URL.RawQuery
				}
			}
			if q != tc.query {
				t.Errorf("query %q, want %q", q, tc.query)
			}
			if tc.golden != "" {
				ftctltest.Golden(t, tc.golden, out)
			} else if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
}

func TestListJSONAndBadFlags(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	ftctltest.SeedList(e)
	code, out, _ := e.Run("list", "--json")
	var page client.JobList
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Jobs) != 3 {
		t.Errorf("--json: exit %d, %d jobs, want 0 and 3; out %q", code, len(page.Jobs), out)
	}
	for _, tc := range []struct{ args, want string }{
		{"list --state sleeping", "ftctl: --state \"sleeping\": want one of submitting, queued, running, pausing, paused, succeeded, failed, cancelled (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
		{"list --since yesterday", "ftctl: --since \"yesterday\": want a duration (90m, 24h, 7d), a date (2026-01-02) or an RFC 3339 time (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
		{"list --sort size", "ftctl: --sort \"size\": want one of created, duration, loss, eval_loss (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
		{"list --limit 0", "ftctl: --limit must be between 1 and 200, got 0 (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
		{"list extra", "ftctl: ftctl list takes no arguments, got \"extra\" (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
	} {
		code, out, errOut := e.Run(strings.Fields(tc.args)...)
		if code != 2 || out != "" || errOut != tc.want {
			t.Errorf("%s: exit %d stdout %q stderr %q, want 2 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

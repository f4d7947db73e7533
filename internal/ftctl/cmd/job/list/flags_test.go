package list_test

import (
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/job/list"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
)

// TestNewCmdList parses flags through the runF seam: what reaches runList, and the
// usage errors (exit 2) caught before any request.
func TestNewCmdList(t *testing.T) {
	t.Parallel()
	ftctltest.FlagTable[list.ListOptions]{
		NewCmd: list.NewCmdList,
		Set:    []string{"IO", "Client", "Now"},
	}.Run(t, []ftctltest.FlagCase[list.ListOptions]{
		{Args: "", Want: list.ListOptions{Limit: 20}},
		{Args: "--state running,queued --state paused --since 7d --until 2026-01-02 --model tiny --cluster dev -L 50 --cursor c2 --json",
			Want: list.ListOptions{States: []string{"running", "queued", "paused"}, Since: "7d", Until: "2026-01-02", Model: "tiny", Cluster: "dev", Limit: 50, Cursor: "c2", JSON: true}},
		{Args: "-A", Want: list.ListOptions{AllUsers: true, Limit: 20}},
		{Args: "--sort loss --search llama", Want: list.ListOptions{Sort: "loss", Search: "llama", Limit: 20}},
		{Args: "--sort duration --order asc", Want: list.ListOptions{Sort: "duration", Order: "asc", Limit: 20}},
		{Args: "--sort eval_loss --order desc", Want: list.ListOptions{Sort: "eval_loss", Order: "desc", Limit: 20}},
		{Args: "--sort size", WantErr: `--sort "size": want one of created, duration, loss, eval_loss`},
		{Args: "--sort loss --order down", WantErr: `--order "down": want asc or desc`},
		{Args: "--user bob", Want: list.ListOptions{User: "bob", Limit: 20}},
		{Args: "--limit 201", WantErr: "--limit must be between 1 and 200, got 201"},
		{Args: "--all-users --user bob", WantErr: "--all-users and --user cannot be combined"},
		{Args: "--state runing", WantErr: `--state "runing": want one of submitting, queued`},
		{Args: "extra", WantErr: `list takes no arguments, got "extra"`},
	})
}

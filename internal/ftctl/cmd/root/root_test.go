package root_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
	"github.com/ftgate/ftgate/internal/ftctl/cmd/root"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/version"
)

func TestErrorsAreOneLineWithExitCodes(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	ftctltest.SeedList(e)
	for _, tc := range []struct {
		name  string
		setup func()
		args  []string
		code  int
		want  string
	}{
		{"other user's job", nil, []string{"status", "j4"}, 1,
			"ftctl: job j4 not found (HTTP 404) (hint: `ftctl list` shows your jobs)\n"},
		{"no job argument", nil, []string{"status"}, 2,
			"ftctl: ftctl status needs exactly one JOB argument, got 0 (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
		{"bad job id", nil, []string{"cancel", "../x"}, 2,
			"ftctl: JOB \"../x\" is not a job id (up to 64 letters, digits, '_', '-') (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
		{"unknown command", nil, []string{"frobnicate"}, 2,
			"ftctl: unknown command \"frobnicate\" for \"ftctl\" (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
		{"token refused", func() { e.Token = "expired"; e.Login() }, []string{"list"}, 4,
			"ftctl: token expired; run `ftctl auth login --server " + e.Srv.URL + "`\n"},
		{"not logged in", func() { os.Remove(filepath.Join(e.CfgDir, "tokens.json")); e.Token = "" }, []string{"status", "j1"}, 4,
			"ftctl: not logged in; run `ftctl auth login --server " + e.Srv.URL + "`\n"},
		{"no server", func() { e.Server = "http://127.0.0.1:1"; e.Token = "alice"; e.Login() }, []string{"status", "j1"}, 1,
			"ftctl: cannot reach the gateway at http://127.0.0.1:1: connect: connection refused (hint: check --server, FTCTL_SERVER or the config file, and that the gateway is running)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			start := time.Now()
			code, out, errOut := e.Run(tc.args...)
			if code != tc.code || out != "" || errOut != tc.want {
				t.Errorf("exit %d stdout %q stderr\n%q\nwant exit %d stderr\n%q", code, out, errOut, tc.code, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	ftctltest.SeedList(e)
	code, out, _ := e.Run("__complete", "status", "")
	if want := "j3\ttiny-j3 queued\nj2\trunning\nj1\ttiny-j1 succeeded\n:4\n"; code != 0 || out != want {
		t.Errorf("job id completion: exit %d\n%q\nwant\n%q", code, out, want)
	}
	e.Templates.Put("alice", "tiny-sft", "private", `{"model":"builtin:tiny"}`, `{"model":"builtin:tiny"}`)
	e.Templates.Put("admin", "lab-base", "shared", `{}`)
	e.Templates.Put("bob", "bobs", "private", `{}`)
	for _, args := range [][]string{{"__complete", "template", "show", ""}, {"__complete", "submit", "--template", ""}} {
		code, out, _ := e.Run(args...)
		if want := "lab-base\tshared, v1, admin\ntiny-sft\tprivate, v2, alice\n:4\n"; code != 0 || out != want {
			t.Errorf("template name completion %q: exit %d\n%q\nwant\n%q", args, code, out, want)
		}
	}
	if code, out, _ := e.Run("__complete", "template", "save", ""); code != 0 || !strings.HasPrefix(out, "j3\t") {
		t.Errorf("template save completes job ids: exit %d %q", code, out)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, errOut := e.Run("completion", sh)
		if code != 0 || !strings.Contains(out, "ftctl") || errOut != "" {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", sh, code, len(out), errOut)
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	code, out, errOut := e.Run("--version")
	want := "ftctl " + version.String() + "\n"
	if code != 0 || out != want || errOut != "" {
		t.Errorf("--version: exit %d stdout %q stderr %q, want %q", code, out, errOut, want)
	}
	if !strings.Contains(out, "(commit ") {
		t.Errorf("--version names no commit: %q", out)
	}
}

// TestEveryCommandHasExamples walks the command tree: every command ftctl defines
// (not cobra's own help and completion) shows examples in its --help.
func TestEveryCommandHasExamples(t *testing.T) {
	t.Parallel()
	top := root.NewCmdRoot(ftctltest.FlagFactory(t))
	top.InitDefaultHelpCmd()
	top.InitDefaultCompletionCmd()
	n := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Name() == "help" || c.Name() == "completion" {
			return
		}
		n++
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s --help has no examples", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(top)
	if n < 16 {
		t.Errorf("walked %d commands, want all of them (16)", n)
	}
}

// TestHealthReportsVersion: the gateway's /health names its version and commit.
func TestHealthReportsVersion(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	h, err := apiclient.New(e.Server, nil).Health(t.Context())
	if err != nil || h.Status != "ok" || h.Version != "test" || h.Commit != version.Commit || h.Commit == "" {
		t.Errorf("health %+v, %v; want version test and commit %q", h, err, version.Commit)
	}
}

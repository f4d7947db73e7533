package cmdutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/ftgate/ftgate/client"
	"github.com/ftgate/ftgate/internal/ftctl/apiclient"
)

func TestExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		code int
	}{
		{nil, 0},
		{UsageErrorf("x"), 2},
		{&apiclient.LoginRequiredError{}, 4},
		{&JobFailedError{ID: "j", State: "failed"}, 8},
		{&client.Error{Status: 500}, 1},
		{hinted("x"), 1},
	} {
		if got := ExitCode(tc.err); got != tc.code {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
	}
	if got := FormatError(WithHint(hinted("a\nb"), "do c")); got != "a; b (hint: do c)" {
		t.Errorf("FormatError = %q", got)
	}
	if got := FormatError(fmt.Errorf("load: %w", hinted("bad field"))); got != "load: bad field (hint: fix it)" {
		t.Errorf("FormatError of a wrapped Hinter = %q", got)
	}
}

type hintedError string

func (e hintedError) Error() string { return string(e) }
func (e hintedError) Hint() string  { return "fix it" }

func hinted(s string) error { return hintedError(s) }

func TestServerResolution(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, flag, env, config string
		want, wantErr           string
	}{
		{name: "flag wins", flag: "http://flag.example:1", env: "http://env.example:2", config: "server: http://cfg.example:3\n", want: "http://flag.example:1"},
		{name: "env over config", env: "http://env.example:2/", config: "server: http://cfg.example:3\n", want: "http://env.example:2"},
		{name: "config", config: "server: https://cfg.example.edu/gw/\n", want: "https://cfg.example.edu/gw"},
		{name: "none", wantErr: "no gateway: pass --server URL, set FTCTL_SERVER, or log in once with `ftctl auth login --server URL`"},
		{name: "bad scheme", flag: "ftp://x", wantErr: `--server: "ftp://x" is not a gateway URL (want http(s)://host[:port])`},
		{name: "no host", env: "http://", wantErr: `FTCTL_SERVER: "http://" is not a gateway URL`},
		{name: "bad config key", config: "sever: http://x.example\n", wantErr: "field sever not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.config != "" {
				if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(tt.config), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			f := NewFactory(nil, nil, nil)
			f.ServerFlag = tt.flag
			f.Getenv = func(k string) string {
				return map[string]string{"FTCTL_CONFIG_DIR": dir, "FTCTL_SERVER": tt.env}[k]
			}
			got, err := f.Server()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestJobArg: the JOB argument follows the ftgate job id rule (job.ValidID), the same
// one the gateway's Slurm tag and job directory use.
func TestJobArg(t *testing.T) {
	t.Parallel()
	cmd := &cobra.Command{Use: "status"}
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"0f8fad5b-d9cb-469f-a165-70867728950e"}, true},
		{[]string{"j1"}, true},
		{[]string{strings.Repeat("a", 64)}, true},
		{[]string{strings.Repeat("a", 65)}, false},
		{[]string{"a.b"}, false},
		{[]string{"../x"}, false},
		{[]string{"-x"}, false},
		{nil, false},
		{[]string{"a", "b"}, false},
	} {
		err := JobArg(cmd, tc.args)
		if (err == nil) != tc.ok || (err != nil && ExitCode(err) != ExitUsage) {
			t.Errorf("JobArg(%q) = %v (exit %d), want ok %v", tc.args, err, ExitCode(err), tc.ok)
		}
	}
}

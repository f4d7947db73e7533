package logs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/job"
)

func TestLogs(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	e.Seed("j1", "alice", job.Succeeded, nil)
	log := "line 1\nline 2\nline 3\nline 4\n"
	dir := filepath.Join(e.Root, "alice", "j1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "slurm-1001.out"), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"logs", "j1"}, log},
		{[]string{"logs", "j1", "--tail", "2"}, "line 3\nline 4\n"},
		{[]string{"logs", "j1", "-f"}, log},
		{[]string{"logs", "j1", "-f", "-n", "1"}, "line 4\n"},
	} {
		code, out, errOut := e.Run(tc.args...)
		if code != 0 || out != tc.want || errOut != "" {
			t.Errorf("%v: exit %d stdout %q stderr %q, want %q", tc.args, code, out, errOut, tc.want)
		}
	}
	if code, _, errOut := e.Run("logs", "j1", "--tail", "-5"); code != 2 || !strings.Contains(errOut, "--tail must be between 0 and 100000") {
		t.Errorf("--tail -5: exit %d stderr %q", code, errOut)
	}
}

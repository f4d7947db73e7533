package control_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/job"
)

func TestPauseResumeCancel(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	e.Seed("j1", "alice", job.Running, nil)
	e.Seed("j2", "alice", job.Queued, nil)
	e.Seed("j3", "alice", job.Succeeded, nil)
	steps := []struct {
		args []string
		code int
		out  string
		errs string
	}{
		{[]string{"pause", "j1"}, 0, "Pausing job j1: its trainer is writing a checkpoint; `ftctl status j1` shows when it is paused\n", ""},
		{[]string{"pause", "j1"}, 0, "Job j1 is already pausing: its trainer is writing a checkpoint\n", ""},
		{[]string{"resume", "j1"}, 1, "", "ftctl: job is still pausing (writing its checkpoint); resume once it is paused (HTTP 409) (hint: `ftctl status JOB` shows the job's state)\n"},
		{[]string{"pause", "j2"}, 0, "Paused job j2; resume it with `ftctl resume j2`\n", ""},
		{[]string{"pause", "j2"}, 0, "Job j2 is already paused; resume it with `ftctl resume j2`\n", ""},
		{[]string{"resume", "j2"}, 0, "Resumed job j2: queued, continuing from its latest checkpoint\n", ""},
		{[]string{"resume", "j2"}, 0, "Job j2 is already queued; nothing to resume\n", ""},
		{[]string{"cancel", "j2"}, 0, "Cancelled job j2\n", ""},
		{[]string{"cancel", "j2"}, 0, "Job j2 is already cancelled\n", ""},
		{[]string{"cancel", "j3"}, 1, "", "ftctl: job already succeeded; only unfinished jobs can be cancelled (HTTP 409) (hint: `ftctl status JOB` shows the job's state)\n"},
	}
	for _, s := range steps {
		code, out, errOut := e.Run(s.args...)
		if code != s.code || out != s.out || errOut != s.errs {
			t.Errorf("ftctl %s: exit %d stdout %q stderr %q\nwant exit %d stdout %q stderr %q", strings.Join(s.args, " "), code, out, errOut, s.code, s.out, s.errs)
		}
	}
	want := "Signal alice 1001|Hold alice 1002|Release alice 1002|Cancel alice 1002"
	if got := strings.Join(e.Slurm.Calls(), "|"); got != want {
		t.Errorf("Slurm calls %q, want %q", got, want)
	}
	b, err := os.ReadFile(filepath.Join(e.Root, "alice", "j1", "control.json"))
	if err != nil || !strings.Contains(string(b), `"pause"`) {
		t.Errorf("control.json %q, %v; want a pause request", b, err)
	}
}

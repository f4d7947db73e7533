package status_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/job"
)

func TestStatus(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	ftctltest.SeedList(e)
	e.Store.Update("j2", func(j *job.Job) {
		j.SlurmState, j.RestartCount = "RUNNING", 1
		j.Progress.TokensPerSecond, j.Progress.ETASeconds, j.Progress.LatestCheckpoint = 2400, ftctltest.Ptr(95.0), "step-100"
	})
	ftctltest.MkCheckpoint(t, filepath.Join(e.Root, "alice", "j2", "checkpoints", "step-50"), 50, map[string]string{"model.pt": "weights-50"})
	ftctltest.MkCheckpoint(t, filepath.Join(e.Root, "alice", "j2", "checkpoints", "step-100"), 100, map[string]string{"model.pt": "weights-100"})
	code, out, errOut := e.Run("status", "j2")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	ftctltest.Golden(t, "status-running.txt", strings.ReplaceAll(out, e.Root, "<root>"))
	code, out, _ = e.Run("status", "j1")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	ftctltest.Golden(t, "status-succeeded.txt", strings.ReplaceAll(out, e.Root, "<root>"))
	code, out, _ = e.Run("status", "j2", "--json")
	var j job.Job
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil || j.ID != "j2" || j.SlurmID != "1002" {
		t.Errorf("--json: exit %d, job %+v", code, j)
	}
}

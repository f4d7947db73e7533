package download_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/job"
)

func TestDownloadModel(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	e.Seed("j1", "alice", job.Succeeded, nil)
	model := filepath.Join(e.Root, "alice", "j1", "model")
	big := strings.Repeat("0123456789abcdef", 4096)
	ftctltest.WriteManifestDir(t, model, 300, map[string]string{"model.pt": big, "config.json": `{"d":64}`, "tok/vocab.json": `["a"]`})
	out1 := filepath.Join(t.TempDir(), "m")
	code, out, errOut := e.Run("download", "j1", "-o", out1)
	want := fmt.Sprintf("Downloaded the model of job j1 to %s: 3 files, 64.0 KiB, sha256 verified\n", out1)
	if code != 0 || out != want || errOut != "" {
		t.Fatalf("exit %d stdout %q stderr %q, want %q", code, out, errOut, want)
	}
	for name, body := range map[string]string{"model.pt": big, "tok/vocab.json": `["a"]`} {
		if b, err := os.ReadFile(filepath.Join(out1, name)); err != nil || string(b) != body {
			t.Errorf("%s: %d bytes, %v", name, len(b), err)
		}
	}
	// An interrupted download: half of model.pt in model.pt.part resumes with a Range.
	os.Remove(filepath.Join(out1, "model.pt"))
	if err := os.WriteFile(filepath.Join(out1, "model.pt.part"), []byte(big[:30000]), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ResetRequests()
	code, out, errOut = e.Run("download", "j1", "-o", out1)
	if code != 0 || !strings.HasSuffix(out, "sha256 verified, 1 file resumed\n") || errOut != "" {
		t.Errorf("resume: exit %d stdout %q stderr %q", code, out, errOut)
	}
	var ranges []string
	for _, r := range e.Requests() {
		if h := r.Header.Get("Range"); h != "" {
			ranges = append(ranges, r.URL.Query().Get("file")+" "+h)
		}
	}
	if strings.Join(ranges, ",") != "model.pt bytes=30000-" {
		t.Errorf("range requests %q, want only model.pt from byte 30000", ranges)
	}
	if b, _ := os.ReadFile(filepath.Join(out1, "model.pt")); string(b) != big {
		t.Errorf("resumed model.pt differs")
	}
	// A file that does not match the manifest is refused and removed.
	if err := os.WriteFile(filepath.Join(model, "config.json"), []byte(`{"d":65}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out2 := filepath.Join(t.TempDir(), "m2")
	code, out, errOut = e.Run("download", "j1", "-o", out2)
	if code != 1 || out != "" || !strings.HasPrefix(errOut, "ftctl: config.json: sha256 ") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("corrupt file: exit %d stdout %q stderr %q", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(out2, "config.json")); err == nil {
		t.Errorf("a file failing its checksum was kept")
	}
}

func TestDownloadCheckpointAndLogs(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	e.Seed("j1", "alice", job.Paused, nil)
	dir := filepath.Join(e.Root, "alice", "j1")
	ftctltest.WriteManifestDir(t, filepath.Join(dir, "checkpoints", "step-50"), 50, map[string]string{"model.pt": "w50", "optimizer.pt": "o50"})
	if err := os.WriteFile(filepath.Join(dir, "slurm-1001.out"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	to := t.TempDir()
	code, out, errOut := e.Run("download", "j1", "--checkpoint", "step-50", "-o", filepath.Join(to, "ck"))
	if want := fmt.Sprintf("Downloaded the checkpoint step-50 of job j1 to %s: 2 files, 6 B, sha256 verified\n", filepath.Join(to, "ck")); code != 0 || out != want || errOut != "" {
		t.Errorf("checkpoint: exit %d stdout %q stderr %q, want %q", code, out, errOut, want)
	}
	if b, _ := os.ReadFile(filepath.Join(to, "ck", "optimizer.pt")); string(b) != "o50" {
		t.Errorf("optimizer.pt = %q", b)
	}
	for i, want := range []string{"(6 B, 6 B new)", "(6 B, 0 B new)"} {
		code, out, errOut = e.Run("download", "j1", "--logs", "-o", to)
		if code != 0 || out != fmt.Sprintf("Downloaded the log of job j1 to %s %s\n", filepath.Join(to, "j1.log"), want) || errOut != "" {
			t.Errorf("logs #%d: exit %d stdout %q stderr %q", i, code, out, errOut)
		}
	}
	code, _, errOut = e.Run("download", "j1", "--checkpoint", "../x")
	if code != 2 || !strings.Contains(errOut, `--checkpoint "../x": want a checkpoint name like step-100`) {
		t.Errorf("bad checkpoint: exit %d stderr %q", code, errOut)
	}
	code, _, errOut = e.Run("download", "j1", "--checkpoint", "step-7", "-o", filepath.Join(to, "none"))
	if code != 1 || strings.Count(errOut, "\n") != 1 {
		t.Errorf("missing checkpoint: exit %d stderr %q", code, errOut)
	}
}

package ftctltest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// SFTYAML is a small SFT spec with a relative dataset path.
const SFTYAML = `# a comment
name: tiny-sft
method: sft
model: builtin:tiny
dataset:
  path: data/train.jsonl
  eval_path: /abs/eval.jsonl
hyperparameters:
  learning_rate: 0.003
  max_steps: 300
lora:
  enabled: true
  target_modules: [q_proj, v_proj]
resources:
  gpus: 1
`

// WriteSpec writes body as dir/name and returns its path.
func WriteSpec(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// MkCheckpoint writes a complete checkpoint directory with its manifest.
func MkCheckpoint(t *testing.T, dir string, step int64, files map[string]string) {
	t.Helper()
	WriteManifestDir(t, dir, step, files)
}

// WriteManifestDir writes files into dir with their manifest.json and returns it.
func WriteManifestDir(t *testing.T, dir string, step int64, files map[string]string) map[string]any {
	t.Helper()
	m := map[string]any{"format": 1, "step": step, "created_at": float64(T0.Unix()), "files": map[string]any{}}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(body))
		m["files"].(map[string]any)[name] = map[string]any{"size": len(body), "sha256": hex.EncodeToString(sum[:])}
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return m
}

// RepoRoot is the repository's root directory (where go.mod is).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

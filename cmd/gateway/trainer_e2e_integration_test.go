package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/ftctl/cmd/root"
	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/tokencache"
	"github.com/ftgate/ftgate/internal/stacktest"
)

// twoRankSpec is a builtin:tiny SFT job of 2 CPU ranks (gloo) on one node: torchrun
// --standalone --nproc-per-node=2 under srun.
func (e *e2e) twoRankSpec(steps int) map[string]any {
	s := e.spec(steps, 0)
	s["resources"].(map[string]any)["cpus"] = 2
	s["distributed"] = map[string]any{"processes_per_node": 2}
	return s
}

// progressFile reads the job's progress.json as alice.
func (e *e2e) progressFile(jobDir string) map[string]any {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	files, err := e.slurm.ReadFiles(ctx, "alice", []string{jobDir + "/progress.json"}, 1<<16)
	if err != nil || !files[0].Exists {
		e.t.Fatalf("read progress.json: %v", err)
	}
	var p map[string]any
	if err := json.Unmarshal(files[0].Data, &p); err != nil {
		e.t.Fatalf("progress.json: %v", err)
	}
	return p
}

// TestIntegrationTrainerTwoRanksPauseResume: a job of 2 CPU ranks pauses (every rank
// stops at the same step and checkpoints), resumes as the same Slurm job from that
// checkpoint, and succeeds.
func TestIntegrationTrainerTwoRanksPauseResume(t *testing.T) {
	e := startE2E(t)
	const steps = 400
	code, m := e.do("POST", "/api/training/execute", e.twoRankSpec(steps))
	if code != http.StatusAccepted {
		t.Fatalf("execute: %d %v", code, m)
	}
	id := m["id"].(string)
	m = e.wait(id, 3*time.Minute, "running", stateIs("running"))
	slurmID := m["slurm_id"].(string)
	e.wait(id, 90*time.Second, "progress", func(m map[string]any) bool { return step(m) >= 30 })
	if code, m := e.do("POST", "/api/training/pause/"+id, nil); code != http.StatusAccepted {
		t.Fatalf("pause: %d %v", code, m)
	}
	m = e.wait(id, 90*time.Second, "paused", stateIs("paused"))
	p := e.progressFile(m["job_dir"].(string))
	if p["phase"] != "paused" || p["world_size"] != float64(2) {
		t.Fatalf("progress after pause: phase %v world_size %v", p["phase"], p["world_size"])
	}
	pausedAt := p["step"].(float64)
	if pausedAt >= steps || p["latest_checkpoint"] == nil {
		t.Fatalf("paused at step %v with checkpoint %v", pausedAt, p["latest_checkpoint"])
	}
	t.Logf("2 ranks paused at step %v (%v)", pausedAt, p["latest_checkpoint"])
	if code, m := e.do("POST", "/api/training/resume/"+id, nil); code != 200 {
		t.Fatalf("resume: %d %v", code, m)
	}
	m = e.wait(id, 4*time.Minute, "succeeded", stateIs("succeeded"))
	if m["slurm_id"] != slurmID || step(m) != steps {
		t.Fatalf("succeeded as Slurm job %v at step %v, want %s at %d", m["slurm_id"], step(m), slurmID, steps)
	}
	p = e.progressFile(m["job_dir"].(string))
	if p["resumed_from"] != p["latest_checkpoint"] && p["resumed_from"] == nil {
		t.Fatalf("progress after resume: %v", p)
	}
	if rf, _ := p["resumed_from"].(string); !strings.HasPrefix(rf, "checkpoints/step-") || p["restart_count"].(float64) < 1 {
		t.Fatalf("resumed_from %v restart_count %v, want a resume from the pause checkpoint", p["resumed_from"], p["restart_count"])
	}
}

// TestIntegrationTrainerRefusesMoreNodesThanThePartition: the one-node dev partition
// cannot run a 2-node job; the gateway says so before sbatch.
func TestIntegrationTrainerRefusesMoreNodesThanThePartition(t *testing.T) {
	e := startE2E(t)
	s := e.spec(10, 0)
	s["resources"].(map[string]any)["nodes"] = 2
	code, m := e.do("POST", "/api/training/execute", s)
	msg, _ := m["error"].(map[string]any)["message"].(string)
	if code != http.StatusUnprocessableEntity || !strings.Contains(msg, "resources.nodes: 2 nodes requested") {
		t.Fatalf("execute with 2 nodes: %d %v", code, m)
	}
}

// TestIntegrationTrainerDownloadAndGenerate: a LoRA job with lora.merge succeeds; `ftctl
// download` fetches model/ through the gateway; transformers and peft load the adapter
// over the saved base and the merged weights from the downloaded directory, generate a
// few tokens with each, and the two agree.
func TestIntegrationTrainerDownloadAndGenerate(t *testing.T) {
	e := startE2E(t)
	st := stacktest.Require(t)
	python := st.Env["STACK_PYTHON"]
	if python == "" {
		t.Fatal("STACK_PYTHON is not set in the stack env")
	}
	s := e.spec(150, 0) // about 10 s of CPU: enough to answer in capitals
	s["lora"] = map[string]any{"enabled": true, "merge": true}
	s["hyperparameters"].(map[string]any)["learning_rate"] = 0.01
	s["hyperparameters"].(map[string]any)["seed"] = 42
	code, m := e.do("POST", "/api/training/execute", s)
	if code != http.StatusAccepted {
		t.Fatalf("execute: %d %v", code, m)
	}
	id := m["id"].(string)
	e.wait(id, 4*time.Minute, "succeeded", stateIs("succeeded"))

	cfgDir, out := t.TempDir(), filepath.Join(t.TempDir(), "model")
	tc := &tokencache.TokenCache{Path: filepath.Join(cfgDir, "tokens.json")}
	if err := tc.Save(&tokencache.Session{Server: e.url, AccessToken: e.token, Expiry: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	f := cmdutil.NewFactory(strings.NewReader(""), &stdout, &stderr)
	f.Getenv = func(k string) string {
		if k == "FTCTL_CONFIG_DIR" {
			return cfgDir
		}
		return ""
	}
	if rc := root.Run(f, []string{"--server", e.url, "download", id, "-o", out}); rc != 0 {
		t.Fatalf("ftctl download: exit %d: %s%s", rc, stdout.String(), stderr.String())
	}
	t.Log(strings.TrimSpace(stdout.String()))
	for _, name := range []string{"adapter_config.json", "adapter_model.safetensors", "tokenizer.json",
		"chat_template.jinja", "base/config.json", "base/model.safetensors", "merged/model.safetensors"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Errorf("downloaded model lacks %s", name)
		}
	}
	gen := exec.Command(python, "-c", generateScript, out)
	gen.Env = append(os.Environ(), "HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "OMP_NUM_THREADS=1")
	b, err := gen.CombinedOutput()
	if err != nil {
		t.Fatalf("generate with transformers: %v\n%s", err, b)
	}
	if !strings.Contains(string(b), "generated:") {
		t.Fatalf("generate printed: %s", b)
	}
	t.Logf("%s", lastLines(string(b), 3))
}

// generateScript loads the downloaded LoRA adapter over its base with peft and the merged
// model with transformers, and greedy-generates from a prompt shaped like the training
// rows (upper-casing a word); both must produce the same, non-empty text.
const generateScript = `
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel
d = sys.argv[1]
torch.set_num_threads(1)
tok = AutoTokenizer.from_pretrained(d, local_files_only=True)
ids = torch.tensor([[tok.bos_token_id] + tok("upper: miru\n", add_special_tokens=False).input_ids])
base = AutoModelForCausalLM.from_pretrained(d + "/base", local_files_only=True)
lora = PeftModel.from_pretrained(base, d).eval()
merged = AutoModelForCausalLM.from_pretrained(d + "/merged", local_files_only=True).eval()
outs = []
for m in (lora, merged):
    with torch.no_grad():
        o = m.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                       pad_token_id=tok.pad_token_id)
    outs.append(o[0, ids.shape[1]:].tolist())
text = tok.decode(outs[0], skip_special_tokens=True)
assert outs[0] == outs[1], outs
print("generated:", repr(text))
assert text.strip(), "the model only ended the answer: %r" % outs
`

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

package spec_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/cmdutil"
	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/ftctl/spec"
	"github.com/ftgate/ftgate/internal/job"
)

func TestLoadSpec(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name, body string
		sets       []string
		check      func(s job.Spec) string
		err        string // substring of the error; "" for success
	}{
		{name: "yaml", body: ftctltest.SFTYAML, check: func(s job.Spec) string {
			if s.Name != "tiny-sft" || s.Hyperparameters.LearningRate != 0.003 || !s.LoRA.Enabled || s.Resources.GPUs != 1 {
				return "fields not read"
			}
			if s.Dataset.Path != filepath.Join(dir, "data", "train.jsonl") {
				return "relative dataset path not resolved against the spec's directory: " + s.Dataset.Path
			}
			return ""
		}},
		{name: "json", body: `{"method": "sft", "model": "builtin:tiny", "dataset": {"path": "t.jsonl"}, "hyperparameters": {"epochs": 2}}`,
			check: func(s job.Spec) string {
				if s.Hyperparameters.Epochs != 2 || s.Dataset.Path != filepath.Join(dir, "t.jsonl") {
					return "json not read"
				}
				return ""
			}},
		{name: "sets", body: ftctltest.SFTYAML, sets: []string{"hyperparameters.learning_rate=1e-4", "lora.enabled=false", "name=other", "resources.gpu_type=a100", "lora.target_modules="},
			check: func(s job.Spec) string {
				if s.Hyperparameters.LearningRate != 1e-4 || s.LoRA.Enabled || s.Name != "other" || s.Resources.GPUType != "a100" || len(s.LoRA.TargetModules) != 0 {
					return "sets not applied"
				}
				return ""
			}},
		{name: "integer written as float", body: "method: sft\nmodel: builtin:tiny\ndataset: {path: /a}\nhyperparameters: {max_steps: 1e3}\n",
			check: func(s job.Spec) string {
				if s.Hyperparameters.MaxSteps != 1000 {
					return "1e3 not read as 1000"
				}
				return ""
			}},
		{name: "set null restores the default", body: ftctltest.SFTYAML, sets: []string{"hyperparameters.learning_rate=null", "lora.target_modules=~"},
			check: func(s job.Spec) string {
				if s.Hyperparameters.LearningRate != 0 || s.LoRA.TargetModules != nil || !s.LoRA.Enabled {
					return fmt.Sprintf("null not applied: learning_rate %g, target_modules %v", s.Hyperparameters.LearningRate, s.LoRA.TargetModules)
				}
				return ""
			}},
		{name: "empty", body: "", err: "empty spec"},
		{name: "syntax", body: "method: [sft\n", err: "syntax.yaml: line 1: did not find expected ',' or ']'"},
		{name: "unknown top-level", body: "methd: sft\n", err: ":1: methd: unknown field (did you mean method?)"},
		{name: "section as scalar", body: "lora: yes\n", err: ":1: lora: want a mapping, got \"yes\""},
		{name: "list as scalar", body: "lora: {target_modules: q_proj}\n", err: ":1: lora.target_modules: want a list, got \"q_proj\""},
		{name: "string as number", body: "name: 42\n", err: ":1: name: want a string, got 42; quote it"},
		{name: "fractional int", body: "hyperparameters: {epochs: 1.5}\n", err: "hyperparameters.epochs: want an integer, got \"1.5\""},
		{name: "bool", body: "lora: {enabled: maybe}\n", err: "lora.enabled: want true or false, got \"maybe\""},
		{name: "duplicate", body: "method: sft\nmethod: dpo\n", err: ":2: method: set twice"},
		{name: "nested unknown", body: "resources: {gpu: 1}\n", err: ":1: resources.gpu: unknown field (did you mean resources.gpus?)"},
		{name: "set section", body: ftctltest.SFTYAML, sets: []string{"lora=1"}, err: "--set lora: is a section; set one of its fields, e.g. lora.alpha"},
		{name: "set through scalar", body: ftctltest.SFTYAML, sets: []string{"name.x=1"}, err: "--set name.x: name is not a section"},
		{name: "set without value", body: ftctltest.SFTYAML, sets: []string{"name"}, err: "--set \"name\": want key=value"},
		{name: "set number", body: ftctltest.SFTYAML, sets: []string{"resources.gpus=two"}, err: "--set resources.gpus: want an integer, got \"two\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			s, err := spec.Load(spec.Source{File: path, Sets: tc.sets, Dir: "/work"})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error spans lines: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tc.check(s); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// TestExamplesLoad checks that every example spec in examples/ loads, resolves its
// datasets to existing files and passes the gateway's validation.
func TestExamplesLoad(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob(filepath.Join(ftctltest.RepoRoot(t), "examples", "*.yaml"))
	if len(files) == 0 {
		t.Skip("no examples/*.yaml yet")
	}
	for _, f := range files {
		s, err := spec.Load(spec.Source{File: f})
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if err := spec.Check(s); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		if _, err := os.Stat(s.Dataset.Path); err != nil {
			t.Errorf("%s: dataset.path: %v", f, err)
		}
	}
}

// TestOverrides: --set flags for a submission from a template become a JSON object of
// exactly the fields they name, typed by the spec, relative dataset paths resolved.
func TestOverrides(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sets []string
		want string // JSON, or the error's substring
		err  bool
	}{
		{sets: nil, want: `{}`},
		{sets: []string{"hyperparameters.max_steps=50", "model=/models/llama"}, want: `{"hyperparameters":{"max_steps":50},"model":"/models/llama"}`},
		{sets: []string{"hyperparameters.learning_rate=3e-4", "hyperparameters.max_steps=1_000", "lora.enabled=yes"},
			want: `{"hyperparameters":{"learning_rate":0.0003,"max_steps":1000},"lora":{"enabled":true}}`},
		{sets: []string{"lora.target_modules=q_proj, v_proj", "name=42"}, want: `{"lora":{"target_modules":["q_proj","v_proj"]},"name":"42"}`},
		{sets: []string{"resources.partition=null", "dataset.eval_path=~"}, want: `{"dataset":{"eval_path":null},"resources":{"partition":null}}`},
		{sets: []string{"dataset.path=rel/train.jsonl", "dataset.eval_path=/abs/eval.jsonl"}, want: `{"dataset":{"eval_path":"/abs/eval.jsonl","path":"/work/rel/train.jsonl"}}`},
		{sets: []string{"hyperparameters.max_steps=50", "hyperparameters.max_steps=60"}, want: `{"hyperparameters":{"max_steps":60}}`},
		{sets: []string{"train.max_steps=50"}, err: true, want: "--set train.max_steps: unknown field train (known: checkpoints, dataset, distributed, hyperparameters,"},
		{sets: []string{"hyperparameters.max_stepz=5"}, err: true, want: "--set hyperparameters.max_stepz: unknown field hyperparameters.max_stepz (did you mean hyperparameters.max_steps?)"},
		{sets: []string{"resources.gpus=two"}, err: true, want: `--set resources.gpus: want an integer, got "two"`},
		{sets: []string{"lora.enabled=maybe"}, err: true, want: `--set lora.enabled: want true or false, got "maybe"`},
		{sets: []string{"resources=1"}, err: true, want: "--set resources: is a section"},
		{sets: []string{"max_steps"}, err: true, want: `--set "max_steps": want key=value`},
	} {
		got, err := spec.Overrides(tc.sets, "/work")
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), tc.want) || cmdutil.ExitCode(err) != cmdutil.ExitUsage {
				t.Errorf("%q: %v, %v; want usage error %q", tc.sets, got, err, tc.want)
			}
			continue
		}
		b, _ := json.Marshal(got)
		if err != nil || string(b) != tc.want {
			t.Errorf("%q: %s, %v; want %s", tc.sets, b, err, tc.want)
		}
	}
}

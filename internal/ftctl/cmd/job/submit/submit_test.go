package submit_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ftgate/ftgate/internal/ftctl/ftctltest"
	"github.com/ftgate/ftgate/internal/job"
)

func lastJob(t *testing.T, e *ftctltest.Env) job.Job {
	t.Helper()
	j, err := e.Store.Get(t.Context(), fmt.Sprintf("j%d", e.Store.Created()))
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestSubmit(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	dir := t.TempDir()
	spec := ftctltest.WriteSpec(t, dir, "specs/sft.yaml", ftctltest.SFTYAML)
	code, out, errOut := e.Run("submit", "-f", spec, "--set", "hyperparameters.max_steps=50", "--set", "lora.target_modules=q_proj,k_proj")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if want := "Submitted job j1 (tiny-sft) to cluster dev; follow it with `ftctl watch j1`\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	j := lastJob(t, e)
	if want := filepath.Join(dir, "specs", "data", "train.jsonl"); j.Spec.Dataset.Path != want {
		t.Errorf("dataset.path %q, want %q (relative to the spec file)", j.Spec.Dataset.Path, want)
	}
	if j.Spec.Dataset.EvalPath != "/abs/eval.jsonl" {
		t.Errorf("dataset.eval_path %q changed", j.Spec.Dataset.EvalPath)
	}
	if j.Spec.Hyperparameters.MaxSteps != 50 || strings.Join(j.Spec.LoRA.TargetModules, ",") != "q_proj,k_proj" {
		t.Errorf("--set not applied: max_steps %d, target_modules %v", j.Spec.Hyperparameters.MaxSteps, j.Spec.LoRA.TargetModules)
	}
	if !strings.HasPrefix(j.IdempotencyKey, "ftctl-") {
		t.Errorf("idempotency key %q, want a random ftctl- key", j.IdempotencyKey)
	}
	// The same key again returns the first job instead of a second one.
	code, out, _ = e.Run("submit", "-f", spec, "--set", "hyperparameters.max_steps=50", "--set", "lora.target_modules=q_proj,k_proj", "--idempotency-key", j.IdempotencyKey, "--json")
	var again job.Job
	if code != 0 || json.Unmarshal([]byte(out), &again) != nil || again.ID != "j1" || e.Store.Created() != 1 {
		t.Errorf("resubmission with the same key: exit %d, job %q, jobs created %d; want j1 and no new job", code, again.ID, e.Store.Created())
	}
}

func TestSubmitStdinJSONAndSetPathRelativeToWorkdir(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	body := `{"method":"dpo","model":"builtin:tiny","dataset":{"path":"/d/p.jsonl"}}`
	wd, _ := os.Getwd()
	code, _, errOut := e.RunIn(body, "submit", "-f", "-", "--set", "dataset.eval_path=rel/eval.jsonl")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	j := lastJob(t, e)
	if j.Spec.Method != "dpo" || j.Spec.Dataset.EvalPath != filepath.Join(wd, "rel", "eval.jsonl") {
		t.Errorf("method %q eval_path %q; want dpo and a path relative to the working directory", j.Spec.Method, j.Spec.Dataset.EvalPath)
	}
}

func TestSubmitDryRun(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	spec := ftctltest.WriteSpec(t, "/tmp", filepath.Base(t.TempDir())+"-dry.yaml", strings.Replace(ftctltest.SFTYAML, "data/train.jsonl", "/data/train.jsonl", 1))
	defer os.Remove(spec)
	code, out, errOut := e.Run("submit", "-f", spec, "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if e.Store.Created() != 0 {
		t.Errorf("dry run created %d jobs", e.Store.Created())
	}
	ftctltest.Golden(t, "submit-dry-run.txt", strings.ReplaceAll(out, e.Root, "<root>"))
}

func TestSubmitErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		spec string // file body; "" means no file
		args []string
		code int
		want string // the whole stderr
	}{
		{"unknown field", strings.Replace(ftctltest.SFTYAML, "learning_rate", "lerning_rate", 1), nil, 1,
			"ftctl: %s:9: hyperparameters.lerning_rate: unknown field (did you mean hyperparameters.learning_rate?) (hint: fix that field; see `ftctl submit --help` or docs/spec.md)\n"},
		{"wrong type", strings.Replace(ftctltest.SFTYAML, "max_steps: 300", "max_steps: lots", 1), nil, 1,
			"ftctl: %s:10: hyperparameters.max_steps: want an integer, got \"lots\" (hint: fix that field; see `ftctl submit --help` or docs/spec.md)\n"},
		{"bad value", strings.Replace(ftctltest.SFTYAML, "method: sft", "method: ppo", 1), nil, 1,
			"ftctl: invalid spec: method: must be sft or dpo, got \"ppo\" (hint: fix that field; see `ftctl submit --help` or docs/spec.md)\n"},
		{"not a mapping", "- a\n- b\n", nil, 1,
			"ftctl: %s:1: spec: want a mapping, got a list (hint: fix that field; see `ftctl submit --help` or docs/spec.md)\n"},
		{"rejected by the gateway", ftctltest.SFTYAML, []string{"--set", "resources.partition=debug"}, 1,
			"ftctl: invalid spec: resources.partition: \"debug\" is not allowed on cluster dev (allowed: gpu, urgent) (HTTP 422) (hint: fix the named field)\n"},
		{"unknown --set key", ftctltest.SFTYAML, []string{"--set", "lora.rank=4"}, 2,
			"ftctl: --set lora.rank: unknown field lora.rank (known: alpha, dropout, enabled, merge, r, target_modules) (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
		{"bad --set value", ftctltest.SFTYAML, []string{"--set", "lora.enabled=maybe"}, 2,
			"ftctl: --set lora.enabled: want true or false, got \"maybe\" (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
		{"missing file", "", nil, 1,
			"ftctl: spec file %s does not exist (hint: fix that field; see `ftctl submit --help` or docs/spec.md)\n"},
		{"no -f", "", []string{"--no-file"}, 2,
			"ftctl: -f SPEC is required (a YAML or JSON spec file, or - for stdin), or --template NAME[@VERSION] (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
		{"unknown flag", ftctltest.SFTYAML, []string{"--frobnicate"}, 2,
			"ftctl: unknown flag: --frobnicate (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := ftctltest.NewEnv(t)
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if tc.spec != "" {
				ftctltest.WriteSpec(t, dir, filepath.Base(path), tc.spec)
			}
			args := []string{"submit", "-f", path}
			if len(tc.args) > 0 && tc.args[0] == "--no-file" {
				args = []string{"submit"}
			} else {
				args = append(args, tc.args...)
			}
			code, out, errOut := e.Run(args...)
			want := tc.want
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, path)
			}
			if code != tc.code || errOut != want || out != "" {
				t.Errorf("exit %d, stdout %q, stderr\n%q\nwant exit %d, stderr\n%q", code, out, errOut, tc.code, want)
			}
			if e.Store.Created() != 0 {
				t.Errorf("a job was created")
			}
		})
	}
}

func TestSubmitFromTemplate(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	e.Templates.Put("alice", "tiny-sft", job.VisibilityPrivate,
		`{"name":"tiny","method":"sft","model":"builtin:tiny","dataset":{"path":"/data/train.jsonl"},"hyperparameters":{"max_steps":300,"learning_rate":0.003},"resources":{"partition":"urgent"}}`,
		`{"method":"sft","model":"builtin:tiny","dataset":{"path":"/data/v2.jsonl"}}`)
	wd, _ := os.Getwd()
	code, out, errOut := e.Run("submit", "--template", "tiny-sft@1", "--set", "hyperparameters.max_steps=50", "--set", "dataset.eval_path=rel/eval.jsonl",
		"--set", "resources.partition=null", "--set", "model=/models/llama")
	if want := "Submitted job j1 (tiny) to cluster dev from template tiny-sft@1; follow it with `ftctl watch j1`\n"; code != 0 || out != want {
		t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
	}
	j := lastJob(t, e)
	h := j.Spec.Hyperparameters
	if j.Template == nil || j.Template.String() != "tiny-sft@1" || h.MaxSteps != 50 || h.LearningRate != 0.003 || j.Spec.Model != "/models/llama" ||
		j.Spec.Dataset.EvalPath != filepath.Join(wd, "rel", "eval.jsonl") || j.Spec.Resources.Partition != "gpu" {
		t.Errorf("job from the template: template %v, spec %+v", j.Template, j.Spec)
	}
	// The latest version; --json answers the job.
	code, out, _ = e.Run("submit", "--template", "tiny-sft", "--json")
	var got job.Job
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.Template == nil || got.Template.Version != 2 || got.Spec.Dataset.Path != "/data/v2.jsonl" {
		t.Errorf("latest version: exit %d %q", code, out)
	}
	// A dry run names the template version.
	created := e.Store.Created()
	code, out, errOut = e.Run("submit", "--template", "tiny-sft@1", "--dry-run")
	if code != 0 || !strings.HasPrefix(out, "# From template tiny-sft@1 (owner alice) with the --set overrides\n# Validated spec") ||
		!strings.Contains(out, `"partition": "urgent"`) || e.Store.Created() != created {
		t.Errorf("dry run: exit %d stdout %q stderr %q", code, out, errOut)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--template", "tiny-sft", "--set", "hyperparameters.max_stepz=5"}, 2,
			"ftctl: --set hyperparameters.max_stepz: unknown field hyperparameters.max_stepz (did you mean hyperparameters.max_steps?)"},
		{[]string{"--template", "tiny-sft", "--set", "hyperparameters.max_steps=-5"}, 1,
			"ftctl: invalid spec: hyperparameters.max_steps: must be between 0 and 10000000, got -5 (spec from template tiny-sft@2 with the overrides) (HTTP 422)"},
		{[]string{"--template", "tiny-sft@1", "--set", "resources.partition=debug"}, 1,
			`ftctl: invalid spec: resources.partition: "debug" is not allowed on cluster dev (allowed: gpu, urgent) (spec from template tiny-sft@1 with the overrides) (HTTP 422)`},
		{[]string{"--template", "nope"}, 1, `ftctl: template "nope" not found (HTTP 404)`},
	} {
		before := e.Store.Created()
		code, out, errOut := e.Run(append([]string{"submit"}, tc.args...)...)
		if code != tc.code || out != "" || !strings.HasPrefix(errOut, tc.want) || strings.Count(errOut, "\n") != 1 || e.Store.Created() != before {
			t.Errorf("%q: exit %d stdout %q stderr %q; want exit %d and %q", tc.args, code, out, errOut, tc.code, tc.want)
		}
	}
}

// TestSubmitJobWebhook: a spec's notify.webhook is checked like a registered endpoint
// (a refused target is a one-line error naming the field) and its secret is printed
// once, with the command that shows its deliveries.
func TestSubmitJobWebhook(t *testing.T) {
	t.Parallel()
	e := ftctltest.NewEnv(t)
	body := `{"method":"sft","model":"builtin:tiny","dataset":{"path":"/d/t.jsonl"},"notify":{"webhook":{"url":"%s"}}}`
	code, _, errOut := e.RunIn(fmt.Sprintf(body, "http://10.0.0.7/hook"), "submit", "-f", "-")
	if code == 0 || !strings.Contains(errOut, "notify.webhook.url") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("private target: exit %d, stderr %q; want one line naming notify.webhook.url", code, errOut)
	}
	code, out, errOut := e.RunIn(fmt.Sprintf(body, "https://hooks.example.edu/ftgate"), "submit", "-f", "-")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	j := lastJob(t, e)
	if j.Webhook == nil || j.Spec.Notify == nil || strings.Join(j.Spec.Notify.Webhook.Events, ",") != "job.cancelled,job.failed,job.succeeded" {
		t.Fatalf("job webhook %+v, spec notify %+v; want the default end events", j.Webhook, j.Spec.Notify)
	}
	for _, want := range []string{"Job webhook " + j.Webhook.ID + " -> https://hooks.example.edu/ftgate", "shown only now: " + j.Webhook.Secret,
		"ftctl webhook deliveries " + j.Webhook.ID} {
		if !strings.Contains(out, want) || !strings.HasPrefix(j.Webhook.Secret, "whsec_") {
			t.Errorf("stdout %q lacks %q", out, want)
		}
	}
}

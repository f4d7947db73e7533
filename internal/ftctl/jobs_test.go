package ftctl

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/job"
)

const sftYAML = `# a comment
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

func writeSpec(t *testing.T, dir, name, body string) string {
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

func lastJob(t *testing.T, e *env) job.Job {
	t.Helper()
	j, err := e.store.Get(t.Context(), fmt.Sprintf("j%d", e.store.next))
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestSubmit(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	spec := writeSpec(t, dir, "specs/sft.yaml", sftYAML)
	code, out, errOut := e.run("submit", "-f", spec, "--set", "hyperparameters.max_steps=50", "--set", "lora.target_modules=q_proj,k_proj")
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
	code, out, _ = e.run("submit", "-f", spec, "--set", "hyperparameters.max_steps=50", "--set", "lora.target_modules=q_proj,k_proj", "--idempotency-key", j.IdempotencyKey, "--json")
	var again job.Job
	if code != 0 || json.Unmarshal([]byte(out), &again) != nil || again.ID != "j1" || e.store.next != 1 {
		t.Errorf("resubmission with the same key: exit %d, job %q, jobs created %d; want j1 and no new job", code, again.ID, e.store.next)
	}
}

func TestSubmitStdinJSONAndSetPathRelativeToWorkdir(t *testing.T) {
	e := newEnv(t)
	body := `{"method":"dpo","model":"builtin:tiny","dataset":{"path":"/d/p.jsonl"}}`
	wd, _ := os.Getwd()
	code, _, errOut := e.runIn(body, "submit", "-f", "-", "--set", "dataset.eval_path=rel/eval.jsonl")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	j := lastJob(t, e)
	if j.Spec.Method != "dpo" || j.Spec.Dataset.EvalPath != filepath.Join(wd, "rel", "eval.jsonl") {
		t.Errorf("method %q eval_path %q; want dpo and a path relative to the working directory", j.Spec.Method, j.Spec.Dataset.EvalPath)
	}
}

func TestSubmitDryRun(t *testing.T) {
	e := newEnv(t)
	spec := writeSpec(t, "/tmp", filepath.Base(t.TempDir())+"-dry.yaml", strings.Replace(sftYAML, "data/train.jsonl", "/data/train.jsonl", 1))
	defer os.Remove(spec)
	code, out, errOut := e.run("submit", "-f", spec, "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if e.store.next != 0 {
		t.Errorf("dry run created %d jobs", e.store.next)
	}
	golden(t, "submit-dry-run.txt", strings.ReplaceAll(out, e.root, "<root>"))
}

func TestSubmitErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		spec string // file body; "" means no file
		args []string
		code int
		want string // the whole stderr
	}{
		{"unknown field", strings.Replace(sftYAML, "learning_rate", "lerning_rate", 1), nil, 1,
			"ftctl: %s:9: hyperparameters.lerning_rate: unknown field (did you mean hyperparameters.learning_rate?) (hint: fix that field; see `ftctl submit --help` or docs/spec.md)\n"},
		{"wrong type", strings.Replace(sftYAML, "max_steps: 300", "max_steps: lots", 1), nil, 1,
			"ftctl: %s:10: hyperparameters.max_steps: want an integer, got \"lots\" (hint: fix that field; see `ftctl submit --help` or docs/spec.md)\n"},
		{"bad value", strings.Replace(sftYAML, "method: sft", "method: ppo", 1), nil, 1,
			"ftctl: invalid spec: method: must be sft or dpo, got \"ppo\" (hint: fix that field; see `ftctl submit --help` or docs/spec.md)\n"},
		{"not a mapping", "- a\n- b\n", nil, 1,
			"ftctl: %s:1: spec: want a mapping, got a list (hint: fix that field; see `ftctl submit --help` or docs/spec.md)\n"},
		{"rejected by the gateway", sftYAML, []string{"--set", "resources.partition=debug"}, 1,
			"ftctl: invalid spec: resources.partition: \"debug\" is not allowed on cluster dev (allowed: gpu, urgent) (HTTP 422) (hint: fix the named field)\n"},
		{"unknown --set key", sftYAML, []string{"--set", "lora.rank=4"}, 2,
			"ftctl: --set lora.rank: unknown field lora.rank (known: alpha, dropout, enabled, merge, r, target_modules) (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
		{"bad --set value", sftYAML, []string{"--set", "lora.enabled=maybe"}, 2,
			"ftctl: --set lora.enabled: want true or false, got \"maybe\" (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
		{"missing file", "", nil, 1,
			"ftctl: spec file %s does not exist (hint: fix that field; see `ftctl submit --help` or docs/spec.md)\n"},
		{"no -f", "", []string{"--no-file"}, 2,
			"ftctl: -f SPEC is required (a YAML or JSON spec file, or - for stdin) (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
		{"unknown flag", sftYAML, []string{"--frobnicate"}, 2,
			"ftctl: unknown flag: --frobnicate (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if tc.spec != "" {
				writeSpec(t, dir, filepath.Base(path), tc.spec)
			}
			args := []string{"submit", "-f", path}
			if len(tc.args) > 0 && tc.args[0] == "--no-file" {
				args = []string{"submit"}
			} else {
				args = append(args, tc.args...)
			}
			code, out, errOut := e.run(args...)
			want := tc.want
			if strings.Contains(want, "%s") {
				want = fmt.Sprintf(want, path)
			}
			if code != tc.code || errOut != want || out != "" {
				t.Errorf("exit %d, stdout %q, stderr\n%q\nwant exit %d, stderr\n%q", code, out, errOut, tc.code, want)
			}
			if e.store.next != 0 {
				t.Errorf("a job was created")
			}
		})
	}
}

func seedList(e *env) {
	loss := 1.2345
	e.seed("j1", "alice", job.Succeeded, func(j *job.Job) {
		j.CreatedAt = t0.Add(-3 * 24 * time.Hour)
		j.StartedAt, j.EndedAt = ptr(j.CreatedAt.Add(time.Minute)), ptr(j.CreatedAt.Add(13*time.Minute+5*time.Second))
		j.Progress = job.Progress{Phase: "completed", Step: 300, TotalSteps: 300, Loss: &loss}
	})
	e.seed("j2", "alice", job.Running, func(j *job.Job) {
		j.CreatedAt = t0.Add(-10 * time.Minute)
		j.StartedAt = ptr(t0.Add(-8 * time.Minute))
		j.Spec.Method, j.Spec.Name, j.Spec.Model = "dpo", "", "/models/llama-3-8b"
		j.Spec.Resources.GPUs = 4
		j.Progress = job.Progress{Phase: "training", Step: 120, TotalSteps: 400, Loss: ptr(0.5)}
	})
	e.seed("j3", "alice", job.Queued, func(j *job.Job) { j.CreatedAt = t0.Add(-30 * time.Second) })
	e.seed("j4", "bob", job.Failed, func(j *job.Job) { j.CreatedAt = t0.Add(-2 * time.Hour) })
}

func TestList(t *testing.T) {
	e := newEnv(t)
	seedList(e)
	for _, tc := range []struct {
		name   string
		token  string
		args   []string
		query  string // of the /api/jobs request
		golden string
		stderr string
	}{
		{"mine", "alice", []string{"list"}, "limit=20", "list.txt", ""},
		{"running", "alice", []string{"ls", "--state", "running,queued"}, "limit=20&status=running%2Cqueued", "list-running.txt", ""},
		{"page", "alice", []string{"list", "--limit", "2"}, "limit=2", "list-page1.txt", "More jobs: add --cursor c2\n"},
		{"next page", "alice", []string{"list", "--limit", "2", "--cursor", "c2"}, "cursor=c2&limit=2", "list-page2.txt", ""},
		{"since", "alice", []string{"list", "--since", "1h", "--model", "tiny"}, "from=2026-11-29T11%3A00%3A00Z&limit=20&model=tiny", "list-since.txt", ""},
		{"admin own", "admin", []string{"list"}, "limit=20&user=admin", "", "No jobs match.\n"},
		{"admin all", "admin", []string{"list", "--all-users"}, "limit=20", "list-all-users.txt", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.token = tc.token
			e.login()
			e.requests = nil
			code, out, errOut := e.run(tc.args...)
			if code != 0 || errOut != tc.stderr {
				t.Fatalf("exit %d, stderr %q, want 0 and %q", code, errOut, tc.stderr)
			}
			var q string
			for _, r := range e.requests {
				if r.URL.Path == "/api/jobs" {
					q = r.URL.RawQuery
				}
			}
			if q != tc.query {
				t.Errorf("query %q, want %q", q, tc.query)
			}
			if tc.golden != "" {
				golden(t, tc.golden, out)
			} else if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
}

func TestListJSONAndBadFlags(t *testing.T) {
	e := newEnv(t)
	seedList(e)
	code, out, _ := e.run("list", "--json")
	var page JobList
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Jobs) != 3 {
		t.Errorf("--json: exit %d, %d jobs, want 0 and 3; out %q", code, len(page.Jobs), out)
	}
	for _, tc := range []struct{ args, want string }{
		{"list --state sleeping", "ftctl: --state \"sleeping\": want one of submitting, queued, running, pausing, paused, succeeded, failed, cancelled (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
		{"list --since yesterday", "ftctl: --since \"yesterday\": want a duration (90m, 24h, 7d), a date (2026-01-02) or an RFC 3339 time (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
		{"list --limit 0", "ftctl: --limit must be between 1 and 200, got 0 (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
		{"list extra", "ftctl: ftctl list takes no arguments, got \"extra\" (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
	} {
		code, out, errOut := e.run(strings.Fields(tc.args)...)
		if code != 2 || out != "" || errOut != tc.want {
			t.Errorf("%s: exit %d stdout %q stderr %q, want 2 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

func TestStatus(t *testing.T) {
	e := newEnv(t)
	seedList(e)
	e.store.update("j2", func(j *job.Job) {
		j.SlurmState, j.RestartCount = "RUNNING", 1
		j.Progress.TokensPerSecond, j.Progress.ETASeconds, j.Progress.LatestCheckpoint = 2400, ptr(95.0), "step-100"
	})
	mkCheckpoint(t, filepath.Join(e.root, "alice", "j2", "checkpoints", "step-50"), 50, map[string]string{"model.pt": "weights-50"})
	mkCheckpoint(t, filepath.Join(e.root, "alice", "j2", "checkpoints", "step-100"), 100, map[string]string{"model.pt": "weights-100"})
	code, out, errOut := e.run("status", "j2")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	golden(t, "status-running.txt", strings.ReplaceAll(out, e.root, "<root>"))
	code, out, _ = e.run("status", "j1")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	golden(t, "status-succeeded.txt", strings.ReplaceAll(out, e.root, "<root>"))
	code, out, _ = e.run("status", "j2", "--json")
	var j job.Job
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil || j.ID != "j2" || j.SlurmID != "1002" {
		t.Errorf("--json: exit %d, job %+v", code, j)
	}
}

func TestErrorsAreOneLineWithExitCodes(t *testing.T) {
	e := newEnv(t)
	seedList(e)
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
			"ftctl: JOB \"../x\" is not a job id (letters, digits, '_', '.', '-') (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
		{"unknown command", nil, []string{"frobnicate"}, 2,
			"ftctl: unknown command \"frobnicate\" for \"ftctl\" (hint: see `ftctl --help` or `ftctl COMMAND --help`)\n"},
		{"token refused", func() { e.token = "expired"; e.login() }, []string{"list"}, 4,
			"ftctl: token expired; run `ftctl auth login --server " + e.srv.URL + "`\n"},
		{"not logged in", func() { os.Remove(filepath.Join(e.cfgDir, "tokens.json")); e.token = "" }, []string{"status", "j1"}, 4,
			"ftctl: not logged in; run `ftctl auth login --server " + e.srv.URL + "`\n"},
		{"no server", func() { e.server = "http://127.0.0.1:1"; e.token = "alice"; e.login() }, []string{"status", "j1"}, 1,
			"ftctl: cannot reach the gateway at http://127.0.0.1:1: connect: connection refused (hint: check --server, FTCTL_SERVER or the config file, and that the gateway is running)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			start := time.Now()
			code, out, errOut := e.run(tc.args...)
			if code != tc.code || out != "" || errOut != tc.want {
				t.Errorf("exit %d stdout %q stderr\n%q\nwant exit %d stderr\n%q", code, out, errOut, tc.code, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}

func TestPauseResumeCancel(t *testing.T) {
	e := newEnv(t)
	e.seed("j1", "alice", job.Running, nil)
	e.seed("j2", "alice", job.Queued, nil)
	e.seed("j3", "alice", job.Succeeded, nil)
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
		code, out, errOut := e.run(s.args...)
		if code != s.code || out != s.out || errOut != s.errs {
			t.Errorf("ftctl %s: exit %d stdout %q stderr %q\nwant exit %d stdout %q stderr %q", strings.Join(s.args, " "), code, out, errOut, s.code, s.out, s.errs)
		}
	}
	want := "Signal alice 1001|Hold alice 1002|Release alice 1002|Cancel alice 1002"
	if got := strings.Join(e.slurm.Calls(), "|"); got != want {
		t.Errorf("Slurm calls %q, want %q", got, want)
	}
	b, err := os.ReadFile(filepath.Join(e.root, "alice", "j1", "control.json"))
	if err != nil || !strings.Contains(string(b), `"pause"`) {
		t.Errorf("control.json %q, %v; want a pause request", b, err)
	}
}

func TestSystem(t *testing.T) {
	e := newEnv(t)
	seedList(e)
	code, out, errOut := e.run("system")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d stderr %q", code, errOut)
	}
	golden(t, "system.txt", out)
	code, out, _ = e.run("system", "--json")
	var st SystemStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Clusters) != 1 {
		t.Errorf("--json: exit %d, %q", code, out)
	}
}

func TestCompletion(t *testing.T) {
	e := newEnv(t)
	seedList(e)
	code, out, _ := e.run("__complete", "status", "")
	if want := "j3\ttiny-j3 queued\nj2\trunning\nj1\ttiny-j1 succeeded\n:4\n"; code != 0 || out != want {
		t.Errorf("job id completion: exit %d\n%q\nwant\n%q", code, out, want)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, errOut := e.run("completion", sh)
		if code != 0 || !strings.Contains(out, "ftctl") || errOut != "" {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", sh, code, len(out), errOut)
		}
	}
}

// mkCheckpoint writes a complete checkpoint directory with its manifest.
func mkCheckpoint(t *testing.T, dir string, step int64, files map[string]string) {
	t.Helper()
	writeManifestDir(t, dir, step, files)
}

func writeManifestDir(t *testing.T, dir string, step int64, files map[string]string) map[string]any {
	t.Helper()
	m := map[string]any{"format": 1, "step": step, "created_at": float64(t0.Unix()), "files": map[string]any{}}
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

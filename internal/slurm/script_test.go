package slurm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ftgate/ftgate/internal/stacktest"
)

// fakeTrainer behaves like `python -m torch.distributed.run ... -m ftgate_trainer --job-dir
// DIR --signal SIG` with one rank: it records its arguments and environment, reports
// ready, and when stop.json appears (the script writes it on the checkpoint signal) it
// writes a marker and exits with $FAKE_EXIT_ON_SIGNAL; with $FAKE_EXIT it exits at once;
// with $FAKE_FAST it polls without sleeping. Like rank 0 it leaves its code in trainer.exit
// and, like torchrun, exits 1 for any code but 0.
const fakeTrainer = `#!/bin/bash
while [ $# -gt 0 ] && [ "$1" != --job-dir ]; do shift; done
dir=$2
echo "$*" > "$dir/args"
echo "${PYTHONPATH}" > "$dir/pythonpath"
finish() { echo "$1" > "$dir/trainer.exit"; [ "$1" -eq 0 ] && exit 0; exit 1; }
if [ -n "${FAKE_EXIT:-}" ]; then finish "$FAKE_EXIT"; fi
trap 'echo terminated >> "$dir/marker"; finish ${FAKE_EXIT_ON_SIGNAL:-0}' TERM
touch "$dir/ready"
while :; do
  if [ -e "$dir/stop.json" ]; then echo signalled >> "$dir/marker"; finish "${FAKE_EXIT_ON_SIGNAL:-0}"; fi
  [ -n "${FAKE_FAST:-}" ] || sleep 0.02
done
`

// fakeSrun records its options and runs the command after them.
const fakeSrun = `#!/bin/bash
while [ "${1#--}" != "$1" ]; do echo "$1" >> "$FAKE_LOG.srun"; shift; done
exec "$@"
`

const fakeScontrol = `#!/bin/sh
echo "$*" >> "$FAKE_LOG"
`

const fakeGPUStat = `#!/bin/bash
echo "$*" > "$(dirname "$4")/gpustat-args"
trap 'echo stopped > "$(dirname "$4")/gpustat-stopped"; exit 0' TERM
while :; do sleep 0.02; done
`

type scriptRun struct {
	dir, log string
	cmd      *exec.Cmd
}

func startScript(t *testing.T, env ...string) *scriptRun {
	t.Helper()
	if _, err := os.Stat("/bin/bash"); err != nil {
		stacktest.Skip(t, "no bash")
	}
	root := t.TempDir()
	bin := filepath.Join(root, "bin")
	os.MkdirAll(bin, 0o755)
	for name, body := range map[string]string{"python": fakeTrainer, "scontrol": fakeScontrol, "gpustat": fakeGPUStat,
		"srun": fakeSrun} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c := newTestClient(t, nil, func(o *Options) {
		o.JobRoot = filepath.Join(root, "jobs")
		o.Python = filepath.Join(bin, "python")
		o.GPUStat = filepath.Join(bin, "gpustat")
		o.TrainerDir = "/opt/trainer"
	})
	script, err := c.Render(testRequest())
	if err != nil {
		t.Fatal(err)
	}
	dir := JobDir(filepath.Join(root, "jobs"), "alice", "j-0123abcd")
	os.MkdirAll(dir, 0o755)
	r := &scriptRun{dir: dir, log: filepath.Join(root, "scontrol.log")}
	r.cmd = exec.Command("/bin/bash", "-c", script, "job.sbatch")
	r.cmd.Dir = dir
	r.cmd.Env = append([]string{"PATH=" + bin + ":/usr/bin:/bin", "SLURM_JOB_ID=77", "FAKE_LOG=" + r.log}, env...)
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.cmd.Process.Kill() })
	return r
}

func (r *scriptRun) waitFile(t *testing.T, name string) {
	t.Helper()
	for i := 0; i < 250; i++ {
		if _, err := os.Stat(filepath.Join(r.dir, name)); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", name)
}

func (r *scriptRun) wait(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("script did not exit")
	}
	return r.cmd.ProcessState.ExitCode()
}

func (r *scriptRun) read(name string) string {
	b, _ := os.ReadFile(filepath.Join(r.dir, name))
	return strings.TrimSpace(string(b))
}

func TestScriptForwardsCheckpointSignal(t *testing.T) {
	r := startScript(t)
	r.waitFile(t, "ready")
	if err := r.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if rc := r.wait(t); rc != 0 {
		t.Fatalf("script exit %d, want 0", rc)
	}
	if r.read("marker") != "signalled" {
		t.Error("the trainer did not see the stop request")
	}
	if got := r.read("args"); got != "--job-dir "+r.dir+" --checkpoint-signal USR2" {
		t.Errorf("trainer args %q", got)
	}
	srun, _ := os.ReadFile(r.log + ".srun")
	if got := strings.Fields(string(srun)); strings.Join(got, " ") != "--kill-on-bad-exit=1 --nodes=1 --ntasks=1 --ntasks-per-node=1 --cpus-per-task=2" {
		t.Errorf("srun options %q", got)
	}
	if got := r.read("pythonpath"); got != "/opt/trainer" {
		t.Errorf("PYTHONPATH %q", got)
	}
	if !strings.HasPrefix(r.read("gpustat-args"), "--interval 5s --out "+r.dir+"/gpu.json") {
		t.Errorf("gpustat args %q", r.read("gpustat-args"))
	}
	if r.read("gpustat-stopped") != "stopped" {
		t.Error("gpustat was not stopped")
	}
}

func TestScriptRequeuesOnExit75WithinBudget(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      []string
		rc       int
		requeued bool
	}{
		{"first run", []string{"FAKE_EXIT=75"}, 0, true},
		{"restart 2 of 3", []string{"FAKE_EXIT=75", "SLURM_RESTART_COUNT=2"}, 0, true},
		{"budget used", []string{"FAKE_EXIT=75", "SLURM_RESTART_COUNT=3"}, 75, false},
		{"bad spec", []string{"FAKE_EXIT=2"}, 2, false},
		{"failure", []string{"FAKE_EXIT=1"}, 1, false},
		{"done", []string{"FAKE_EXIT=0"}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startScript(t, tc.env...)
			if rc := r.wait(t); rc != tc.rc {
				t.Errorf("exit %d, want %d", rc, tc.rc)
			}
			b, _ := os.ReadFile(r.log)
			if got := strings.TrimSpace(string(b)); (got == "requeue 77") != tc.requeued {
				t.Errorf("scontrol calls %q, requeue wanted: %v", got, tc.requeued)
			}
		})
	}
}

func TestScriptSignalWithoutPauseRequeues(t *testing.T) {
	r := startScript(t, "FAKE_EXIT_ON_SIGNAL=75")
	r.waitFile(t, "ready")
	// USR2 without a pause request: the trainer checkpoints and exits 75 -> requeue.
	r.cmd.Process.Signal(syscall.SIGUSR2)
	if rc := r.wait(t); rc != 0 {
		t.Errorf("exit %d", rc)
	}
	b, _ := os.ReadFile(r.log)
	if strings.TrimSpace(string(b)) != "requeue 77" {
		t.Errorf("scontrol log %q", b)
	}
}

func TestScriptTermDoesNotRequeue(t *testing.T) {
	r := startScript(t, "FAKE_EXIT_ON_SIGNAL=75")
	r.waitFile(t, "ready")
	// scancel (and time limit, preemption) deliver SIGTERM: the trainer checkpoints and
	// exits 75, but the job must not requeue itself, or a cancelled job runs again.
	r.cmd.Process.Signal(syscall.SIGTERM)
	if rc := r.wait(t); rc != 75 {
		t.Errorf("exit %d, want 75", rc)
	}
	if r.read("marker") != "signalled" {
		t.Error("the trainer did not see the stop request after SIGTERM")
	}
	if b, _ := os.ReadFile(r.log); len(b) != 0 {
		t.Errorf("scontrol called after SIGTERM: %q", b)
	}
}

// TestScriptReportsTrainerExitAfterSignal: a trainer that exits right after the stop
// request must make the script exit with the trainer's code (from trainer.exit), not the
// 128+signal of the wait the signal interrupted nor torchrun's 1. The window in which the
// trainer dies before the script's `kill -0` is narrow, so this guards the exit-code path
// rather than reproducing the race on every run.
func TestScriptReportsTrainerExitAfterSignal(t *testing.T) {
	for i := 0; i < 10; i++ {
		r := startScript(t, "FAKE_EXIT_ON_SIGNAL=3", "FAKE_FAST=1") // traps run at once
		r.waitFile(t, "ready")
		if err := r.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
			t.Fatal(err)
		}
		if rc := r.wait(t); rc != 3 {
			t.Fatalf("run %d: script exit %d, want the trainer's 3", i, rc)
		}
	}
}

"""The trainer under real Slurm 22.05 (the local stack): pause by signal and requeuehold,
resume by release; a 2-minute time limit with a 60 s signal lead checkpoints and requeues
until the job completes. Runs as user alice."""

import json
import os
import pwd
import shutil
import subprocess
import time

import pytest

from ftgate_trainer import checkpoint
from helpers import PYTHON, SMALL, TRAINER_DIR, final_weights, metrics, progress, run_inprocess, sft_rows, spec, trainer_env, \
    wait_for, write_jsonl

pytestmark = pytest.mark.slurm

USER = "alice"
RESTART_BUDGET = 3

# The batch script, written by the test and following docs/design.md: the trainer runs as a child,
# the checkpoint signal is forwarded, wait is repeated, exit 75 requeues within the budget
# (not after a TERM, which is a cancel or preemption that Slurm handles itself). Every
# value arrives as an argument, never pasted into the script.
SCRIPT = r"""#!/bin/bash
set -u
job_dir=$1
python=$2
restart_budget=$3
export PYTHONPATH=$4
restart_count=${SLURM_RESTART_COUNT:-0}
echo "test-batch: job $SLURM_JOB_ID run $restart_count"
"$python" -m ftgate_trainer --job-dir "$job_dir" --signal USR2 &
child=$!
terminated=0
trap 'kill -s USR2 "$child" 2>/dev/null' USR2
trap 'terminated=1; kill -s TERM "$child" 2>/dev/null' TERM
while :; do
  wait "$child"
  kill -0 "$child" 2>/dev/null || break
done
wait "$child"
rc=$?
echo "test-batch: trainer exited $rc"
if [ "$rc" -eq 75 ] && [ "$terminated" -eq 0 ] && [ "$restart_count" -lt "$restart_budget" ]; then
  echo "test-batch: requeue"
  scontrol requeue "$SLURM_JOB_ID" && exit 0
fi
exit "$rc"
"""


def stack_env():
    path = os.environ.get("FTGATE_STACK_ENV") or os.path.join(TRAINER_DIR, "..", ".dev", "stack.env")
    env = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    k, v = line.split("=", 1)
                    env[k] = v
    except OSError:
        pass
    if not env.get("STACK_SLURM_CONF") or not shutil.which("sbatch"):
        msg = "no local stack (%s); run dev/stack up" % path
        if os.environ.get("FTGATE_REQUIRE_STACK") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return env


@pytest.fixture
def stack():
    env = stack_env()
    r = subprocess.run(["runuser", "-u", USER, "--", "test", "-r", os.path.join(TRAINER_DIR, "ftgate_trainer", "__main__.py")])
    assert r.returncode == 0, ("%s cannot read the trainer in %s: every directory above it must be "
                               "world-readable" % (USER, TRAINER_DIR))
    return env


def as_user(stack, *argv, check=True):
    cmd = ["runuser", "-u", USER, "--", "env", "SLURM_CONF=" + stack["STACK_SLURM_CONF"], *argv]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError("%s: rc %d: %s" % (argv, r.returncode, r.stderr.strip()))
    return r.stdout.strip()


def job_state(stack, job):
    out = as_user(stack, "squeue", "-h", "-t", "all", "-j", job, "-o", "%T|%r")
    return tuple(out.split("|", 1)) if out else ("", "")


def make_job_dir(stack, name, over):
    pw = pwd.getpwnam(USER)
    d = os.path.join(stack["STACK_JOB_ROOT"], USER, "%s-%d-%d" % (name, os.getpid(), int(time.time())))
    os.makedirs(d)
    write_jsonl(os.path.join(d, "train.jsonl"), sft_rows())
    with open(os.path.join(d, "job.json"), "w") as f:
        json.dump(spec("sft", os.path.join(d, "train.jsonl"), **over), f)
    with open(os.path.join(d, "job.sbatch"), "w") as f:
        f.write(SCRIPT)
    for p in (d, *(os.path.join(d, n) for n in os.listdir(d))):
        os.chown(p, pw.pw_uid, pw.pw_gid)
    return d


def submit(stack, d, time_minutes, step_sleep):
    return as_user(
        stack, "FTGATE_TRAINER_TINY=" + SMALL, "FTGATE_TRAINER_TEST_STEP_SLEEP=%g" % step_sleep,
        "sbatch", "--parsable", "--job-name=ftgate-trainer-test", "--partition=" + stack["STACK_PARTITION"],
        "--nodes=1", "--ntasks=1", "--cpus-per-task=1", "--mem=1000M",
        "--time=%d" % time_minutes, "--signal=B:USR2@60", "--open-mode=append", "--requeue",
        "--chdir=" + d, "--output=" + os.path.join(d, "slurm-%j.out"),
        os.path.join(d, "job.sbatch"), d, PYTHON, str(RESTART_BUDGET), TRAINER_DIR).split(";")[0]


def log_of(d, job):
    try:
        return open(os.path.join(d, "slurm-%s.out" % job)).read()
    except OSError:
        return "(no output file)"


def cancel(stack, job):
    if job_state(stack, job)[0] not in ("COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", ""):
        as_user(stack, "scancel", job, check=False)


def reference(tmp_path, d):
    """The same spec trained uninterrupted in this process."""
    ref = tmp_path / "ref"
    ref.mkdir()
    shutil.copy(os.path.join(d, "job.json"), ref / "job.json")
    assert run_inprocess(str(ref)) == 0
    return str(ref)


def test_pause_requeuehold_release_resumes(stack, tmp_path, monkeypatch):
    steps = 60
    d = make_job_dir(stack, "pause", dict(hyperparameters__max_steps=steps, logging__progress_interval_seconds=0.1))
    job = submit(stack, d, 10, 0.1)
    try:
        # No GPU asked for: the trainer runs on CPU, and the other suites' jobs hold the fake GPUs.
        wait_for(lambda: progress(d).get("step", 0) >= 10, 120, "step 10 under Slurm", 0.05)
        assert job_state(stack, job)[0] == "RUNNING"
        with open(os.path.join(d, "control.json"), "w") as f:
            json.dump({"action": "pause"}, f)
        as_user(stack, "scancel", "--batch", "--signal=USR2", job)
        wait_for(lambda: job_state(stack, job)[0] == "COMPLETED", 60, "COMPLETED after pause", 0.1)
        prog = progress(d)
        assert prog["phase"] == "paused", log_of(d, job)
        paused_at = prog["step"]
        assert 10 <= paused_at < steps
        assert checkpoint.verify(os.path.join(d, "checkpoints", "step-%d" % paused_at)) is None

        as_user(stack, "scontrol", "requeuehold", job)
        wait_for(lambda: job_state(stack, job) == ("PENDING", "job requeued in held state"), 30, "held", 0.1)
        time.sleep(1)
        assert progress(d)["step"] == paused_at

        # No `scontrol update StartTime=now`: starting a requeued job before requeue time +
        # cred_expire fails it at once ("Job credential revoked"); release alone starts it
        # once that window (11 s on the dev stack) has passed.
        as_user(stack, "scontrol", "release", job)
        wait_for(lambda: job_state(stack, job)[0] == "COMPLETED" and progress(d).get("phase") == "completed",
                 90, "completion after resume", 0.2)
    finally:
        cancel(stack, job)
    prog = progress(d)
    out = log_of(d, job)
    print(out)
    assert prog["restart_count"] == 1, out
    assert prog["resumed_from"] == "checkpoints/step-%d" % paused_at
    assert sorted(r["step"] for r in metrics(d)) == list(range(1, steps + 1))
    assert out.count("test-batch: trainer exited 0") == 2
    monkeypatch.setenv("FTGATE_TRAINER_TINY", SMALL)
    ref = reference(tmp_path, d)
    wa, wb = final_weights(ref), final_weights(d)
    assert sorted(wa) == sorted(wb)
    for k in wa:
        assert (wa[k] == wb[k]).all(), "weights differ from an uninterrupted run in %s" % k
    shutil.rmtree(d)  # kept for inspection when the test fails


def test_time_limit_checkpoints_and_requeues_until_done(stack):
    # About 60 s of training, mostly the per-step sleep (so machine load matters little):
    # more than fits before the signal, which fires 60-90 s before the 2-minute limit (on
    # slurmctld's 30 s grid). Each run also spends 5-30 s importing torch and transformers
    # (a loaded 2-core machine), and each requeue waits 11 s.
    steps = 240
    d = make_job_dir(stack, "timelimit", dict(hyperparameters__max_steps=steps, logging__log_every=10,
                                              logging__progress_interval_seconds=1))
    job = submit(stack, d, 2, 0.25)
    t0 = time.monotonic()
    try:
        def done():
            st = job_state(stack, job)  # a requeued job waits out BeginTime (11 s) by itself
            return st[0] in ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED") and progress(d).get("phase") != "training"
        wait_for(done, 360, "the job to finish", 0.5)
    finally:
        cancel(stack, job)
    out = log_of(d, job)
    print(out)
    print("time-limit job took %.0fs" % (time.monotonic() - t0))
    assert job_state(stack, job)[0] == "COMPLETED", out
    prog = progress(d)
    assert prog["phase"] == "completed" and prog["step"] == steps, out
    assert prog["restart_count"] >= 1, out
    assert "test-batch: trainer exited 75" in out and "test-batch: requeue" in out
    assert "DUE TO TIME LIMIT" not in out
    info = as_user(stack, "scontrol", "show", "job", "-o", job)
    assert "Restarts=%d" % prog["restart_count"] in info
    shutil.rmtree(d)  # kept for inspection when the test fails


# Two torchrun agents under one srun with nnodes=2: on the one-node dev cluster both run on
# the same host, but they meet through the c10d rendezvous at the first host of
# SLURM_JOB_NODELIST, as the agents of a real 2-node job do (sbatch-templates/train.sbatch.tmpl).
TWO_AGENT_SCRIPT = r"""#!/bin/bash
set -u
job_dir=$1
python=$2
export PYTHONPATH=$3
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
echo "test-batch: rendezvous at $head_node"
srun --kill-on-bad-exit=1 --ntasks=2 --ntasks-per-node=2 --cpus-per-task=1 \
  "$python" -m torch.distributed.run --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d --rdzv-id="$SLURM_JOB_ID" \
  --rdzv-endpoint="$head_node:$((20000 + SLURM_JOB_ID % 20000))" --max-restarts=0 \
  -m ftgate_trainer --job-dir "$job_dir"
echo "test-batch: srun exited $?"
"""


def test_two_agents_rendezvous_like_two_nodes(stack, tmp_path):
    steps = 10
    d = make_job_dir(stack, "rdzv", dict(hyperparameters__max_steps=steps, lora=True))
    with open(os.path.join(d, "job.sbatch"), "w") as f:
        f.write(TWO_AGENT_SCRIPT)
    job = as_user(
        stack, "FTGATE_TRAINER_TINY=" + SMALL, "FTGATE_TRAINER_THREADS=1",
        "sbatch", "--parsable", "--job-name=ftgate-trainer-test", "--partition=" + stack["STACK_PARTITION"],
        "--nodes=1", "--ntasks=2", "--cpus-per-task=1", "--mem=2000M", "--time=5",
        "--chdir=" + d, "--output=" + os.path.join(d, "slurm-%j.out"),
        os.path.join(d, "job.sbatch"), d, PYTHON, TRAINER_DIR).split(";")[0]
    try:
        wait_for(lambda: job_state(stack, job)[0] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), 240,
                 "the 2-agent job to end", 0.5)
    finally:
        cancel(stack, job)
    out = log_of(d, job)
    print(out[-3000:])
    assert job_state(stack, job)[0] == "COMPLETED", out[-3000:]
    assert "test-batch: srun exited 0" in out
    prog = progress(d)
    assert prog["phase"] == "completed" and prog["world_size"] == 2 and prog["step"] == steps, prog
    # The same 2-rank job under one local torchrun --standalone ends bitwise equal.
    ref = tmp_path / "ref"
    ref.mkdir()
    shutil.copy(os.path.join(d, "job.json"), ref / "job.json")
    r = subprocess.run([PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        "-m", "ftgate_trainer", "--job-dir", str(ref)],
                       env=trainer_env(FTGATE_TRAINER_TINY=SMALL), capture_output=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    wa, wb = final_weights(str(ref)), final_weights(d)
    assert sorted(wa) == sorted(wb)
    for k in wa:
        assert (wa[k] == wb[k]).all(), "weights differ from a local 2-rank run in %s" % k
    shutil.rmtree(d)

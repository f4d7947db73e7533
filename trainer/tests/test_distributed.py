"""Two CPU ranks (gloo) under torchrun, as the batch script launches them: an uninterrupted
2-rank run equals a paused-and-resumed one bitwise; a stop request reaching one rank stops
all of them at the same step; SIGKILL of one rank fails the run, and the next run resumes
from the last complete checkpoint and still ends bitwise equal."""

import json
import os
import signal
import subprocess
import time

import torch

from ftgate_trainer import checkpoint, layout
from helpers import PYTHON, SMALL, final_weights, metrics, progress, trainer_env, wait_for

STEPS = 12


def torchrun(job_dir, nproc=2, env=None):
    return subprocess.Popen([PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
                             "-m", "ftgate_trainer", "--job-dir", job_dir],
                            env=env or trainer_env(FTGATE_TRAINER_TINY=SMALL), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def finish(p, timeout=120):
    try:
        _, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, err.decode(errors="replace")


def rank_pid(agent, rank, timeout=60):
    """The pid of the worker with RANK=rank among the torchrun agent's children."""
    def find():
        try:
            kids = open("/proc/%d/task/%d/children" % (agent.pid, agent.pid)).read().split()
        except OSError:
            return None
        for k in kids:
            try:
                env = open("/proc/%s/environ" % k, "rb").read().split(b"\0")
            except OSError:
                continue
            if ("RANK=%d" % rank).encode() in env:
                return int(k)
        return None
    return wait_for(find, timeout, "rank %d" % rank, 0.05)


def exit_code_file(job_dir):
    with open(os.path.join(job_dir, layout.EXIT_CODE_FILE)) as f:
        return int(f.read())


def losses(job_dir):
    out = {}
    for row in metrics(job_dir):
        if "loss" in row:
            assert out.get(row["step"], row["loss"]) == row["loss"], row
            out[row["step"]] = row["loss"]
    return out


def assert_same_weights(a, b):
    wa, wb = final_weights(a), final_weights(b)
    assert sorted(wa) == sorted(wb)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), "weights differ in %s" % k


def two_rank_job(make_job, name, lora=True, **over):
    # 64 rows, 2 ranks x batch 4: 8 micro-batches per epoch, so 12 steps cross an epoch.
    over.setdefault("hyperparameters__max_steps", STEPS)
    return make_job("sft", lora=lora, name=name, **over)


def test_two_ranks_pause_resume_is_bitwise_exact(make_job):
    a = two_rank_job(make_job, "a")
    b = two_rank_job(make_job, "b")
    rc, err = finish(torchrun(a))
    assert rc == 0, err[-3000:]
    pa = progress(a)
    assert pa["phase"] == "completed" and pa["world_size"] == 2 and pa["step"] == STEPS
    assert exit_code_file(a) == 0

    p = torchrun(b, env=trainer_env(FTGATE_TRAINER_TINY=SMALL, FTGATE_TRAINER_TEST_STEP_SLEEP="0.2"))
    r1 = rank_pid(p, 1)
    wait_for(lambda: progress(b).get("step", 0) >= 3, 120, "step 3")
    with open(os.path.join(b, layout.CONTROL_JSON), "w") as f:
        json.dump({"action": "pause"}, f)
    os.kill(r1, signal.SIGUSR2)  # the signal reaches rank 1 only; the all-reduce tells rank 0
    rc, err = finish(p)
    assert rc == 0, err[-3000:]
    pb = progress(b)
    assert pb["phase"] == "paused", pb
    stopped = pb["step"]
    assert 3 <= stopped < STEPS
    assert pb["latest_checkpoint"] == "checkpoints/step-%d" % stopped
    assert checkpoint.verify(os.path.join(b, pb["latest_checkpoint"])) is None
    assert not os.path.exists(os.path.join(b, layout.CONTROL_JSON))
    assert exit_code_file(b) == 0

    rc, err = finish(torchrun(b))
    assert rc == 0, err[-3000:]
    pb = progress(b)
    assert pb["phase"] == "completed" and pb["resumed_from"] == "checkpoints/step-%d" % stopped
    assert sorted(losses(b)) == list(range(1, STEPS + 1))
    assert losses(a) == losses(b)
    assert_same_weights(a, b)


def test_stop_file_interrupts_all_ranks_with_75(make_job):
    d = two_rank_job(make_job, "s", lora=False, hyperparameters__max_steps=200)
    p = torchrun(d, env=trainer_env(FTGATE_TRAINER_TINY=SMALL, FTGATE_TRAINER_TEST_STEP_SLEEP="0.05"))
    wait_for(lambda: progress(d).get("step", 0) >= 2, 120, "step 2")
    with open(os.path.join(d, layout.STOP_JSON), "w") as f:
        f.write('{"signal": "USR2"}\n')
    rc, err = finish(p)
    assert rc != 0  # torchrun reports a worker exit code other than 0 as a failure
    assert exit_code_file(d) == 75, err[-3000:]
    prog = progress(d)
    assert prog["phase"] == "interrupted"
    assert prog["latest_checkpoint"] == "checkpoints/step-%d" % prog["step"]


def test_sigkill_of_one_rank_then_resume_from_last_checkpoint(make_job):
    over = dict(hyperparameters__max_steps=STEPS, logging__save_every=2)
    a = two_rank_job(make_job, "a", lora=False, **over)
    b = two_rank_job(make_job, "b", lora=False, **over)
    rc, err = finish(torchrun(a))
    assert rc == 0, err[-3000:]

    p = torchrun(b, env=trainer_env(FTGATE_TRAINER_TINY=SMALL, FTGATE_TRAINER_TEST_STEP_SLEEP="0.2"))
    r1 = rank_pid(p, 1)
    root = os.path.join(b, layout.CHECKPOINTS_DIR)
    wait_for(lambda: progress(b).get("step", 0) >= 5, 120, "step 5")
    os.kill(r1, signal.SIGKILL)
    t0 = time.monotonic()
    rc, err = finish(p)
    print("torchrun exited %d %.1fs after the SIGKILL" % (rc, time.monotonic() - t0))
    assert rc != 0
    assert not os.path.exists(os.path.join(b, layout.MODEL_DIR))
    last = checkpoint.latest_verified(root)
    assert last is not None
    for s in checkpoint.steps(root):
        assert checkpoint.verify(checkpoint.step_dir(root, s)) is None

    rc, err = finish(torchrun(b))
    assert rc == 0, err[-3000:]
    pb = progress(b)
    assert pb["phase"] == "completed"
    assert pb["resumed_from"] == os.path.relpath(last, b)
    assert losses(a) == losses(b)
    assert_same_weights(a, b)


def test_fsdp_two_ranks_pause_resume_is_exact_and_matches_ddp(make_job):
    """FSDP2 (fully_shard) full fine-tuning on 2 gloo ranks: sharded DCP checkpoints resume
    bitwise; the losses match DDP's up to float rounding; model/ holds the full weights."""
    over = dict(hyperparameters__max_steps=8, distributed={"strategy": "fsdp"})
    a = two_rank_job(make_job, "a", lora=False, **over)
    b = two_rank_job(make_job, "b", lora=False, **over)
    ddp = two_rank_job(make_job, "ddp", lora=False, hyperparameters__max_steps=8)
    for d in (a, ddp):
        rc, err = finish(torchrun(d))
        assert rc == 0, err[-3000:]
    p = torchrun(b, env=trainer_env(FTGATE_TRAINER_TINY=SMALL, FTGATE_TRAINER_TEST_STEP_SLEEP="0.2"))
    wait_for(lambda: progress(b).get("step", 0) >= 3, 120, "step 3")
    with open(os.path.join(b, layout.CONTROL_JSON), "w") as f:
        json.dump({"action": "pause"}, f)
    rc, err = finish(p)
    assert rc == 0, err[-3000:]
    pb = progress(b)
    assert pb["phase"] == "paused", pb
    ck = os.path.join(b, pb["latest_checkpoint"])
    assert checkpoint.verify(ck) is None
    assert os.listdir(os.path.join(ck, layout.DCP_DIR)), "no sharded DCP files"
    assert not os.path.exists(os.path.join(ck, layout.MODEL_PT))
    rc, err = finish(torchrun(b))
    assert rc == 0, err[-3000:]
    assert progress(b)["resumed_from"] == pb["latest_checkpoint"]
    assert losses(a) == losses(b)
    assert_same_weights(a, b)
    la, ld = losses(a), losses(ddp)
    print("fsdp %s\nddp  %s" % (la, ld))
    for s in la:
        assert abs(la[s] - ld[s]) < 1e-3 * abs(ld[s])
    wa, wd = final_weights(a), final_weights(ddp)
    assert sorted(wa) == sorted(wd)

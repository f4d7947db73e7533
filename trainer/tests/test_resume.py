"""Exact resume: a run paused by a real signal and resumed ends bitwise equal to an
uninterrupted run, with identical logged losses."""

import json
import os
import signal

import pytest
import torch

from ftgate_trainer import checkpoint
from helpers import (final_weights, metrics, progress, read_json, run_inprocess, start_subprocess, trainer_env,
                     wait_for)

STEPS = 14
SIGNAL_AT = 5


def losses(job_dir):
    """{step: loss} from metrics.jsonl; a step logged twice must carry the same loss."""
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


def strict_progress(job_dir):
    """progress.json, which must always parse: it is replaced atomically, never rewritten in place."""
    try:
        raw = open(os.path.join(job_dir, "progress.json"), "rb").read()
    except FileNotFoundError:
        return {}
    return json.loads(raw)


def signal_at_step(job_dir, k, sig, pause, env=None):
    """Starts the trainer in a subprocess, sends sig once progress.json reports step >= k,
    and returns (exit code, step at which it stopped)."""
    env = env or trainer_env(FTGATE_TRAINER_TINY="32,1,2,64", FTGATE_TRAINER_TEST_STEP_SLEEP="0.05")
    p = start_subprocess(job_dir, env=env)
    try:
        # Bounds, not speed checks: a loaded 2-core machine needs long to import torch and transformers.
        wait_for(lambda: strict_progress(job_dir).get("step", 0) >= k, 240, "step %d" % k)
        if pause:
            with open(os.path.join(job_dir, "control.json"), "w") as f:
                json.dump({"action": "pause"}, f)
        p.send_signal(sig)
        rc = p.wait(240)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return rc, progress(job_dir)


@pytest.mark.parametrize("method", ["sft", "dpo"])
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_pause_and_resume_is_exact(make_job, small_model, method, lora):
    over = dict(hyperparameters__max_steps=STEPS, hyperparameters__gradient_accumulation=2)
    a = make_job(method, lora=lora, name="a", **over)
    b = make_job(method, lora=lora, name="b", **over)
    assert run_inprocess(a) == 0
    assert progress(a)["phase"] == "completed"

    rc, prog = signal_at_step(b, SIGNAL_AT, signal.SIGUSR2, pause=True)
    assert rc == 0
    assert prog["phase"] == "paused"
    stopped = prog["step"]
    assert SIGNAL_AT <= stopped < STEPS
    assert prog["latest_checkpoint"] == "checkpoints/step-%d" % stopped
    assert checkpoint.verify(os.path.join(b, prog["latest_checkpoint"])) is None
    assert not os.path.exists(os.path.join(b, "control.json")), "the pause request is consumed"
    assert not os.path.exists(os.path.join(b, "model"))

    assert run_inprocess(b) == 0
    prog = progress(b)
    assert prog["phase"] == "completed" and prog["step"] == STEPS
    assert prog["resumed_from"] == "checkpoints/step-%d" % stopped
    la, lb = losses(a), losses(b)
    assert sorted(lb) == list(range(1, STEPS + 1))
    assert la == lb
    assert_same_weights(a, b)


def test_signal_without_pause_exits_75_and_requeue_resumes(make_job, small_model):
    over = dict(hyperparameters__max_steps=STEPS)
    a = make_job("sft", name="a", **over)
    b = make_job("sft", name="b", **over)
    assert run_inprocess(a) == 0
    rc, prog = signal_at_step(b, SIGNAL_AT, signal.SIGTERM, pause=False)
    assert rc == 75
    assert prog["phase"] == "interrupted"
    assert prog["latest_checkpoint"] == "checkpoints/step-%d" % prog["step"]
    os.environ["SLURM_RESTART_COUNT"] = "1"
    try:
        assert run_inprocess(b) == 0
    finally:
        del os.environ["SLURM_RESTART_COUNT"]
    assert progress(b)["restart_count"] == 1
    assert losses(a) == losses(b)
    assert_same_weights(a, b)


def test_custom_signal_and_second_signal_during_save(make_job, small_model):
    """--signal USR1; a second and third signal while the checkpoint is written change nothing."""
    b = make_job("dpo", name="b", hyperparameters__max_steps=40)
    env = trainer_env(FTGATE_TRAINER_TINY="32,1,2,64", FTGATE_TRAINER_TEST_STEP_SLEEP="0.05",
                      FTGATE_TRAINER_TEST_SLOW_WRITE="0.2")
    p = start_subprocess(b, "--signal", "USR1", env=env)
    try:
        wait_for(lambda: progress(b).get("step", 0) >= 3, 240, "step 3")
        p.send_signal(signal.SIGUSR1)
        wait_for(lambda: progress(b).get("phase") == "checkpointing", 30, "checkpointing")
        p.send_signal(signal.SIGUSR1)
        p.send_signal(signal.SIGTERM)
        rc = p.wait(240)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 75
    prog = progress(b)
    assert prog["phase"] == "interrupted"
    names = os.listdir(os.path.join(b, "checkpoints"))
    assert names == ["step-%d" % prog["step"]], names
    assert checkpoint.verify(os.path.join(b, "checkpoints", names[0])) is None
    assert run_inprocess(b) == 0
    assert progress(b)["phase"] == "completed"


def test_signal_before_first_step_exits_cleanly(make_job, small_model):
    b = make_job("sft", name="b")
    p = start_subprocess(b, env=trainer_env(FTGATE_TRAINER_TINY="32,1,2,64"))
    try:
        wait_for(lambda: progress(b).get("phase") in ("starting", "loading", "training"), 120, "start")
        p.send_signal(signal.SIGUSR2)
        rc = p.wait(240)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    prog = progress(b)
    # The signal may land before or after the first steps; either way nothing is lost.
    assert (rc, prog["phase"]) in ((75, "interrupted"), (0, "completed")), (rc, prog)
    assert run_inprocess(b) == 0
    assert read_json(os.path.join(b, "progress.json"))["phase"] == "completed"

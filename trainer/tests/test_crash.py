"""Crash safety: SIGKILL the trainer at many random instants while it writes checkpoints;
every checkpoint left behind verifies, and each resume loads the newest one.

The trainer runs in forked children of this process (torch already imported), so each
kill-and-resume cycle costs milliseconds; FTGATE_TRAINER_TEST_SLOW_WRITE stretches each
checkpoint write so that most random instants land inside one."""

import json
import os
import random
import signal
import time

from ftgate_trainer import checkpoint
from helpers import final_weights, progress, run_inprocess

WANT_KILLS_DURING_WRITE = 50
MAX_CYCLES = 400
TIME_BUDGET = 240.0  # typically done in 30 s; room for a loaded machine (a bound, not a speed test)


def child(job_dir):
    code = 1
    try:
        for s in (signal.SIGTERM, signal.SIGUSR2):
            signal.signal(s, signal.SIG_DFL)
        code = run_inprocess(job_dir)
    finally:
        os._exit(code)


def writing(root):
    """True while a checkpoint is being written or deleted (temporary directories exist)."""
    try:
        return any(n.startswith((".tmp-", ".del-")) for n in os.listdir(root))
    except FileNotFoundError:
        return False


def check_all_verify(root):
    for s in checkpoint.steps(root):
        path = checkpoint.step_dir(root, s)
        why = checkpoint.verify(path)
        assert why is None, "partial checkpoint visible after a crash: %s: %s" % (path, why)
        st = json.load(open(os.path.join(path, "trainer_state.json")))
        assert st["step"] == s
        for name in ("model.pt", "optimizer.pt", "rng.pt", "data.pt"):
            checkpoint.load_tensors(os.path.join(path, name))


def test_sigkill_during_checkpoint_writes(make_job, small_model, monkeypatch):
    d = make_job("sft", hyperparameters__max_steps=100000, logging__save_every=1, logging__log_every=50,
                 logging__progress_interval_seconds=1, checkpoints={"keep_last": 2, "keep_best": 1})
    root = os.path.join(d, "checkpoints")
    monkeypatch.setenv("FTGATE_TRAINER_TEST_SLOW_WRITE", "0.01")
    seed = int(os.environ.get("CRASH_TEST_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    print("crash test seed", seed)
    kills_in_write = cycles = 0
    newest = 0
    t0 = time.monotonic()
    while kills_in_write < WANT_KILLS_DURING_WRITE and cycles < MAX_CYCLES and time.monotonic() - t0 < TIME_BUDGET:
        cycles += 1
        pid = os.fork()
        if pid == 0:
            child(d)
        # Wait until the child trains; mostly kill it at a random instant soon after it starts
        # a checkpoint (the window this test is about), sometimes let checkpoints complete
        # first so the resume point moves on.
        in_save = rng.random() < 0.7
        want = ("checkpointing",) if in_save else ("training", "checkpointing")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            p = progress(d)
            if p.get("pid") == pid and p.get("phase") in want:
                break
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.15) if in_save else rng.uniform(0.3, 1.5))
        in_write = writing(root)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status), "the trainer ended by itself (status %d)" % status
        if in_write or writing(root):
            kills_in_write += 1
        check_all_verify(root)
        latest = checkpoint.latest_verified(root)
        if latest:
            step = int(os.path.basename(latest).split("-")[1])
            assert step >= newest, "resume point went back from %d to %d" % (newest, step)
            newest = step
    elapsed = time.monotonic() - t0
    print("%d cycles, %d kills during checkpoint writes, newest checkpoint step %d, %.1fs"
          % (cycles, kills_in_write, newest, elapsed))
    assert kills_in_write >= WANT_KILLS_DURING_WRITE
    assert newest > 0
    # One more start resumes from the newest verified checkpoint.
    job = json.load(open(os.path.join(d, "job.json")))
    job["hyperparameters"]["max_steps"] = newest + 2
    json.dump(job, open(os.path.join(d, "job.json"), "w"))
    monkeypatch.delenv("FTGATE_TRAINER_TEST_SLOW_WRITE")
    assert run_inprocess(d) == 0
    prog = progress(d)
    assert prog["resumed_from"] == "checkpoints/step-%d" % newest
    assert prog["phase"] == "completed"
    assert final_weights(d)

"""Checkpoint rotation, verification and the optimizer state round trip."""

import json
import logging
import os
import random
import shutil
import time

import numpy as np
import pytest
import torch

from ftgate_trainer import checkpoint
from helpers import metrics, progress, run_inprocess, sft_rows, write_jsonl


def fake(root, step, key):
    """A checkpoint whose metric is key = (0 for eval_loss or 1 for train_loss, value), or None."""
    metric, name = (None, None) if key is None else (key[1], "eval_loss" if key[0] == 0 else "train_loss")
    return checkpoint.save(root, step, {"model.pt": checkpoint.tensor_bytes({"w": torch.full((2,), float(step))})},
                           metric, name)


@pytest.mark.parametrize("keys,keep_last,keep_best,want,best", [
    # the best (lowest eval loss) is old: kept besides the last two
    ({1: (0, 0.5), 2: (0, 0.2), 3: (0, 0.4), 4: (0, 0.6), 5: (0, 0.7)}, 2, 1, [2, 4, 5], 2),
    # the best is among the last two: exactly two remain
    ({1: (0, 0.9), 2: (0, 0.8), 3: (0, 0.3), 4: (0, 0.1)}, 2, 1, [3, 4], 4),
    # keep_best 0: only the last K
    ({1: (0, 0.1), 2: (0, 0.8), 3: (0, 0.9)}, 2, 0, [2, 3], None),
    # eval-loss checkpoints outrank train-loss ones; unranked ones are never "best"
    ({1: (1, 0.01), 2: (0, 0.5), 3: None, 4: (1, 0.3), 5: (1, 0.2)}, 1, 2, [1, 2, 5], 2),
    # ties go to the newer checkpoint
    ({1: (0, 0.5), 2: (0, 0.5), 3: (0, 0.9), 4: (0, 0.9)}, 1, 1, [2, 4], 2),
])
def test_rotate(tmp_path, keys, keep_last, keep_best, want, best):
    root = str(tmp_path / "checkpoints")
    for step, key in keys.items():
        fake(root, step, key)
    kept, best_path = checkpoint.rotate(root, keep_last, keep_best)
    assert kept == want
    assert checkpoint.steps(root) == want
    assert best_path == (checkpoint.step_dir(root, best) if best else None)
    assert sorted(os.listdir(root)) == ["step-%d" % s for s in want]


def test_rotation_in_a_run_keeps_last_two_and_best(make_job, small_model):
    d = make_job("sft", hyperparameters__max_steps=9, hyperparameters__learning_rate=0.05,
                 logging__save_every=1, logging__eval_every=1, checkpoints={"keep_last": 2, "keep_best": 1})
    job = json.load(open(os.path.join(d, "job.json")))
    job["dataset"]["eval_path"] = job["dataset"]["path"]
    json.dump(job, open(os.path.join(d, "job.json"), "w"))
    assert run_inprocess(d) == 0
    evals = {r["step"]: r["eval_loss"] for r in metrics(d) if "eval_loss" in r and r["step"] < 9}
    assert sorted(evals) == list(range(1, 9))
    best = min(evals, key=lambda s: (evals[s], -s))
    want = sorted({7, 8, best})
    print("eval losses", evals, "-> keep", want)
    assert sorted(os.listdir(os.path.join(d, "checkpoints"))) == ["step-%d" % s for s in want]
    assert progress(d)["best_checkpoint"] == "checkpoints/step-%d" % best


def test_verify_detects_damage(tmp_path):
    root = str(tmp_path)
    path = fake(root, 3, (0, 1.0))
    assert checkpoint.verify(path) is None
    with open(os.path.join(path, "model.pt"), "ab") as f:
        f.write(b"x")
    assert checkpoint.verify(path) == "size mismatch for model.pt"
    os.remove(os.path.join(path, "model.pt"))
    assert checkpoint.verify(path) == "missing file model.pt"
    os.remove(os.path.join(path, "manifest.json"))
    assert checkpoint.verify(path) == "no manifest.json"
    os.rename(path, os.path.join(root, "step-4"))
    path4 = fake(root, 5, (0, 1.0))
    man = json.load(open(os.path.join(path4, "manifest.json")))
    man["step"] = 6
    json.dump(man, open(os.path.join(path4, "manifest.json"), "w"))
    assert checkpoint.verify(path4) == "manifest.json does not describe this checkpoint"
    assert checkpoint.latest_verified(root) is None


def test_steps_and_latest_verified_skip_what_is_not_a_checkpoint(tmp_path, caplog):
    """steps lists step-<N> directories only (not a file of that name); latest_verified
    skips a broken newer checkpoint with a warning naming it and what is wrong."""
    root = str(tmp_path)
    good = fake(root, 3, (0, 1.0))
    broken = fake(root, 5, (0, 1.0))
    os.remove(os.path.join(broken, "model.pt"))
    open(os.path.join(root, "step-9"), "w").close()
    assert checkpoint.steps(root) == [3, 5]
    with caplog.at_level(logging.WARNING):
        assert checkpoint.latest_verified(root) == good
    assert [r.getMessage() for r in caplog.records] == [
        "skipping broken checkpoint %s: missing file model.pt" % broken]


def test_json_bytes_is_stable_and_readable():
    """The checkpoint's JSON files: sorted keys and two-space indents, so that the same
    state always gives the same bytes (and hash), and people can read them."""
    assert checkpoint.json_bytes({"b": 1, "a": [1, {"d": None, "c": 0.5}]}) == (
        b'{\n  "a": [\n    1,\n    {\n      "c": 0.5,\n      "d": null\n    }\n  ],\n  "b": 1\n}\n')


def test_verify_names_unreadable_and_damaged_manifests(tmp_path):
    root = str(tmp_path)
    path = fake(root, 3, (0, 1.0))
    man_path = os.path.join(path, "manifest.json")
    good = open(man_path).read()
    with open(man_path, "w") as f:
        f.write(good[: len(good) // 2])  # cut off mid-write
    why = checkpoint.verify(path)
    assert why is not None and why.startswith("unreadable manifest.json: ")
    for bad in ([], {"step": 3}, {"step": 3, "files": []}):
        with open(man_path, "w") as f:
            json.dump(bad, f)
        assert checkpoint.verify(path) == "manifest.json does not describe this checkpoint"
    man = json.loads(good)
    man["files"]["model.pt"]["sha256"] = "0" * 64
    with open(man_path, "w") as f:
        json.dump(man, f)
    assert checkpoint.verify(path) == "checksum mismatch for model.pt"
    for name in ("../model.pt", "a/b/c", "./model.pt"):
        man = json.loads(good)
        man["files"][name] = man["files"]["model.pt"]
        with open(man_path, "w") as f:
            json.dump(man, f)
        assert checkpoint.verify(path) == "missing file %s" % name


def test_leftover_temporaries_are_removed(tmp_path):
    root = str(tmp_path)
    os.mkdir(os.path.join(root, ".tmp-step-7-123"))
    os.mkdir(os.path.join(root, ".del-step-2-123"))
    fake(root, 1, None)
    checkpoint.clean_temporaries(root)
    assert os.listdir(root) == ["step-1"]


def test_remove_renames_into_the_root_first(tmp_path, monkeypatch):
    """A deletion renames step-N to a .del- name inside the checkpoint root before the
    rmtree, so one cut short leaves no partial step-N, only a leftover that
    clean_temporaries sweeps; and an rmtree that fails does not fail the run."""
    root = str(tmp_path / "checkpoints")
    fake(root, 3, None)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(checkpoint.shutil, "rmtree", lambda path, ignore_errors=False: None)  # cut short
    checkpoint._remove(root, checkpoint.step_dir(root, 3))
    left = os.listdir(root)
    assert len(left) == 1 and left[0].startswith(".del-step-3-"), left
    assert os.listdir(elsewhere) == []
    monkeypatch.undo()
    checkpoint.clean_temporaries(root)
    assert os.listdir(root) == []

    def failing(path, ignore_errors=False):
        if not ignore_errors:
            raise OSError("Device or resource busy")
    fake(root, 4, None)
    monkeypatch.setattr(checkpoint.shutil, "rmtree", failing)
    checkpoint._remove(root, checkpoint.step_dir(root, 4))
    assert checkpoint.steps(root) == []


def test_optimizer_state_round_trip():
    p = torch.nn.Parameter(torch.randn(3))
    opt = torch.optim.AdamW([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    t, rest = checkpoint.flatten_optimizer(opt.state_dict())
    json.dumps(rest)
    sd = checkpoint.unflatten_optimizer(t, json.loads(json.dumps(rest)))
    opt2 = torch.optim.AdamW([torch.nn.Parameter(p.detach().clone())], lr=0.1)
    opt2.load_state_dict(sd)
    for k, v in opt.state_dict()["state"][0].items():
        assert torch.equal(v, opt2.state_dict()["state"][0][k])
    assert opt.state_dict()["param_groups"] == opt2.state_dict()["param_groups"]


def test_checkpoint_records_its_metric_and_run(make_job, small_model):
    """Each checkpoint records what keep_best ranks it by: the eval loss of its own step
    when an evaluation ran at that step, else the mean train loss since the checkpoint
    before; its trainer_state.json records the run's shape (strategy, processes, steps)."""
    d = make_job("sft", hyperparameters__max_steps=7, logging__save_every=3, logging__eval_every=2,
                 checkpoints={"keep_last": 3, "keep_best": 1})
    job = json.load(open(os.path.join(d, "job.json")))
    job["dataset"]["eval_path"] = os.path.join(d, "eval.jsonl")
    write_jsonl(job["dataset"]["eval_path"], sft_rows(8))
    with open(os.path.join(d, "job.json"), "w") as f:
        json.dump(job, f)
    assert run_inprocess(d) == 0
    rows = {r["step"]: r for r in metrics(d)}
    assert sorted(k for k in rows if "eval_loss" in rows[k]) == [2, 4, 6, 7]
    ckpts = os.path.join(d, "checkpoints")
    assert sorted(os.listdir(ckpts)) == ["step-3", "step-6"]
    # Step 3: the last evaluation was at step 2, so the train loss of steps 1-3 ranks it.
    man = checkpoint.read_manifest(os.path.join(ckpts, "step-3"))
    assert man["metric_name"] == "train_loss"
    assert man["metric"] == pytest.approx(sum(rows[s]["loss"] for s in (1, 2, 3)) / 3, rel=1e-6)
    # Step 6: evaluated at its own step.
    man = checkpoint.read_manifest(os.path.join(ckpts, "step-6"))
    assert man["metric_name"] == "eval_loss" and man["metric"] == rows[6]["eval_loss"]
    st = json.load(open(os.path.join(ckpts, "step-6", "trainer_state.json")))
    assert (st["step"], st["total_steps"], st["world_size"], st["strategy"]) == (6, 7, 1, "ddp")
    assert (st["metric_name"], st["metric"]) == ("eval_loss", rows[6]["eval_loss"])
    # The whole record (users and tools read it beside the weights): no key renamed or lost.
    assert sorted(st) == ["acc", "best", "epoch", "grad_scaler", "lora", "method", "metric", "metric_name", "model",
                          "n_train", "optimizer", "position", "restart_count", "rng", "scheduler", "since_save",
                          "step", "strategy", "total_steps", "world_size"]
    assert st["scheduler"] == {"kind": "linear_warmup_decay", "base_lr": 0.003, "warmup_steps": 2, "total_steps": 7,
                               "next_step": 6}


def test_resume_restores_every_rng_and_the_grad_scaler_as_saved(make_job, small_model, monkeypatch):
    """resume_run puts the Python, NumPy and torch RNGs back exactly as they were when
    save_run wrote the checkpoint: also NumPy's position and cached Gaussian, which the
    training loop never draws from (user code and libraries may). And a GradScaler's
    state (fp16 on CUDA) comes back too; here a CPU one stands in, around the save and
    the resume only."""
    saved, restored = {}, {}
    real_save, real_resume = checkpoint.save_run, checkpoint.resume_run

    def save_run(t):
        # Off the seeded states, with a Gaussian cached in NumPy's, every field of its
        # state distinct, so that a mix-up of two fields shows.
        random.random()
        torch.rand(3)
        while True:
            np.random.standard_normal()
            st = np.random.get_state()
            if st[3] == 1 and int(st[4]) not in (st[2], st[3]):
                break
        own, t.scaler = t.scaler, torch.amp.GradScaler("cpu", init_scale=512.0 * t.step)
        try:
            saved[t.step] = (random.getstate(), st, torch.get_rng_state(), t.scaler.state_dict())
            return real_save(t)
        finally:
            t.scaler = own

    def resume_run(t, path):
        own, t.scaler = t.scaler, torch.amp.GradScaler("cpu")
        try:
            real_resume(t, path)
            restored[t.step] = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
                                t.scaler.state_dict())
        finally:
            t.scaler = own

    monkeypatch.setattr(checkpoint, "save_run", save_run)
    a = make_job("sft", name="a", hyperparameters__max_steps=5, logging__save_every=2)
    assert run_inprocess(a) == 0
    assert sorted(saved) == [2, 4]
    st = json.load(open(os.path.join(a, "checkpoints", "step-4", "trainer_state.json")))
    assert st["grad_scaler"]["scale"] == 2048.0
    b = make_job("sft", name="b", hyperparameters__max_steps=6, logging__save_every=10)
    shutil.copytree(os.path.join(a, "checkpoints"), os.path.join(b, "checkpoints"))
    monkeypatch.setattr(checkpoint, "resume_run", resume_run)
    assert run_inprocess(b) == 0
    assert sorted(restored) == [4]
    (py, npy, tor, sc), (py2, npy2, tor2, sc2) = saved[4], restored[4]
    assert py2 == py
    assert npy2[0] == npy[0] and np.array_equal(npy2[1], npy[1]) and tuple(npy2[2:]) == tuple(npy[2:])
    assert torch.equal(tor2, tor)
    assert sc2 == sc and sc2["scale"] == 2048.0
    # A run without a GradScaler (bf16, fp32, CPU) resumes the same checkpoint and
    # ignores its scaler state.
    monkeypatch.setattr(checkpoint, "resume_run", real_resume)
    c = make_job("sft", name="c", hyperparameters__max_steps=6, logging__save_every=10)
    shutil.copytree(os.path.join(a, "checkpoints"), os.path.join(c, "checkpoints"))
    assert run_inprocess(c) == 0
    assert progress(c)["resumed_from"] == "checkpoints/step-4"


def test_manifest_fields_the_gateway_reads(tmp_path):
    """manifest.json holds what internal/artifact/checkpoint.go reads (format, step,
    created_at, files) and lists files already in the temporary directory (FSDP's dcp/
    shards) beside the ones save writes, so that verify covers them too."""
    root = str(tmp_path / "checkpoints")
    before = time.time()
    tmp = checkpoint.begin(root, 5)
    os.makedirs(os.path.join(tmp, "dcp"))
    with open(os.path.join(tmp, "dcp", "shard.distcp"), "wb") as f:
        f.write(b"shard bytes")
    path = checkpoint.save(root, 5, {"rng.pt": b"rng"}, 0.5, "train_loss", tmp=tmp)
    man = checkpoint.read_manifest(path)
    assert (man["format"], man["step"], man["metric"], man["metric_name"]) == (checkpoint.FORMAT, 5, 0.5, "train_loss")
    assert checkpoint.FORMAT == 1  # the gateway's reader knows format 1
    assert before <= man["created_at"] <= time.time()
    assert sorted(man["files"]) == ["dcp/shard.distcp", "rng.pt"]
    assert man["files"]["dcp/shard.distcp"]["size"] == len(b"shard bytes")
    assert checkpoint.verify(path) is None
    with open(os.path.join(path, "dcp", "shard.distcp"), "wb") as f:
        f.write(b"shard BYTES")
    assert checkpoint.verify(path) is not None


@pytest.mark.parametrize("man,want", [
    ({"metric": 0.5, "metric_name": "eval_loss"}, (0, 0.5)),
    ({"metric": 2, "metric_name": "train_loss"}, (1, 2.0)),
    ({"metric": 0.5}, (1, 0.5)),
    ({"metric": None, "metric_name": "eval_loss"}, None),
    ({"metric": "0.5", "metric_name": "eval_loss"}, None),
    ({"metric": True, "metric_name": "eval_loss"}, None),
    ({"metric": float("nan"), "metric_name": "eval_loss"}, None),
    ([0.5], None),
    (None, None),
])
def test_rank_key_of_any_manifest(man, want):
    """keep_best ranks only a real number; a manifest.json of another shape (written by
    hand into the job directory) is unranked, not an error."""
    assert checkpoint._rank_key(man) == want


def test_clean_temporaries_survives_a_failing_rmtree(tmp_path, monkeypatch):
    """A leftover that cannot be removed now (e.g. a busy NFS file) does not fail the run;
    the next start sweeps it again."""
    root = tmp_path / "checkpoints"
    (root / ".tmp-step-3-x").mkdir(parents=True)
    (root / "step-2").mkdir()
    calls = []

    def rmtree(path, ignore_errors=False):
        calls.append((os.path.basename(path), ignore_errors))
        if not ignore_errors:
            raise OSError("busy")
    monkeypatch.setattr(checkpoint.shutil, "rmtree", rmtree)
    checkpoint.clean_temporaries(str(root))
    assert calls == [(".tmp-step-3-x", True)]

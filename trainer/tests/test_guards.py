"""Guards of checkpoint verification and resume that a bug would silently drop: a
manifest may only name files inside its checkpoint (at most one directory down), and a checkpoint is only resumed by
the job that wrote it (same method, model, LoRA setting and dataset size), and a tensor file
holding a pickled object is refused without running it."""

import hashlib
import io
import json
import os
import pickle
import shutil
import types

import pytest
import torch

from ftgate_trainer import EXIT_FAILURE, checkpoint
from ftgate_trainer.spec import SpecError
from helpers import progress, run_inprocess, sft_rows


def _resign(ckpt, name, data):
    """Rewrites file name of checkpoint ckpt and its manifest entry, so it still verifies."""
    with open(os.path.join(ckpt, name), "wb") as f:
        f.write(data)
    man = checkpoint.read_manifest(ckpt)
    man["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    with open(os.path.join(ckpt, checkpoint.MANIFEST), "wb") as f:
        f.write(checkpoint.json_bytes(man))
    assert checkpoint.verify(ckpt) is None


# One subdirectory level is allowed (model files of the HF backend); more, "..", "." or
# an absolute name are not.
@pytest.mark.parametrize("name", ["../outside.bin", "sub/../../outside.bin", "/abs/outside.bin", "a/b/deep.bin", "./x.bin"])
def test_manifest_entry_with_a_path_is_refused(tmp_path, name):
    root = str(tmp_path / "checkpoints")
    path = checkpoint.save(root, 3, {"model.pt": b"weights"})
    assert checkpoint.verify(path) is None
    data = b"a file the manifest must not reach"
    for target in (os.path.join(path, name), os.path.join(str(tmp_path), "outside.bin")):
        if not name.startswith("/"):
            os.makedirs(os.path.dirname(os.path.normpath(target)), exist_ok=True)
            with open(os.path.normpath(target), "wb") as f:
                f.write(data)
    man = checkpoint.read_manifest(path)
    man["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    with open(os.path.join(path, checkpoint.MANIFEST), "wb") as f:
        f.write(checkpoint.json_bytes(man))
    assert checkpoint.verify(path) == "missing file %s" % name
    assert checkpoint.latest_verified(root) is None


def _checkpointed(make_job, **over):
    """A finished run's checkpoints (steps 2 and 4; the last step writes the model) in a job directory."""
    a = make_job("sft", name="a", hyperparameters__max_steps=5, logging__save_every=2, **over)
    assert run_inprocess(a) == 0
    assert sorted(os.listdir(os.path.join(a, "checkpoints"))) == ["step-2", "step-4"]
    return os.path.join(a, "checkpoints")


@pytest.mark.parametrize("case,needle", [
    ("model", "job.json: method, model or lora.enabled differ from checkpoint"),
    ("lora", "job.json: method, model or lora.enabled differ from checkpoint"),
    ("method", "job.json: method, model or lora.enabled differ from checkpoint"),
    ("rows", "dataset.path: has 48 rows but checkpoint"),
    ("world", "resources: checkpoint"),
    ("strategy", "distributed.strategy: checkpoint"),
])
def test_resume_refuses_another_jobs_checkpoint(make_job, small_model, case, needle):
    ckpts = _checkpointed(make_job)
    over = {"hyperparameters__max_steps": 8, "logging__save_every": 2}
    if case == "lora":
        over["lora"] = True
    if case == "rows":
        over["rows"] = sft_rows(48)
    d = make_job("dpo" if case == "method" else "sft", **over)
    shutil.copytree(ckpts, os.path.join(d, "checkpoints"))
    if case == "model":
        # The checkpoint says another model wrote it (same tensor shapes: loading would work).
        ck = os.path.join(d, "checkpoints", "step-4")
        st = json.loads(open(os.path.join(ck, "trainer_state.json")).read())
        st["model"] = "/models/other"
        _resign(ck, "trainer_state.json", checkpoint.json_bytes(st))
    if case in ("world", "strategy"):
        # Written by 2 processes, resumed by 1: the shards and data order would not match.
        # Written with FSDP (sharded weights in dcp/), resumed with DDP: nothing to load.
        ck = os.path.join(d, "checkpoints", "step-4")
        st = json.loads(open(os.path.join(ck, "trainer_state.json")).read())
        if case == "world":
            st["world_size"] = 2
        else:
            st["strategy"] = "fsdp"
        _resign(ck, "trainer_state.json", checkpoint.json_bytes(st))
    assert run_inprocess(d) == 2
    prog = progress(d)
    assert prog["phase"] == "failed" and prog["error"].startswith(needle), prog.get("error")
    if case == "world":
        assert prog["error"].endswith(" was made by 2 processes, this run has 1; resume needs the same nodes "
                                      "and processes per node"), prog["error"]
    if case == "strategy":
        assert prog["error"].endswith("/step-4 was made with fsdp"), prog["error"]
    assert not os.path.exists(os.path.join(d, "model")), "a refused resume trained anyway"


@pytest.mark.parametrize("old_state", [False, True])
def test_resume_of_own_checkpoint_continues(make_job, small_model, old_state):
    """The same job resumes from its own checkpoint (the refusals above are not blanket),
    also one written before trainer_state.json recorded world_size (one process)."""
    ckpts = _checkpointed(make_job)
    d = make_job("sft", hyperparameters__max_steps=8, logging__save_every=2)
    shutil.copytree(ckpts, os.path.join(d, "checkpoints"))
    if old_state:
        ck = os.path.join(d, "checkpoints", "step-4")
        st = json.loads(open(os.path.join(ck, "trainer_state.json")).read())
        assert st.pop("world_size") == 1
        _resign(ck, "trainer_state.json", checkpoint.json_bytes(st))
    assert run_inprocess(d) == 0
    prog = progress(d)
    assert prog["resumed_from"] == "checkpoints/step-4" and prog["step"] == 8


class _Loaded(Exception):
    """Raised where resume_run starts to read weights: its checks have passed."""


def _loaded(*args):
    raise _Loaded()


def _fake_trainer(world, fsdp):
    """Just what resume_run reads up to where it loads weights, which raises _Loaded."""
    return types.SimpleNamespace(
        sp=types.SimpleNamespace(method="sft", model="builtin:tiny", lora=types.SimpleNamespace(enabled=False)),
        train=[0, 1, 2], dist=types.SimpleNamespace(world=world, rank=0), fsdp=fsdp, device="cpu",
        fsdp_state=_loaded, backend=types.SimpleNamespace(load_checkpoint_state=_loaded))


@pytest.mark.parametrize("state,world,fsdp,want", [
    # A checkpoint from before world_size and strategy were recorded: one process, DDP.
    ({}, 1, False, None),
    ({"world_size": 1, "strategy": "ddp"}, 1, False, None),
    ({"world_size": 2, "strategy": "fsdp"}, 2, True, None),
    ({}, 2, False, "resources: checkpoint {p} was made by 1 processes, this run has 2; resume needs the same "
                   "nodes and processes per node"),
    ({"world_size": 2}, 1, False, "resources: checkpoint {p} was made by 2 processes, this run has 1; resume "
                                  "needs the same nodes and processes per node"),
    ({}, 1, True, "distributed.strategy: checkpoint {p} was made with ddp"),
    ({"strategy": "fsdp"}, 1, False, "distributed.strategy: checkpoint {p} was made with fsdp"),
])
def test_resume_checks_the_run_shape(tmp_path, monkeypatch, state, world, fsdp, want):
    """resume_run's checks of processes and strategy, FSDP and several processes
    included (which in-process runs cannot reach), with an old checkpoint's defaults:
    a run of the same shape goes on to load the weights, another is refused naming
    what the checkpoint was made with."""
    p = tmp_path / "step-4"
    p.mkdir()
    st = {"method": "sft", "model": "builtin:tiny", "lora": False, "n_train": 3, **state}
    (p / "trainer_state.json").write_text(json.dumps(st))
    t = _fake_trainer(world, fsdp)
    monkeypatch.setattr(checkpoint, "load_tensors", _loaded)
    if want is None:
        with pytest.raises(_Loaded):
            checkpoint.resume_run(t, str(p))
        return
    with pytest.raises(SpecError) as e:
        checkpoint.resume_run(t, str(p))
    assert str(e.value) == want.format(p=p)


class _OpensAFile:
    """Pickles as a call of open(marker, "w"): unpickling it runs that call."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _pickled(payload):
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


@pytest.mark.parametrize("shape", ["top level", "dict value", "beside tensors", "inside a list"])
def test_load_tensors_refuses_a_pickled_callable(tmp_path, shape):
    """A tensor file holding a pickled callable is refused and the callable does not run
    (torch.load with weights_only=True); the same file under a plain torch.load does run
    it, so the payload is live."""
    marker = str(tmp_path / "ran")
    evil = _OpensAFile(marker)
    payload = {
        "top level": evil,
        "dict value": {"w": evil},
        "beside tensors": {"w": torch.zeros(2), "b": torch.ones(3), "x": evil},
        "inside a list": {"order": [torch.zeros(1), evil]},
    }[shape]
    path = str(tmp_path / "model.pt")
    with open(path, "wb") as f:
        f.write(_pickled(payload))
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        checkpoint.load_tensors(path)
    assert not os.path.exists(marker), "load_tensors ran a pickled callable"
    # The control: an unrestricted load runs the callable.
    torch.load(path, weights_only=False)
    assert os.path.exists(marker)


def test_load_tensors_reads_tensor_files():
    """What the checkpoint code writes (flat dicts of tensors) still loads."""
    tensors = {"w": torch.arange(6.0).reshape(2, 3), "order": torch.tensor([2, 0, 1])}
    got = checkpoint.load_tensors(io.BytesIO(checkpoint.tensor_bytes(tensors)))
    assert sorted(got) == ["order", "w"] and torch.equal(got["w"], tensors["w"]) and got["order"].tolist() == [2, 0, 1]


def test_resume_refuses_a_checkpoint_holding_a_pickled_callable(make_job, small_model, tmp_path):
    """A verified checkpoint whose tensor file holds a pickled callable (e.g. written
    by a user into their job dir, manifest re-signed) fails the resume: the callable does
    not run and nothing is trained from it."""
    ckpts = _checkpointed(make_job)
    for i, name in enumerate(["model.pt", "optimizer.pt", "data.pt", "rng.pt"]):
        marker = str(tmp_path / ("ran-%d" % i))
        d = make_job("sft", name="resume-%d" % i, hyperparameters__max_steps=8, logging__save_every=2)
        shutil.copytree(ckpts, os.path.join(d, "checkpoints"))
        ck = os.path.join(d, "checkpoints", "step-4")
        real = checkpoint.load_tensors(os.path.join(ck, name))
        real["x"] = _OpensAFile(marker)
        _resign(ck, name, _pickled(real))
        assert run_inprocess(d) == EXIT_FAILURE, name
        prog = progress(d)
        assert prog["phase"] == "failed" and "UnpicklingError" in prog["error"], (name, prog.get("error"))
        assert not os.path.exists(marker), "resume ran a pickled callable from %s" % name
        assert not os.path.exists(os.path.join(d, "model")), "a refused resume trained anyway"

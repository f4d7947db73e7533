"""Guards of checkpoint verification and resume that a bug would silently drop: a
manifest may only name files inside its checkpoint (at most one directory down), and a checkpoint is only resumed by
the job that wrote it (same method, model, LoRA setting and dataset size)."""

import hashlib
import json
import os
import shutil

import pytest

from ftgate_trainer import checkpoint
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
    assert run_inprocess(d) == 2
    prog = progress(d)
    assert prog["phase"] == "failed" and needle in prog["error"], prog.get("error")
    assert not os.path.exists(os.path.join(d, "model")), "a refused resume trained anyway"


def test_resume_of_own_checkpoint_continues(make_job, small_model):
    """The same job resumes from its own checkpoint (the refusals above are not blanket)."""
    ckpts = _checkpointed(make_job)
    d = make_job("sft", hyperparameters__max_steps=8, logging__save_every=2)
    shutil.copytree(ckpts, os.path.join(d, "checkpoints"))
    assert run_inprocess(d) == 0
    prog = progress(d)
    assert prog["resumed_from"] == "checkpoints/step-4" and prog["step"] == 8

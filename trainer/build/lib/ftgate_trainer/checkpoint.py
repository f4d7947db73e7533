"""Checkpoints: checkpoints/step-<N>/ written under a temporary name, fsynced, with a
manifest of sizes and sha256 sums, then renamed; verification, resume selection, rotation.

Tensor files hold only flat {name: tensor} dicts (loaded with weights_only=True); every
other value lives in JSON."""

import hashlib
import io
import json
import logging
import os
import re
import shutil
import time

import random

import numpy as np
import torch

from . import fsio, layout
from .spec import SpecError

log = logging.getLogger("ftgate_trainer")

STEP_RE = re.compile(r"^step-(\d+)$")
MANIFEST = layout.MANIFEST_JSON
FORMAT = 1


def step_dir(root, step):
    return os.path.join(root, "step-%d" % step)


def tensor_bytes(tensors):
    buf = io.BytesIO()
    torch.save(tensors, buf)
    return buf.getvalue()


def json_bytes(obj):
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def load_tensors(path, device="cpu"):
    """Loads a flat {name: tensor} file without unpickling arbitrary objects."""
    return torch.load(path, map_location=device, weights_only=True)


def tmp_dir(root, step):
    return os.path.join(root, ".tmp-step-%d-%d" % (step, os.getpid()))


def begin(root, step):
    """Creates and returns the temporary directory checkpoint step-<step> is written in."""
    os.makedirs(root, exist_ok=True)
    tmp = tmp_dir(root, step)
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.mkdir(tmp)
    return tmp


def save(root, step, files, metric=None, metric_name=None, tmp=None):
    """Writes files ({name: bytes}) as checkpoint step-<step> and returns its path.
    metric (lower is better) and metric_name ("eval_loss" or "train_loss") rank it for
    keep_best. tmp is a directory from begin() that already holds other files (FSDP's
    sharded dcp/ directory); they are listed in the manifest too.

    The directory appears under its final name only when complete: files and manifest are
    written and fsynced in a temporary directory, which is then renamed. An existing
    step-<step> (left by an earlier run that did not verify) is replaced."""
    tmp = tmp or begin(root, step)
    final = step_dir(root, step)
    manifest = {"format": FORMAT, "step": step, "metric": metric, "metric_name": metric_name,
                "created_at": time.time(), "files": {}}
    for name, data in sorted(files.items()):
        fsio.write_durable(os.path.join(tmp, name), data)
        manifest["files"][name] = {"size": len(data), "sha256": _sha256(data)}
    for name, info in fsio.manifest_of(tmp).items():
        if name not in manifest["files"]:
            with open(os.path.join(tmp, name), "rb") as f:
                os.fsync(f.fileno())
            manifest["files"][name] = info
    fsio.write_durable(os.path.join(tmp, MANIFEST), json_bytes(manifest))
    fsio.fsync_tree(tmp)
    if os.path.exists(final):
        _remove(root, final)
    os.rename(tmp, final)
    fsio.fsync_dir(root)
    return final


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _remove(root, path):
    """Deletes a checkpoint directory: renamed out of the step-<N> namespace first, so a
    crash mid-delete never leaves a partial step-<N>."""
    trash = os.path.join(root, ".del-%s-%d" % (os.path.basename(path), os.getpid()))
    os.rename(path, trash)
    fsio.fsync_dir(root)
    shutil.rmtree(trash, ignore_errors=True)


def clean_temporaries(root):
    """Removes leftovers of interrupted saves and deletions."""
    if not os.path.isdir(root):
        return
    for name in os.listdir(root):
        if name.startswith(".tmp-") or name.startswith(".del-"):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def steps(root):
    """Returns the step numbers of step-<N> directories, ascending."""
    if not os.path.isdir(root):
        return []
    out = []
    for name in os.listdir(root):
        m = STEP_RE.match(name)
        if m and os.path.isdir(os.path.join(root, name)):
            out.append(int(m.group(1)))
    return sorted(out)


def read_manifest(path):
    with open(os.path.join(path, MANIFEST), "rb") as f:
        return json.loads(f.read())


def verify(path):
    """Returns None when the checkpoint at path is complete and intact, else the reason."""
    try:
        man = read_manifest(path)
    except FileNotFoundError:
        return "no manifest.json"
    except (OSError, ValueError) as e:
        return "unreadable manifest.json: %s" % e
    m = STEP_RE.match(os.path.basename(path))
    if not isinstance(man, dict) or not isinstance(man.get("files"), dict) or not m or man.get("step") != int(m.group(1)):
        return "manifest.json does not describe this checkpoint"
    for name, want in man["files"].items():
        full = os.path.join(path, name)
        parts = name.split("/")
        if len(parts) > 2 or any(p in ("", ".", "..") for p in parts) or not os.path.isfile(full):
            return "missing file %s" % name
        if os.path.getsize(full) != want.get("size"):
            return "size mismatch for %s" % name
        if fsio.sha256_file(full) != want.get("sha256"):
            return "checksum mismatch for %s" % name
    return None


def latest_verified(root):
    """Returns the path of the newest checkpoint whose manifest verifies, or None; broken
    ones are skipped with a warning."""
    for step in reversed(steps(root)):
        path = step_dir(root, step)
        why = verify(path)
        if why is None:
            return path
        log.warning("skipping broken checkpoint %s: %s", path, why)
    return None


def _rank_key(man):
    """Ranking key of a manifest's metric: eval_loss checkpoints first, then train_loss;
    lower is better. None when the checkpoint has no metric."""
    m = man.get("metric") if isinstance(man, dict) else None
    if isinstance(m, bool) or not isinstance(m, (int, float)) or m != m:
        return None
    return (0 if man.get("metric_name") == "eval_loss" else 1, float(m))


def rotate(root, keep_last, keep_best):
    """Keeps the newest keep_last checkpoints plus the keep_best best ones (lowest eval loss,
    or train loss where no eval ran) and deletes the others. Returns (kept steps, best path)."""
    all_steps = steps(root)
    keys = {}
    for s in all_steps:
        try:
            k = _rank_key(read_manifest(step_dir(root, s)))
        except (OSError, ValueError, TypeError):
            k = None
        if k is not None:
            keys[s] = k
    keep = set(all_steps[-keep_last:]) if keep_last > 0 else set(all_steps)
    ranked = sorted(keys, key=lambda s: (keys[s], -s))
    keep.update(ranked[:keep_best])
    for s in all_steps:
        if s not in keep:
            _remove(root, step_dir(root, s))
    best_path = step_dir(root, ranked[0]) if ranked and keep_best > 0 else None
    return sorted(keep), best_path


def flatten_optimizer(sd):
    """Splits an optimizer state_dict into ({name: tensor}, JSON-able rest)."""
    tensors, rest = {}, {"param_groups": sd["param_groups"], "state": {}}
    for idx, st in sd["state"].items():
        rest["state"][str(idx)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors["state.%s.%s" % (idx, k)] = v.detach().cpu().clone()
            else:
                rest["state"][str(idx)][k] = v
    return tensors, rest


def unflatten_optimizer(tensors, rest):
    state = {}
    for idx, st in rest["state"].items():
        state[int(idx)] = dict(st)
    for name, v in tensors.items():
        _, idx, k = name.split(".", 2)
        state.setdefault(int(idx), {})[k] = v
    groups = rest["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    return {"state": state, "param_groups": groups}


# ---- a training run's state ---------------------------------------------------------------
def rng_state():
    """This process's torch (and CUDA) RNG states."""
    out = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            out["cuda.%d" % i] = st
    return out


def save_run(t):
    """Writes checkpoint step-<t.step> of trainer t: rank 0 writes the files (model and
    optimizer are the same on every DDP rank); every rank's RNG state is gathered into
    rng.pt, so each resumes its own dropout stream. All ranks return together. Returns the
    path (on rank 0) or None."""
    per_rank = t.dist.all_gather_object({k: v.clone() for k, v in rng_state().items()})
    tmp = None
    if t.fsdp:
        # Every rank writes its shards of model and optimizer into the same directory.
        tmp = t.dist.broadcast_object(begin(t.ckpt_root, t.step) if t.dist.is_main else None)
        import torch.distributed.checkpoint as dcp
        dcp.save(t.fsdp_state(), checkpoint_id=os.path.join(tmp, layout.DCP_DIR))
        t.dist.barrier()
    if not t.dist.is_main:
        t.dist.barrier()
        return None
    if t.last_eval and t.last_eval[0] == t.step:
        metric, metric_name = t.last_eval[1], "eval_loss"
    elif t.since_save[1]:
        metric, metric_name = t.since_save[0] / t.since_save[1], "train_loss"
    else:
        metric, metric_name = None, None
    opt_t, opt_rest = flatten_optimizer(t.opt.state_dict()) if not t.fsdp else ({}, None)
    rng = {}
    for r, states in enumerate(per_rank):
        for k, v in states.items():
            rng["rank%d.%s" % (r, k)] = v
    np_state = np.random.get_state()
    rng["numpy.keys"] = torch.from_numpy(np_state[1].astype(np.int64))
    py = random.getstate()
    h = t.sp.hyper
    state = {
        "step": t.step, "epoch": t.epoch, "position": t.pos, "total_steps": t.total,
        "n_train": len(t.train), "method": t.sp.method, "model": t.sp.model, "world_size": t.dist.world,
        "strategy": "fsdp" if t.fsdp else "ddp",
        "lora": t.sp.lora.enabled, "acc": t.acc, "since_save": t.since_save, "best": t.best,
        "metric": metric, "metric_name": metric_name,
        "scheduler": {"kind": "linear_warmup_decay", "base_lr": h.learning_rate, "warmup_steps": h.warmup_steps,
                      "total_steps": t.total, "next_step": t.step},
        "rng": {"python": [py[0], list(py[1]), py[2]],
                "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])]},
        "optimizer": opt_rest, "grad_scaler": t.scaler.state_dict() if t.scaler else None,
        "restart_count": t.rep.state["restart_count"],
    }
    files = {
        layout.RNG_PT: tensor_bytes(rng),
        layout.DATA_PT: tensor_bytes({"order": torch.tensor(t.order, dtype=torch.int64)}),
        layout.TRAINER_STATE_JSON: json_bytes(state),
    }
    if not t.fsdp:
        files[layout.MODEL_PT] = tensor_bytes(t.backend.checkpoint_state())
        files[layout.OPTIMIZER_PT] = tensor_bytes(opt_t)
    path = save(t.ckpt_root, t.step, files, metric, metric_name, tmp=tmp)
    t.dist.barrier()
    return path


def resume_run(t, path):
    """Restores trainer t from the verified checkpoint at path (every rank reads it)."""
    with open(os.path.join(path, layout.TRAINER_STATE_JSON), "rb") as f:
        st = json.loads(f.read())
    if st["method"] != t.sp.method or st["model"] != t.sp.model or st["lora"] != t.sp.lora.enabled:
        raise SpecError("job.json: method, model or lora.enabled differ from checkpoint %s" % path)
    if st["n_train"] != len(t.train):
        raise SpecError("dataset.path: has %d rows but checkpoint %s was made with %d"
                        % (len(t.train), path, st["n_train"]))
    if st.get("world_size", 1) != t.dist.world:
        raise SpecError("resources: checkpoint %s was made by %d processes, this run has %d; resume needs "
                        "the same nodes and processes per node" % (path, st.get("world_size", 1), t.dist.world))
    if st.get("strategy", "ddp") != ("fsdp" if t.fsdp else "ddp"):
        raise SpecError("distributed.strategy: checkpoint %s was made with %s" % (path, st.get("strategy", "ddp")))
    if t.fsdp:
        import torch.distributed.checkpoint as dcp
        state = t.fsdp_state()
        dcp.load(state, checkpoint_id=os.path.join(path, layout.DCP_DIR))
        t.fsdp_load(state)
    else:
        t.backend.load_checkpoint_state(load_tensors(os.path.join(path, layout.MODEL_PT), t.device))
        opt_t = load_tensors(os.path.join(path, layout.OPTIMIZER_PT))
        t.opt.load_state_dict(unflatten_optimizer(opt_t, st["optimizer"]))
    if t.scaler and st.get("grad_scaler"):
        t.scaler.load_state_dict(st["grad_scaler"])
    t.order = [int(i) for i in load_tensors(os.path.join(path, layout.DATA_PT))["order"].tolist()]
    t.step, t.epoch, t.pos = st["step"], st["epoch"], st["position"]
    t.acc, t.since_save, t.best = st["acc"], st["since_save"], st["best"]
    t.last_save_step = t.step
    rng = load_tensors(os.path.join(path, layout.RNG_PT))
    mine = "rank%d." % t.dist.rank
    torch.set_rng_state(rng[mine + "torch"])
    if torch.cuda.is_available():
        keys = sorted((k for k in rng if k.startswith(mine + "cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
        if len(keys) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([rng[k] for k in keys])
    py = st["rng"]["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, pos, has_gauss, cached = st["rng"]["numpy"]
    np.random.set_state((name, rng["numpy.keys"].numpy().astype(np.uint32), pos, has_gauss, cached))

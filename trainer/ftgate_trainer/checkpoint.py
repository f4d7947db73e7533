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

import torch

from . import fsio

log = logging.getLogger("ftgate_trainer")

STEP_RE = re.compile(r"^step-(\d+)$")
MANIFEST = "manifest.json"
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


def save(root, step, files, metric=None, metric_name=None):
    """Writes files ({name: bytes}) as checkpoint step-<step> and returns its path.
    metric (lower is better) and metric_name ("eval_loss" or "train_loss") rank it for
    keep_best.

    The directory appears under its final name only when complete: files and manifest are
    written and fsynced in a temporary directory, which is then renamed. An existing
    step-<step> (left by an earlier run that did not verify) is replaced."""
    os.makedirs(root, exist_ok=True)
    final = step_dir(root, step)
    tmp = os.path.join(root, ".tmp-step-%d-%d" % (step, os.getpid()))
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.mkdir(tmp)
    manifest = {"format": FORMAT, "step": step, "metric": metric, "metric_name": metric_name,
                "created_at": time.time(), "files": {}}
    for name, data in sorted(files.items()):
        fsio.write_durable(os.path.join(tmp, name), data)
        manifest["files"][name] = {"size": len(data), "sha256": _sha256(data)}
    fsio.write_durable(os.path.join(tmp, MANIFEST), json_bytes(manifest))
    fsio.fsync_dir(tmp)
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
        if os.path.basename(name) != name or not os.path.isfile(full):
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

"""The job Spec (job.json): parsing, defaults and validation with errors naming the field."""

import dataclasses
import json
import math
import os
import re
from typing import List, Optional

BUILTIN_TINY = "builtin:tiny"
MODULE_RE = re.compile(r"^[A-Za-z0-9_.]{1,64}$")
# LoRA on every linear layer of a Llama-style block (peft's "all-linear") learns far better
# than q/v alone. builtin:tiny adds lm_head (backend.py): its base is random, and a frozen
# random lm_head (init std 0.02) bounds the logits after the final RMSNorm to about +-0.6,
# so no adapter inside the blocks can move the loss far from uniform.
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
STRATEGIES = ("ddp", "fsdp")


class SpecError(Exception):
    """Bad spec or dataset: the trainer exits 2. The message names the field or line."""


@dataclasses.dataclass
class Hyper:
    learning_rate: float = 1e-4
    epochs: int = 1
    max_steps: int = 0
    batch_size: int = 8
    gradient_accumulation: int = 1
    max_length: int = 512
    warmup_steps: int = 0
    seed: int = 42
    dpo_beta: float = 0.1
    weight_decay: float = 0.0
    gradient_checkpointing: bool = False
    precision: str = "auto"  # auto (bf16 on GPUs that support it, else fp32), bf16, fp16, fp32
    packing: bool = False  # SFT: several rows per sequence of max_length tokens


@dataclasses.dataclass
class Lora:
    enabled: bool = False
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: List[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_TARGETS))
    default_targets: bool = True  # target_modules was not given
    merge: bool = False  # also write the adapter merged into the base weights (model/merged/)


@dataclasses.dataclass
class Logging:
    log_every: int = 10
    eval_every: int = 50
    save_every: int = 50
    progress_interval_seconds: float = 5.0


@dataclasses.dataclass
class Checkpoints:
    keep_last: int = 2
    keep_best: int = 0


@dataclasses.dataclass
class Distributed:
    strategy: str = "ddp"  # ddp, or fsdp (FSDP2 fully_shard; full fine-tuning)


@dataclasses.dataclass
class Spec:
    method: str
    model: str
    dataset_path: str
    eval_path: Optional[str]
    hyper: Hyper
    lora: Lora
    quantization: str
    logging: Logging
    checkpoints: Checkpoints
    distributed: Distributed = dataclasses.field(default_factory=Distributed)


def load(path):
    """Reads and validates a job.json file."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise SpecError("job.json: not found at %s" % path) from None
    except OSError as e:
        raise SpecError("job.json: cannot read %s: %s" % (path, e.strerror)) from None
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise SpecError("job.json: malformed JSON: %s" % e) from None
    return parse(obj)


def _section(obj, key, allowed):
    v = obj.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise SpecError("%s: must be an object" % key)
    unknown = sorted(set(v) - set(allowed))
    if unknown:
        raise SpecError("%s.%s: unknown field" % (key, unknown[0]))
    return v


def _int(sec, prefix, key, default, lo, hi, zero_default=True):
    field = "%s.%s" % (prefix, key)
    v = sec.get(key)
    if v is None or (zero_default and v == 0 and not isinstance(v, bool)):
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
        raise SpecError("%s: must be an integer, got %s" % (field, json.dumps(v)))
    v = int(v)
    if v < lo or v > hi:
        raise SpecError("%s: must be between %d and %d, got %d" % (field, lo, hi, v))
    return v


def _float(sec, prefix, key, default, lo, hi, open_lo, zero_default):
    field = "%s.%s" % (prefix, key)
    v = sec.get(key)
    if v is None or (zero_default and v == 0 and not isinstance(v, bool)):
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SpecError("%s: must be a number, got %s" % (field, json.dumps(v)))
    v = float(v)
    if math.isnan(v) or v < lo or v > hi or (open_lo and v == lo):
        raise SpecError("%s: must be %s %g and <= %g, got %g" % (field, ">" if open_lo else ">=", lo, hi, v))
    return v


def _abs_path(v, field, required):
    if v is None or v == "":
        if required:
            raise SpecError("%s: is required" % field)
        return None
    if not isinstance(v, str):
        raise SpecError("%s: must be a string" % field)
    if not os.path.isabs(v):
        raise SpecError("%s: must be an absolute path, got %r" % (field, v))
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in v):
        raise SpecError("%s: must not contain control characters" % field)
    if os.path.normpath(v) != v:
        raise SpecError("%s: must be a clean path (no '..', '.', '//' or trailing '/'), got %r" % (field, v))
    return v


TOP = {"name", "method", "model", "dataset", "hyperparameters", "lora", "quantization", "logging",
       "checkpoints", "resources", "distributed", "notify"}


def _bool(sec, field, key):
    v = sec.get(key)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise SpecError("%s.%s: must be true or false" % (field, key))
    return v


def _choice(sec, field, key, choices, default):
    v = sec.get(key)
    if v is None or v == "":
        return default
    if v not in choices:
        raise SpecError("%s.%s: must be one of %s, got %s" % (field, key, ", ".join(choices), json.dumps(v)))
    return v


def parse(obj):
    """Validates a decoded Spec object. Absent, null and (where 0 has no meaning) zero
    values take the defaults; `name`, `resources` and `notify` belong to the gateway and are ignored."""
    if not isinstance(obj, dict):
        raise SpecError("job.json: must be a JSON object")
    unknown = sorted(set(obj) - TOP)
    if unknown:
        raise SpecError("%s: unknown field" % unknown[0])

    method = obj.get("method")
    if method not in ("sft", "dpo"):
        raise SpecError("method: must be sft or dpo, got %s" % json.dumps(method))

    model = obj.get("model")
    if model != BUILTIN_TINY:
        if not isinstance(model, str) or not model:
            raise SpecError("model: is required (%r or an absolute path to a model directory)" % BUILTIN_TINY)
        _abs_path(model, "model", True)

    ds = _section(obj, "dataset", ["path", "eval_path"])
    dataset_path = _abs_path(ds.get("path"), "dataset.path", True)
    eval_path = _abs_path(ds.get("eval_path"), "dataset.eval_path", False)

    h = _section(obj, "hyperparameters", [f.name for f in dataclasses.fields(Hyper)])
    p = "hyperparameters"
    d = Hyper()
    hyper = Hyper(
        learning_rate=_float(h, p, "learning_rate", d.learning_rate, 0, 1, True, True),
        epochs=_int(h, p, "epochs", d.epochs, 1, 1000),
        max_steps=_int(h, p, "max_steps", 0, 0, 10_000_000),
        batch_size=_int(h, p, "batch_size", d.batch_size, 1, 4096),
        gradient_accumulation=_int(h, p, "gradient_accumulation", d.gradient_accumulation, 1, 1024),
        max_length=_int(h, p, "max_length", d.max_length, 2, 131072),
        warmup_steps=_int(h, p, "warmup_steps", 0, 0, 10_000_000),
        seed=_int(h, p, "seed", d.seed, 0, 2**31 - 1, zero_default=False),
        dpo_beta=_float(h, p, "dpo_beta", d.dpo_beta, 0, 100, True, True),
        weight_decay=_float(h, p, "weight_decay", 0.0, 0, 1, False, False),
        gradient_checkpointing=_bool(h, p, "gradient_checkpointing"),
        precision=_choice(h, p, "precision", PRECISIONS, "auto"),
        packing=_bool(h, p, "packing"),
    )
    if hyper.packing and method != "sft":
        raise SpecError("hyperparameters.packing: only for method sft")

    lo = _section(obj, "lora", [f.name for f in dataclasses.fields(Lora) if f.name != "default_targets"])
    enabled = lo.get("enabled", False)
    if not isinstance(enabled, bool):
        raise SpecError("lora.enabled: must be true or false")
    lora = Lora(enabled=enabled)
    if enabled:
        lora.r = _int(lo, "lora", "r", 8, 1, 1024)
        lora.alpha = _int(lo, "lora", "alpha", 2 * lora.r, 1, 4096)
        lora.dropout = _float(lo, "lora", "dropout", 0.0, 0, 0.99, False, False)
        tm = lo.get("target_modules")
        if tm is None or tm == []:
            tm = list(DEFAULT_TARGETS)
        if not isinstance(tm, list) or len(tm) > 64:
            raise SpecError("lora.target_modules: must be a list of at most 64 module names")
        for i, m in enumerate(tm):
            if not isinstance(m, str) or not MODULE_RE.match(m):
                raise SpecError("lora.target_modules[%d]: must match %s, got %s" % (i, MODULE_RE.pattern, json.dumps(m)))
        lora.target_modules = list(tm)
        lora.default_targets = lo.get("target_modules") in (None, [])
        lora.merge = _bool(lo, "lora", "merge")

    quant = obj.get("quantization") or "none"
    if quant not in ("none", "8bit", "4bit"):
        raise SpecError("quantization: must be none, 8bit or 4bit, got %s" % json.dumps(quant))
    if quant != "none" and not lora.enabled:
        raise SpecError("quantization: %s needs lora.enabled: true (quantized weights are frozen)" % quant)

    lg = _section(obj, "logging", [f.name for f in dataclasses.fields(Logging)])
    logging = Logging(
        log_every=_int(lg, "logging", "log_every", 10, 1, 1_000_000),
        eval_every=_int(lg, "logging", "eval_every", 50, 1, 1_000_000),
        save_every=_int(lg, "logging", "save_every", 50, 1, 1_000_000),
        progress_interval_seconds=_float(lg, "logging", "progress_interval_seconds", 5.0, 0, 3600, True, True),
    )

    ck = _section(obj, "checkpoints", ["keep_last", "keep_best"])
    checkpoints = Checkpoints(
        keep_last=_int(ck, "checkpoints", "keep_last", 2, 1, 100),
        keep_best=_int(ck, "checkpoints", "keep_best", 0, 0, 100, zero_default=False),
    )

    # processes_per_node belongs to the launcher (torchrun --nproc-per-node); the trainer
    # reads its rank and world size from torchrun's environment.
    di = _section(obj, "distributed", ["strategy", "processes_per_node"])
    distributed = Distributed(strategy=_choice(di, "distributed", "strategy", STRATEGIES, "ddp"))
    if distributed.strategy == "fsdp" and lora.enabled:
        raise SpecError("distributed.strategy: fsdp is for full fine-tuning; use ddp with lora.enabled")

    if obj.get("name") is not None and not isinstance(obj.get("name"), str):
        raise SpecError("name: must be a string")
    if obj.get("resources") is not None and not isinstance(obj.get("resources"), dict):
        raise SpecError("resources: must be an object")

    return Spec(method=method, model=model, dataset_path=dataset_path, eval_path=eval_path, hyper=hyper,
                lora=lora, quantization=quant, logging=logging, checkpoints=checkpoints,
                distributed=distributed)

"""Helpers shared by the trainer tests."""

import json
import os
import signal
import subprocess
import sys
import time

import torch

torch.set_num_threads(1)

TRAINER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TRAINER_DIR)
EXAMPLES = os.path.join(REPO, "examples", "data")
PYTHON = sys.executable  # the venv make deps creates (make test-trainer-unit runs pytest with it)
SMALL = "32,1,2,64"  # builtin:tiny (hidden, layers, heads, intermediate) shrunk for tests that do not measure learning


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def sft_rows(n=64):
    words = ["kalo", "miru", "tepo", "zanvel", "dorfi", "quaser", "bonim", "trami"]
    return [{"prompt": "upper: %s%d\n" % (words[i % len(words)], i % 7), "completion": ("%s%d" % (words[i % len(words)], i % 7)).upper()}
            for i in range(n)]


def dpo_rows(n=48):
    words = ["kalo", "miru", "tepo", "zanvel", "dorfi", "quaser", "bonim", "trami"]
    return [{"prompt": "upper: %s\n" % words[i % len(words)], "chosen": words[i % len(words)].upper(),
             "rejected": words[i % len(words)]} for i in range(n)]


def spec(method, data_path, eval_path=None, lora=False, **over):
    s = {
        "name": "t", "method": method, "model": "builtin:tiny",
        "dataset": {"path": data_path},
        "hyperparameters": {"learning_rate": 0.003, "max_steps": 12, "batch_size": 4, "max_length": 48,
                            "warmup_steps": 2, "seed": 7, "dpo_beta": 0.1},
        "lora": {"enabled": lora, "r": 4, "alpha": 8, "dropout": 0.1 if lora else 0.0,
                 "target_modules": ["q_proj", "v_proj", "up_proj"]},
        "quantization": "none",
        "logging": {"log_every": 1, "eval_every": 1000, "save_every": 1000, "progress_interval_seconds": 0.01},
        "checkpoints": {"keep_last": 2, "keep_best": 1},
        "resources": {"gpus": 1},
    }
    if eval_path:
        s["dataset"]["eval_path"] = eval_path
    for key, val in over.items():
        sec, _, field = key.partition("__")
        if field:
            s[sec][field] = val
        else:
            s[sec] = val
    return s


def run_inprocess(job_dir, *extra):
    """Runs the trainer's main() in this process and restores the signal handlers."""
    from ftgate_trainer import cli
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR2, signal.SIGUSR1)}
    try:
        return cli.main(["--job-dir", job_dir, *extra])
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def trainer_env(**extra):
    env = dict(os.environ, PYTHONPATH=TRAINER_DIR, FTGATE_TRAINER_THREADS="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_subprocess(job_dir, *extra, env=None, stderr=None):
    return subprocess.Popen([PYTHON, "-m", "ftgate_trainer", "--job-dir", job_dir, *extra],
                            env=env or trainer_env(), stderr=stderr)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def progress(job_dir):
    try:
        return read_json(os.path.join(job_dir, "progress.json"))
    except (OSError, ValueError):
        return {}


def wait_for(pred, timeout, what, interval=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def metrics(job_dir):
    with open(os.path.join(job_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def final_weights(job_dir):
    """The tensors of model/: the peft adapter with LoRA, else the full model."""
    from safetensors.torch import load_file
    d = os.path.join(job_dir, "model")
    name = "adapter_model.safetensors" if os.path.exists(os.path.join(d, "adapter_model.safetensors")) \
        else "model.safetensors"
    return load_file(os.path.join(d, name))


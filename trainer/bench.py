#!/usr/bin/python3
"""Benchmarks of the trainer (printed, never asserted): steps/s of builtin:tiny, and
checkpoint save, verify and load time against checkpoint size.

    cd trainer && /usr/bin/python3 bench.py [--threads 1] [--quick]
"""

import argparse
import json
import logging
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ftgate_trainer import checkpoint, progress, tiny  # noqa: E402
from ftgate_trainer.train import Trainer  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "data")


class NoStop:
    requested = False
    signame = None


def job(tmp, method, steps, lora=False, save_every=1000000):
    d = tempfile.mkdtemp(dir=tmp)
    s = {"method": method, "model": "builtin:tiny",
         "dataset": {"path": os.path.abspath(os.path.join(EXAMPLES, "%s-train.jsonl" % method))},
         "hyperparameters": {"learning_rate": 0.002, "max_steps": steps, "batch_size": 8, "max_length": 64},
         "lora": {"enabled": lora, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
         "logging": {"log_every": 1000000, "save_every": save_every},
         "checkpoints": {"keep_last": 100, "keep_best": 0}}
    with open(os.path.join(d, "job.json"), "w") as f:
        json.dump(s, f)
    return d


def run(d):
    t = Trainer(d, progress.Reporter(d), NoStop())
    t0 = time.monotonic()
    assert t.run() == 0
    return time.monotonic() - t0, t


def steps_per_second(tmp, method, lora, n):
    short, _ = run(job(tmp, method, 5, lora))
    long, _ = run(job(tmp, method, 5 + n, lora))
    return n / (long - short)


def checkpoint_times(tmp, size):
    os.environ[tiny.SIZE_ENV] = size
    d = job(tmp, "sft", 2, save_every=1)
    t = Trainer(d, progress.Reporter(d), NoStop())
    t.setup()
    t.total = 10 ** 9
    # One optimizer step so the optimizer state exists, then timed saves.
    loss, _ = t.loss(t.next_micro_batch())
    loss.backward()
    t.opt.step()
    t.step = 1
    saves = []
    for i in range(3):
        t.step += 1
        t0 = time.monotonic()
        t.save_checkpoint()
        saves.append(time.monotonic() - t0)
    path = checkpoint.latest_verified(t.ckpt_root)
    nbytes = sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))
    t0 = time.monotonic()
    assert checkpoint.verify(path) is None
    verify = time.monotonic() - t0
    t2 = Trainer(d, progress.Reporter(d), NoStop())
    t2.setup()
    t0 = time.monotonic()
    t2.resume()
    load = time.monotonic() - t0
    params = sum(p.numel() for p in t.model.parameters())
    del os.environ[tiny.SIZE_ENV]
    return params, nbytes, min(saves), verify, load


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="fewer steps and sizes")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(a.threads)
    n = 20 if a.quick else 60
    with tempfile.TemporaryDirectory() as tmp:
        print("builtin:tiny %s (d_model, layers, heads, d_ff), batch 8, max_length 64, %d thread(s), torch %s"
              % (tiny.DEFAULT_SIZE, a.threads, torch.__version__))
        for method, lora in (("sft", False), ("sft", True), ("dpo", False), ("dpo", True)):
            sps = steps_per_second(tmp, method, lora, n)
            print("  %-3s %-4s  %6.1f steps/s  (%.1f ms/step)" % (method, "lora" if lora else "full", sps, 1000 / sps))
        print("checkpoint (full fine-tune: model + AdamW state + RNG + data order), best of 3 saves:")
        print("  %-16s %10s %10s %9s %9s %9s %9s" % ("size", "params", "MB", "save s", "MB/s", "verify s", "load s"))
        sizes = ["64,2,4,256", "256,4,8,1024"] if a.quick else ["64,2,4,256", "128,4,4,512", "256,4,8,1024",
                                                                  "512,6,8,2048"]
        for size in sizes:
            params, nbytes, save, verify, load = checkpoint_times(tmp, size)
            mb = nbytes / 1e6
            print("  %-16s %10d %10.1f %9.3f %9.0f %9.3f %9.3f" % (size, params, mb, save, mb / save, verify, load))


if __name__ == "__main__":
    main()

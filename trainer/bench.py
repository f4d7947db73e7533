#!/usr/bin/env python3
"""Benchmarks of the trainer (printed, never asserted):

- steps/s and tokens/s of the trainer against a bare PyTorch loop (same tiny Llama, same
  batches, AdamW, clipping; no progress, metrics, stop vote) measured in the same run;
- checkpoint save, verify and load time against checkpoint size;
- samples/s of 1 against 2 gloo ranks under torchrun.

    make bench-trainer        # or: cd trainer && ../.dev/venv/bin/python bench.py [--quick]
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time

for _k in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS"):
    os.environ.setdefault(_k, "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from ftgate_trainer import checkpoint, data, dist, hooks, progress, tiny  # noqa: E402
from ftgate_trainer.backend import HFTokenizer  # noqa: E402
from ftgate_trainer.train import Trainer  # noqa: E402

EXAMPLES = os.path.join(HERE, "..", "examples", "data")
BATCH, MAX_LEN = 8, 64


class NoStop:
    requested = False
    signame = None


def job(tmp, method, steps, lora=False, save_every=1000000, log_every=1000000):
    d = tempfile.mkdtemp(dir=tmp)
    s = {"method": method, "model": "builtin:tiny",
         "dataset": {"path": os.path.abspath(os.path.join(EXAMPLES, "%s-train.jsonl" % method))},
         "hyperparameters": {"learning_rate": 0.002, "max_steps": steps, "batch_size": BATCH, "max_length": MAX_LEN},
         "lora": {"enabled": lora},
         "logging": {"log_every": log_every, "save_every": save_every, "progress_interval_seconds": 3600},
         "checkpoints": {"keep_last": 100, "keep_best": 0}}
    with open(os.path.join(d, "job.json"), "w") as f:
        json.dump(s, f)
    return d


def trainer(d):
    return Trainer(d, progress.Reporter(d, interval=3600), NoStop(), dist.Dist("cpu"))


def run(d):
    t = trainer(d)
    t0 = time.monotonic()
    assert t.run() == 0
    return time.monotonic() - t0, t


def trainer_rate(tmp, method, lora, n):
    """Steps/s of the training loop alone: the trainer's own samples/s over steps n+1..2n
    (metrics.jsonl's second line), so setup and the final save do not count."""
    d = job(tmp, method, 2 * n, lora, log_every=n)
    run(d)
    rows = [json.loads(line) for line in open(os.path.join(d, "metrics.jsonl"))]
    return rows[-1]["samples_per_second"] / BATCH


def bare_rate(n):
    """A plain PyTorch SFT loop over the same model and batches."""
    tok = HFTokenizer(tiny.tokenizer())
    rows = data.load_rows(os.path.join(EXAMPLES, "sft-train.jsonl"), "sft", "dataset.path")
    enc = data.encode(rows, "sft", tok, MAX_LEN)
    model = tiny.model(42, MAX_LEN)
    model.config.use_cache = False
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.002)
    order = torch.randperm(len(enc), generator=torch.Generator().manual_seed(0)).tolist()
    batches = [enc_batch for enc_batch in (
        data.batch([enc[i] for i in order[j:j + BATCH]], "sft", tok.pad_id) for j in range(0, len(order) - BATCH + 1, BATCH))]
    tokens = 0

    def step(b):
        ids, labels, mask, _ = b
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                               ignore_index=data.IGNORE)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return int(mask.sum()), float(loss.detach())

    for b in batches[:5]:
        step(b)
    t0 = time.monotonic()
    for i in range(n):
        tokens += step(batches[i % len(batches)])[0]
    dt = time.monotonic() - t0
    return n / dt, tokens / dt


def checkpoint_times(tmp, size):
    os.environ[hooks.TINY_SIZE_ENV] = size
    d = job(tmp, "sft", 2, save_every=1)
    t = trainer(d)
    t.setup()
    t.total = 10 ** 9
    loss, _ = t.loss(t.next_micro_batch())
    loss.backward()
    t.opt.step()
    t.step = 1
    saves = []
    for _ in range(3):
        t.step += 1
        t0 = time.monotonic()
        t.save_checkpoint()
        saves.append(time.monotonic() - t0)
    path = checkpoint.latest_verified(t.ckpt_root)
    nbytes = sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))
    t0 = time.monotonic()
    assert checkpoint.verify(path) is None
    verify = time.monotonic() - t0
    t2 = trainer(d)
    t2.setup()
    t0 = time.monotonic()
    t2.resume()
    load = time.monotonic() - t0
    params = sum(p.numel() for p in t.model.parameters())
    del os.environ[hooks.TINY_SIZE_ENV]
    return params, nbytes, min(saves), verify, load


def ranks_rate(tmp, nproc, steps):
    """samples/s over the logged intervals after the first, of a torchrun job with nproc ranks."""
    d = job(tmp, "sft", steps, log_every=10)
    env = dict(os.environ, PYTHONPATH=HERE, FTGATE_TRAINER_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                        str(nproc), "-m", "ftgate_trainer", "--job-dir", d], env=env, capture_output=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for line in open(os.path.join(d, "metrics.jsonl"))][1:]
    return sum(r["samples_per_second"] for r in rows) / len(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="fewer steps and sizes")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(a.threads)
    n = 30 if a.quick else 100
    with tempfile.TemporaryDirectory() as tmp:
        print("builtin:tiny %s (hidden, layers, heads, intermediate), batch %d, max_length %d, %d thread(s), torch %s"
              % (tiny.DEFAULT_SIZE, BATCH, MAX_LEN, a.threads, torch.__version__))
        # Alternate the two, best of 3 each: the machine is shared.
        bare, mine = [], []
        for _ in range(3):
            bare.append(bare_rate(n))
            mine.append(trainer_rate(tmp, "sft", False, n))
        bare_sps, bare_tps = max(bare)
        sps = max(mine)
        tps_sft = bare_tps / bare_sps
        print("  bare PyTorch loop  sft full  %6.2f steps/s  %8.0f tokens/s" % (bare_sps, bare_tps))
        print("  trainer            sft full  %6.2f steps/s  %8.0f tokens/s  trainer/bare %.3f"
              % (sps, sps * tps_sft, sps / bare_sps))
        for method, lora in (("sft", True), ("dpo", False), ("dpo", True)):
            sps = trainer_rate(tmp, method, lora, n)
            print("  trainer %-3s %-4s          %6.1f steps/s  (%.1f ms/step)" % (method, "lora" if lora else "full",
                                                                               sps, 1000 / sps))
        print("checkpoint (full fine-tune: model + AdamW state + RNG + data order), best of 3 saves:")
        print("  %-16s %10s %10s %9s %9s %9s %9s" % ("size", "params", "MB", "save s", "MB/s", "verify s", "load s"))
        sizes = ["64,2,4,256", "256,4,8,1024"] if a.quick else ["64,2,4,256", "128,4,4,512", "256,4,8,1024",
                                                                  "512,6,8,2048"]
        for size in sizes:
            params, nbytes, save, verify, load = checkpoint_times(tmp, size)
            mb = nbytes / 1e6
            print("  %-16s %10d %10.1f %9.3f %9.0f %9.3f %9.3f" % (size, params, mb, save, mb / save, verify, load))
        steps = 60 if a.quick else 150
        one, two = ranks_rate(tmp, 1, steps), ranks_rate(tmp, 2, steps)
        print("torchrun gloo ranks, 1 thread each, batch %d per rank: 1 rank %.1f samples/s, 2 ranks %.1f samples/s,"
              " ratio %.2f (%d CPU cores here)" % (BATCH, one, two, two / one, os.cpu_count()))


if __name__ == "__main__":
    main()

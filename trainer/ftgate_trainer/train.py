"""The training loop shared by both backends: SFT and DPO, gradient accumulation, linear
warmup/decay, logging, evaluation, checkpoints, resume, and stop on signal."""

import copy
import json
import logging
import math
import os
import random
import shutil
import time

import numpy as np
import torch
import torch.nn.functional as F

from . import EXIT_OK, EXIT_REQUEUE, checkpoint, data, fsio
from . import spec as specmod
from .spec import SpecError

log = logging.getLogger("ftgate_trainer")

MAX_GRAD_NORM = 1.0
# Test hook: seconds to sleep after every optimizer step, so tests can signal mid-run.
STEP_SLEEP_ENV = "FTGATE_TRAINER_TEST_STEP_SLEEP"
# Overrides the device (cpu, cuda, cuda:1); by default cuda when available.
DEVICE_ENV = "FTGATE_TRAINER_DEVICE"


def lr_at(step, base, warmup, total):
    """Learning rate of the step'th (0-based) optimizer step: linear warmup, then linear decay to 0."""
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    return base * max(0.0, (total - step) / max(1, total - warmup))


def read_control(job_dir):
    """Returns the action of control.json ("pause", ...) or None."""
    try:
        with open(os.path.join(job_dir, "control.json"), "rb") as f:
            obj = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return obj.get("action") if isinstance(obj, dict) else None


def consume_control(job_dir):
    """Marks a handled request by renaming control.json to control.handled.json, so a
    resumed run does not read the same pause request again."""
    try:
        os.replace(os.path.join(job_dir, "control.json"), os.path.join(job_dir, "control.handled.json"))
        fsio.fsync_dir(job_dir)
    except OSError as e:
        log.warning("cannot rename control.json: %s", e)


def make_backend(sp, device):
    if sp.model == specmod.BUILTIN_TINY:
        from .tiny import TinyBackend
        return TinyBackend(sp, device)
    from .hf import HFBackend
    return HFBackend(sp, device)


def seq_logps(logits, labels):
    """Per-sequence sum of log-probabilities of the labelled tokens (labels already aligned
    with the inputs; shifted here) and their count."""
    logits, labels = logits[:, :-1], labels[:, 1:]
    mask = labels != data.IGNORE
    lp = torch.gather(logits.log_softmax(-1), 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (lp * mask).sum(-1), mask.sum(-1)


class Trainer:
    """One training run in a job directory."""

    def __init__(self, job_dir, reporter, stop):
        self.job_dir = job_dir
        self.rep = reporter
        self.stop = stop
        self.ckpt_root = os.path.join(job_dir, "checkpoints")

    # ---- setup -------------------------------------------------------------------------------
    def setup(self):
        sp = self.sp = specmod.load(os.path.join(self.job_dir, "job.json"))
        self.rep.interval = sp.logging.progress_interval_seconds
        self.rep.phase("loading", method=sp.method)
        h = sp.hyper
        random.seed(h.seed)
        np.random.seed(h.seed)
        torch.manual_seed(h.seed)
        self.device = torch.device(os.environ.get(DEVICE_ENV) or ("cuda" if torch.cuda.is_available() else "cpu"))
        # Datasets are read before the model, so a bad row fails fast.
        train_rows = data.load_rows(sp.dataset_path, sp.method, "dataset.path")
        eval_rows = data.load_rows(sp.eval_path, sp.method, "dataset.eval_path") if sp.eval_path else None
        t0 = time.monotonic()
        self.backend = make_backend(sp, self.device)
        self.model = self.backend.model
        log.info("loaded %s on %s in %.1fs", sp.model, self.device, time.monotonic() - t0)
        tok = self.backend.tok
        self.train = data.encode(train_rows, sp.method, tok, h.max_length)
        self.eval = data.encode(eval_rows, sp.method, tok, h.max_length) if eval_rows else None
        self.micro_per_epoch = math.ceil(len(self.train) / h.batch_size)
        self.total = h.max_steps or math.ceil(h.epochs * self.micro_per_epoch / h.gradient_accumulation)
        params = self.backend.trainable_parameters()
        if not params:
            raise SpecError("lora.target_modules: no trainable parameters")
        self.params = params
        self.opt = torch.optim.AdamW(params, lr=h.learning_rate, weight_decay=h.weight_decay)
        self.ref = None
        if sp.method == "dpo" and not sp.lora.enabled:
            self.ref = copy.deepcopy(self.model).eval()
            for p in self.ref.parameters():
                p.requires_grad_(False)
        # Position in the data and the bookkeeping a checkpoint restores.
        self.step, self.epoch, self.pos = 0, 0, 0
        self.order = self._order(0)
        self.acc = self._fresh_acc()
        self.since_save = [0.0, 0]
        self.best = None
        self.last_eval = None
        self.last_save_step = None
        self.rep.update(total_steps=self.total, step=0)

    def _order(self, epoch):
        return [int(i) for i in np.random.RandomState([self.sp.hyper.seed, epoch]).permutation(len(self.train))]

    @staticmethod
    def _fresh_acc():
        return {"loss": 0.0, "steps": 0, "tokens": 0, "samples": 0, "rewards_chosen": 0.0,
                "rewards_rejected": 0.0, "reward_accuracy": 0.0}

    # ---- data --------------------------------------------------------------------------------
    def next_micro_batch(self):
        bs = self.sp.hyper.batch_size
        idx = self.order[self.pos:self.pos + bs]
        self.pos += len(idx)
        if self.pos >= len(self.order):
            self.epoch += 1
            self.pos = 0
            self.order = self._order(self.epoch)
        return [self.train[i] for i in idx]

    def epoch_float(self):
        return round(self.epoch + self.pos / max(1, len(self.order)), 4)

    # ---- losses ------------------------------------------------------------------------------
    def sft_loss(self, examples):
        ids, labels, mask = (t.to(self.device) for t in data.batch(examples, "sft", self.backend.tok.pad_id))
        logits = self.backend.logits(self.model, ids, mask)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                               ignore_index=data.IGNORE)
        return loss, {"tokens": int(mask.sum()), "samples": len(examples)}

    def dpo_loss(self, examples):
        ids, labels, mask = (t.to(self.device) for t in data.batch(examples, "dpo", self.backend.tok.pad_id))
        n = len(examples)
        pol, _ = seq_logps(self.backend.logits(self.model, ids, mask), labels)
        with torch.no_grad():
            if self.ref is not None:
                ref, _ = seq_logps(self.backend.logits(self.ref, ids, mask), labels)
            else:
                was = self.model.training
                self.model.eval()
                with self.backend.adapters_disabled():
                    ref, _ = seq_logps(self.backend.logits(self.model, ids, mask), labels)
                self.model.train(was)
        beta = self.sp.hyper.dpo_beta
        chosen, rejected = pol[:n] - ref[:n], pol[n:] - ref[n:]
        loss = -F.logsigmoid(beta * (chosen - rejected)).mean()
        rc, rr = (beta * chosen).detach(), (beta * rejected).detach()
        return loss, {"tokens": int(mask.sum()), "samples": n, "rewards_chosen": float(rc.mean()),
                      "rewards_rejected": float(rr.mean()), "reward_accuracy": float((rc > rr).float().mean())}

    def loss(self, examples):
        return self.sft_loss(examples) if self.sp.method == "sft" else self.dpo_loss(examples)

    def evaluate(self):
        self.model.eval()
        bs = self.sp.hyper.batch_size
        tot = {"loss": 0.0, "weight": 0, "rewards_chosen": 0.0, "rewards_rejected": 0.0, "reward_accuracy": 0.0}
        with torch.no_grad():
            for i in range(0, len(self.eval), bs):
                chunk = self.eval[i:i + bs]
                loss, st = self.loss(chunk)
                w = sum(1 for l in chunk for x in l[1] if x != data.IGNORE) if self.sp.method == "sft" else len(chunk)
                tot["loss"] += float(loss) * w
                tot["weight"] += w
                for k in ("rewards_chosen", "rewards_rejected", "reward_accuracy"):
                    if k in st:
                        tot[k] += st[k] * len(chunk)
        self.model.train()
        out = {"eval_loss": tot["loss"] / max(1, tot["weight"])}
        if self.sp.method == "dpo":
            n = len(self.eval)
            out.update(eval_rewards_chosen=tot["rewards_chosen"] / n, eval_rewards_rejected=tot["rewards_rejected"] / n,
                       eval_reward_accuracy=tot["reward_accuracy"] / n)
            out["eval_reward_margin"] = out["eval_rewards_chosen"] - out["eval_rewards_rejected"]
        return out

    # ---- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self):
        self.rep.phase("checkpointing")
        t0 = time.monotonic()
        if self.last_eval and self.last_eval[0] == self.step:
            metric, metric_name = self.last_eval[1], "eval_loss"
        elif self.since_save[1]:
            metric, metric_name = self.since_save[0] / self.since_save[1], "train_loss"
        else:
            metric, metric_name = None, None
        opt_t, opt_rest = checkpoint.flatten_optimizer(self.opt.state_dict())
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                rng["cuda.%d" % i] = s
        np_state = np.random.get_state()
        rng["numpy.keys"] = torch.from_numpy(np_state[1].astype(np.int64))
        py = random.getstate()
        h = self.sp.hyper
        state = {
            "step": self.step, "epoch": self.epoch, "position": self.pos, "total_steps": self.total,
            "n_train": len(self.train), "method": self.sp.method, "model": self.sp.model,
            "lora": self.sp.lora.enabled, "acc": self.acc, "since_save": self.since_save, "best": self.best,
            "metric": metric, "metric_name": metric_name,
            "scheduler": {"kind": "linear_warmup_decay", "base_lr": h.learning_rate, "warmup_steps": h.warmup_steps,
                          "total_steps": self.total, "next_step": self.step},
            "rng": {"python": [py[0], list(py[1]), py[2]],
                    "numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])]},
            "optimizer": opt_rest, "restart_count": self.rep.state["restart_count"],
        }
        files = {
            "model.pt": checkpoint.tensor_bytes(self.backend.checkpoint_state()),
            "optimizer.pt": checkpoint.tensor_bytes(opt_t),
            "rng.pt": checkpoint.tensor_bytes(rng),
            "data.pt": checkpoint.tensor_bytes({"order": torch.tensor(self.order, dtype=torch.int64)}),
            "trainer_state.json": checkpoint.json_bytes(state),
        }
        path = checkpoint.save(self.ckpt_root, self.step, files, metric, metric_name)
        self.since_save = [0.0, 0]
        self.last_save_step = self.step
        kept, best = checkpoint.rotate(self.ckpt_root, self.sp.checkpoints.keep_last, self.sp.checkpoints.keep_best)
        rel = os.path.relpath(path, self.job_dir)
        self.rep.update(latest_checkpoint=rel,
                        best_checkpoint=os.path.relpath(best, self.job_dir) if best else None)
        log.info("checkpoint %s saved in %.2fs (kept steps %s)", rel, time.monotonic() - t0, kept)

    def resume(self):
        checkpoint.clean_temporaries(self.ckpt_root)
        path = checkpoint.latest_verified(self.ckpt_root)
        if path is None:
            return
        t0 = time.monotonic()
        with open(os.path.join(path, "trainer_state.json"), "rb") as f:
            st = json.loads(f.read())
        if st["method"] != self.sp.method or st["model"] != self.sp.model or st["lora"] != self.sp.lora.enabled:
            raise SpecError("job.json: method, model or lora.enabled differ from checkpoint %s" % path)
        if st["n_train"] != len(self.train):
            raise SpecError("dataset.path: has %d rows but checkpoint %s was made with %d"
                            % (len(self.train), path, st["n_train"]))
        self.backend.load_checkpoint_state(checkpoint.load_tensors(os.path.join(path, "model.pt"), self.device))
        opt_t = checkpoint.load_tensors(os.path.join(path, "optimizer.pt"))
        self.opt.load_state_dict(checkpoint.unflatten_optimizer(opt_t, st["optimizer"]))
        self.order = [int(i) for i in checkpoint.load_tensors(os.path.join(path, "data.pt"))["order"].tolist()]
        self.step, self.epoch, self.pos = st["step"], st["epoch"], st["position"]
        self.acc, self.since_save, self.best = st["acc"], st["since_save"], st["best"]
        self.last_save_step = self.step
        rng = checkpoint.load_tensors(os.path.join(path, "rng.pt"))
        torch.set_rng_state(rng["torch"])
        if torch.cuda.is_available():
            states = [rng[k] for k in sorted((k for k in rng if k.startswith("cuda.")), key=lambda k: int(k[5:]))]
            if len(states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(states)
        py = st["rng"]["python"]
        random.setstate((py[0], tuple(py[1]), py[2]))
        name, pos, has_gauss, cached = st["rng"]["numpy"]
        np.random.set_state((name, rng["numpy.keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
        rel = os.path.relpath(path, self.job_dir)
        _, best = checkpoint.rotate(self.ckpt_root, self.sp.checkpoints.keep_last, self.sp.checkpoints.keep_best)
        self.rep.update(step=self.step, epoch=self.epoch_float(), latest_checkpoint=rel, resumed_from=rel,
                        best_checkpoint=os.path.relpath(best, self.job_dir) if best else None)
        log.info("resumed from %s (step %d) in %.2fs", rel, self.step, time.monotonic() - t0)

    # ---- final model -------------------------------------------------------------------------
    def save_model(self):
        out = os.path.join(self.job_dir, "model")
        tmp = os.path.join(self.job_dir, ".model.tmp-%d" % os.getpid())
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
        os.mkdir(tmp)
        self.backend.save_final(tmp)
        with open(os.path.join(tmp, "training_state.json"), "w") as f:
            json.dump({"step": self.step, "total_steps": self.total, "method": self.sp.method,
                       "model": self.sp.model, "lora": self.sp.lora.enabled}, f, indent=2, sort_keys=True)
        files = fsio.manifest_of(tmp)
        for name in files:
            with open(os.path.join(tmp, name), "rb") as f:
                os.fsync(f.fileno())
        fsio.write_durable(os.path.join(tmp, "manifest.json"),
                           checkpoint.json_bytes({"format": 1, "step": self.step, "files": files}))
        fsio.fsync_tree(tmp)
        if os.path.exists(out):
            old = os.path.join(self.job_dir, ".model.old-%d" % os.getpid())
            os.rename(out, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, out)
        fsio.fsync_dir(self.job_dir)

    def already_completed(self):
        """True when model/ holds a verified final model of this run (a requeue after the end)."""
        out = os.path.join(self.job_dir, "model")
        try:
            with open(os.path.join(out, "manifest.json"), "rb") as f:
                man = json.loads(f.read())
            with open(os.path.join(out, "training_state.json"), "rb") as f:
                ts = json.loads(f.read())
        except (OSError, ValueError):
            return False
        if ts.get("total_steps") != self.total or ts.get("step") != self.total:
            return False
        for name, want in man.get("files", {}).items():
            full = os.path.join(out, name)
            if not os.path.isfile(full) or fsio.sha256_file(full) != want.get("sha256"):
                return False
        return True

    # ---- the loop ----------------------------------------------------------------------------
    def log_row(self, now):
        a = self.acc
        if not a["steps"]:
            return None
        dt = max(1e-9, now - self.t_log)
        row = {"step": self.step, "epoch": self.epoch_float(), "loss": a["loss"] / a["steps"],
               "learning_rate": self.lr, "tokens_per_second": round(a["tokens"] / dt, 2),
               "samples_per_second": round(a["samples"] / dt, 3), "time": round(time.time(), 3),
               "restart_count": self.rep.state["restart_count"]}
        if self.sp.method == "dpo":
            for k in ("rewards_chosen", "rewards_rejected", "reward_accuracy"):
                row[k] = a[k] / a["steps"]
            row["reward_margin"] = row["rewards_chosen"] - row["rewards_rejected"]
        self.acc = self._fresh_acc()
        self.t_log = now
        return row

    def run(self):
        """Trains to the end or until a stop signal; returns the exit code."""
        self.setup()
        sp, h = self.sp, self.sp.hyper
        if self.already_completed():
            log.info("model/ already holds the final model of this job; nothing to do")
            self.rep.phase("completed", step=self.total, latest_checkpoint=None)
            return EXIT_OK
        self.resume()
        self.model.train()
        step_sleep = float(os.environ.get(STEP_SLEEP_ENV, "0") or 0)
        self.rep.phase("training")
        self.t_log = t_start = time.monotonic()
        start_step = self.step
        self.lr = lr_at(self.step, h.learning_rate, h.warmup_steps, self.total)
        while self.step < self.total and not self.stop.requested:
            self.lr = lr_at(self.step, h.learning_rate, h.warmup_steps, self.total)
            for g in self.opt.param_groups:
                g["lr"] = self.lr
            self.opt.zero_grad(set_to_none=True)
            step_loss, stats = 0.0, {}
            for _ in range(h.gradient_accumulation):
                loss, st = self.loss(self.next_micro_batch())
                (loss / h.gradient_accumulation).backward()
                step_loss += float(loss) / h.gradient_accumulation
                for k, v in st.items():
                    stats[k] = stats.get(k, 0) + v
            if not math.isfinite(step_loss):
                raise RuntimeError("loss is %s at step %d" % (step_loss, self.step + 1))
            torch.nn.utils.clip_grad_norm_(self.params, MAX_GRAD_NORM)
            self.opt.step()
            self.step += 1
            a = self.acc
            a["loss"] += step_loss
            a["steps"] += 1
            a["tokens"] += stats["tokens"]
            a["samples"] += stats["samples"]
            for k in ("rewards_chosen", "rewards_rejected", "reward_accuracy"):
                if k in stats:
                    a[k] += stats[k] / h.gradient_accumulation
            self.since_save[0] += step_loss
            self.since_save[1] += 1
            now = time.monotonic()
            rate = (now - t_start) / max(1, self.step - start_step)
            self.rep.update(step=self.step, epoch=self.epoch_float(), learning_rate=self.lr,
                            eta_seconds=round(rate * (self.total - self.step), 1))
            if self.step % sp.logging.log_every == 0 or self.step == self.total:
                row = self.log_row(now)
                self._maybe_eval(row)
                self.rep.metrics(row)
                log.info("step %d/%d loss %.4f lr %.3g %s", self.step, self.total, row["loss"], self.lr,
                         " ".join("%s %.4g" % (k, v) for k, v in row.items() if k.startswith(("eval_", "reward"))))
                self.rep.update(loss=row["loss"], tokens_per_second=row["tokens_per_second"],
                                samples_per_second=row["samples_per_second"],
                                **{k: v for k, v in row.items() if k.startswith(("eval_", "reward"))})
            elif self.eval and self.step % sp.logging.eval_every == 0:
                row = {"step": self.step, "epoch": self.epoch_float(), "time": round(time.time(), 3),
                       "restart_count": self.rep.state["restart_count"]}
                self._maybe_eval(row)
                self.rep.metrics(row)
                self.rep.update(**{k: v for k, v in row.items() if k.startswith("eval_")})
            if self.step % sp.logging.save_every == 0 and self.step < self.total:
                self.save_checkpoint()
                self.rep.phase("training")
            else:
                self.rep.tick()
            if step_sleep:
                time.sleep(step_sleep)
        if self.step >= self.total:
            self.rep.phase("checkpointing")
            self.save_model()
            self.rep.phase("completed", step=self.step, eta_seconds=0)
            log.info("completed %d steps; model in %s", self.step, os.path.join(self.job_dir, "model"))
            return EXIT_OK
        log.info("stop requested by %s at step %d", self.stop.signame, self.step)
        if self.last_save_step != self.step and self.step > 0:
            self.save_checkpoint()
        if read_control(self.job_dir) == "pause":
            self.rep.phase("paused")
            consume_control(self.job_dir)
            log.info("paused at step %d", self.step)
            return EXIT_OK
        self.rep.phase("interrupted")
        log.info("checkpointed at step %d; exit %d asks for a requeue", self.step, EXIT_REQUEUE)
        return EXIT_REQUEUE

    def _maybe_eval(self, row):
        if self.eval is None:
            return
        if self.step % self.sp.logging.eval_every != 0 and self.step != self.total:
            return
        ev = self.evaluate()
        row.update(ev)
        self.last_eval = (self.step, ev["eval_loss"])
        if self.best is None or ev["eval_loss"] < self.best:
            self.best = ev["eval_loss"]

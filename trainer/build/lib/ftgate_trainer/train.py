"""The training loop: SFT and DPO, gradient accumulation, linear warmup/decay, logging,
evaluation, checkpoints, exact resume, data parallelism over torchrun's ranks (DDP), and the
stop protocol (a signal, control.json or stop.json sets a flag; all ranks agree on it at the
next step boundary, checkpoint together and exit with the same code)."""

import contextlib
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

from . import EXIT_OK, EXIT_REQUEUE, checkpoint, data, fsio, hooks, layout
from . import spec as specmod
from .backend import HFBackend
from .spec import SpecError

log = logging.getLogger("ftgate_trainer")

MAX_GRAD_NORM = 1.0


def lr_at(step, base, warmup, total):
    """Learning rate of the step'th (0-based) optimizer step: linear warmup, then linear decay to 0."""
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    return base * max(0.0, (total - step) / max(1, total - warmup))


def read_control(job_dir):
    """Returns the action of control.json ("pause", ...) or None."""
    try:
        with open(os.path.join(job_dir, layout.CONTROL_JSON), "rb") as f:
            obj = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return obj.get("action") if isinstance(obj, dict) else None


def consume_control(job_dir):
    """Marks a handled request by renaming control.json to control.handled.json, so a
    resumed run does not read the same pause request again."""
    try:
        os.replace(os.path.join(job_dir, layout.CONTROL_JSON), os.path.join(job_dir, layout.CONTROL_HANDLED_JSON))
        fsio.fsync_dir(job_dir)
    except OSError as e:
        log.warning("cannot rename control.json: %s", e)


def stop_file_present(job_dir):
    """True when the batch script asked for a stop (it writes stop.json on the checkpoint
    signal, which Slurm delivers to the batch shell only)."""
    return os.path.exists(os.path.join(job_dir, layout.STOP_JSON))


def seq_logps(logits, labels):
    """Per-sequence sum of log-probabilities of the labelled tokens (labels already aligned
    with the inputs; shifted here) and their count."""
    logits, labels = logits[:, :-1], labels[:, 1:]
    mask = labels != data.IGNORE
    lp = torch.gather(logits.log_softmax(-1), 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (lp * mask).sum(-1), mask.sum(-1)


class Trainer:
    """One training run in a job directory, as one rank of dist (a dist.Dist)."""

    def __init__(self, job_dir, reporter, stop, dist):
        self.job_dir = job_dir
        self.rep = reporter
        self.stop = stop
        self.dist = dist
        self.ckpt_root = os.path.join(job_dir, layout.CHECKPOINTS_DIR)

    # ---- setup -------------------------------------------------------------------------------
    def setup(self):
        sp = self.sp = specmod.load(os.path.join(self.job_dir, layout.JOB_JSON))
        self.rep.interval = sp.logging.progress_interval_seconds
        self.rep.phase("loading", method=sp.method, world_size=self.dist.world)
        h = sp.hyper
        random.seed(h.seed)
        np.random.seed(h.seed)
        torch.manual_seed(h.seed)
        self.device = self.dist.device
        # Datasets are read before the model, so a bad row fails fast.
        train_rows = data.load_rows(sp.dataset_path, sp.method, "dataset.path")
        eval_rows = data.load_rows(sp.eval_path, sp.method, "dataset.eval_path") if sp.eval_path else None
        t0 = time.monotonic()
        self.backend = HFBackend(sp, self.device)
        self.model = self.backend.model
        log.info("loaded %s on %s in %.1fs (rank %d of %d)", sp.model, self.device, time.monotonic() - t0,
                 self.dist.rank, self.dist.world)
        tok = self.backend.tok
        self.train = data.encode(train_rows, sp.method, tok, h.max_length)
        if h.packing:
            n = len(self.train)
            self.train = data.pack(self.train, h.max_length)
            log.info("packing: %d rows into %d sequences of at most %d tokens", n, len(self.train), h.max_length)
        self.eval = data.encode(eval_rows, sp.method, tok, h.max_length) if eval_rows else None
        per_micro = h.batch_size * self.dist.world
        self.micro_per_epoch = math.ceil(len(self._order(0)) / per_micro)
        self.total = h.max_steps or math.ceil(h.epochs * self.micro_per_epoch / h.gradient_accumulation)
        params = self.backend.trainable_parameters()
        if not params:
            raise SpecError("lora.target_modules: no trainable parameters")
        self.params = params
        self.train_model = self.model
        self.fsdp = sp.distributed.strategy == "fsdp" and self.dist.active
        self.ref = None
        if sp.method == "dpo" and not sp.lora.enabled:
            self.ref = copy.deepcopy(self.model).eval()
            for p in self.ref.parameters():
                p.requires_grad_(False)
        if self.fsdp:
            # FSDP2: every decoder layer and then the whole model sharded over the ranks
            # (all ranks built the same weights from the same seed or directory).
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import fully_shard
            mesh = init_device_mesh(self.device.type, (self.dist.world,))
            for m in [self.model] + ([self.ref] if self.ref is not None else []):
                for layer in m.model.layers:
                    fully_shard(layer, mesh=mesh)
                fully_shard(m, mesh=mesh)
            self.params = params = [p for p in self.model.parameters() if p.requires_grad]
            torch.manual_seed(h.seed + 1 + self.dist.rank)
        elif self.dist.active:
            # DDP broadcasts rank 0's weights; every rank then gets its own dropout stream.
            self.train_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            torch.manual_seed(h.seed + 1 + self.dist.rank)
        self.opt = torch.optim.AdamW(params, lr=h.learning_rate, weight_decay=h.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda") if self.backend.dtype == torch.float16 else None
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
        """The epoch's row order: a permutation from seed and epoch, padded (by repeating its
        start) to a multiple of the world size so every rank gets as many rows."""
        perm = [int(i) for i in np.random.RandomState([self.sp.hyper.seed, epoch]).permutation(len(self.train))]
        return perm + perm[:(-len(perm)) % self.dist.world]

    @staticmethod
    def _fresh_acc():
        return {"loss": 0.0, "steps": 0, "tokens": 0, "samples": 0, "rewards_chosen": 0.0,
                "rewards_rejected": 0.0, "reward_accuracy": 0.0}

    # ---- data --------------------------------------------------------------------------------
    def next_micro_batch(self):
        """This rank's share of the next micro-batch: batch_size rows of every world-size
        slice of the epoch order (a DistributedSampler over the permutation)."""
        n = self.sp.hyper.batch_size * self.dist.world
        chunk = self.order[self.pos:self.pos + n]
        self.pos += len(chunk)
        if self.pos >= len(self.order):
            self.epoch += 1
            self.pos = 0
            self.order = self._order(self.epoch)
        return [self.train[i] for i in chunk[self.dist.rank::self.dist.world]]

    def epoch_float(self):
        return round(self.epoch + self.pos / max(1, len(self.order)), 4)

    # ---- losses ------------------------------------------------------------------------------
    def _batch(self, examples, method):
        ids, labels, mask, pos = data.batch(examples, method, self.backend.tok.pad_id)
        return (ids.to(self.device), labels.to(self.device), mask.to(self.device),
                None if pos is None else pos.to(self.device))

    def sft_loss(self, examples, model):
        ids, labels, mask, pos = self._batch(examples, "sft")
        logits = self.backend.logits(model, ids, mask, pos)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                               ignore_index=data.IGNORE)
        return loss, {"tokens": int(mask.sum()), "samples": len(examples)}

    def dpo_loss(self, examples, model):
        ids, labels, mask, _ = self._batch(examples, "dpo")
        n = len(examples)
        pol, _ = seq_logps(self.backend.logits(model, ids, mask), labels)
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

    def loss(self, examples, model=None):
        model = self.model if model is None else model
        return self.sft_loss(examples, model) if self.sp.method == "sft" else self.dpo_loss(examples, model)

    def evaluate(self):
        """Loss (and DPO rewards) over the eval set, each rank on its slice, summed over ranks."""
        self.model.eval()
        bs = self.sp.hyper.batch_size
        mine = self.eval[self.dist.rank::self.dist.world]
        tot = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # loss*weight, weight, rewards_chosen, rejected, accuracy, rows
        with torch.no_grad():
            for i in range(0, len(mine), bs):
                chunk = mine[i:i + bs]
                loss, st = self.loss(chunk)
                w = sum(1 for l in chunk for x in l[1] if x != data.IGNORE) if self.sp.method == "sft" else len(chunk)
                tot[0] += float(loss) * w
                tot[1] += w
                for j, k in enumerate(("rewards_chosen", "rewards_rejected", "reward_accuracy")):
                    if k in st:
                        tot[2 + j] += st[k] * len(chunk)
                tot[5] += len(chunk)
        tot = self.dist.sum(tot)
        self.model.train()
        out = {"eval_loss": tot[0] / max(1, tot[1])}
        if self.sp.method == "dpo":
            n = max(1, tot[5])
            out.update(eval_rewards_chosen=tot[2] / n, eval_rewards_rejected=tot[3] / n,
                       eval_reward_accuracy=tot[4] / n)
            out["eval_reward_margin"] = out["eval_rewards_chosen"] - out["eval_rewards_rejected"]
        return out

    # ---- checkpoints -------------------------------------------------------------------------
    def fsdp_state(self):
        """FSDP: the sharded model and optimizer state dicts (torch.distributed.checkpoint)."""
        from torch.distributed.checkpoint.state_dict import get_state_dict
        model, optim = get_state_dict(self.model, self.opt)
        return {"model": model, "optim": optim}

    def fsdp_load(self, state):
        from torch.distributed.checkpoint.state_dict import set_state_dict
        set_state_dict(self.model, self.opt, model_state_dict=state["model"], optim_state_dict=state["optim"])

    def save_checkpoint(self):
        self.rep.phase("checkpointing")
        t0 = time.monotonic()
        path = checkpoint.save_run(self)
        self.since_save = [0.0, 0]
        self.last_save_step = self.step
        if path is None:
            return
        kept, best = checkpoint.rotate(self.ckpt_root, self.sp.checkpoints.keep_last, self.sp.checkpoints.keep_best)
        rel = os.path.relpath(path, self.job_dir)
        self.rep.update(latest_checkpoint=rel,
                        best_checkpoint=os.path.relpath(best, self.job_dir) if best else None)
        log.info("checkpoint %s saved in %.2fs (kept steps %s)", rel, time.monotonic() - t0, kept)

    def resume(self):
        if self.dist.is_main:
            checkpoint.clean_temporaries(self.ckpt_root)
        path = checkpoint.latest_verified(self.ckpt_root) if self.dist.is_main else None
        path = self.dist.broadcast_object(path)  # every rank resumes from the one rank 0 verified
        if path is None:
            return
        t0 = time.monotonic()
        checkpoint.resume_run(self, path)
        rel = os.path.relpath(path, self.job_dir)
        best = None
        if self.dist.is_main:
            _, best = checkpoint.rotate(self.ckpt_root, self.sp.checkpoints.keep_last, self.sp.checkpoints.keep_best)
        self.rep.update(step=self.step, epoch=self.epoch_float(), latest_checkpoint=rel, resumed_from=rel,
                        best_checkpoint=os.path.relpath(best, self.job_dir) if best else None)
        log.info("resumed from %s (step %d) in %.2fs", rel, self.step, time.monotonic() - t0)

    # ---- final model -------------------------------------------------------------------------
    def save_model(self):
        """Rank 0 writes model/ under a temporary name and renames it; all ranks return together."""
        full = None
        if self.fsdp:  # the full weights, gathered on every rank (a collective), kept on rank 0
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
            full = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if not self.dist.is_main:
            self.dist.barrier()
            return
        out = os.path.join(self.job_dir, layout.MODEL_DIR)
        tmp = os.path.join(self.job_dir, ".model.tmp-%d" % os.getpid())
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
        os.mkdir(tmp)
        self.backend.save_final(tmp, state_dict=full)
        with open(os.path.join(tmp, layout.TRAINING_STATE_JSON), "w") as f:
            json.dump({"step": self.step, "total_steps": self.total, "method": self.sp.method,
                       "model": self.sp.model, "lora": self.sp.lora.enabled, "world_size": self.dist.world},
                      f, indent=2, sort_keys=True)
        files = fsio.manifest_of(tmp)
        for name in files:
            with open(os.path.join(tmp, name), "rb") as f:
                os.fsync(f.fileno())
        fsio.write_durable(os.path.join(tmp, layout.MANIFEST_JSON),
                           checkpoint.json_bytes({"format": 1, "step": self.step, "files": files}))
        fsio.fsync_tree(tmp)
        if os.path.exists(out):
            old = os.path.join(self.job_dir, ".model.old-%d" % os.getpid())
            os.rename(out, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, out)
        fsio.fsync_dir(self.job_dir)
        self.dist.barrier()

    def already_completed(self):
        """True when model/ holds a verified final model of this run (a requeue after the end)."""
        out = os.path.join(self.job_dir, layout.MODEL_DIR)
        try:
            with open(os.path.join(out, layout.MANIFEST_JSON), "rb") as f:
                man = json.loads(f.read())
            with open(os.path.join(out, layout.TRAINING_STATE_JSON), "rb") as f:
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

    def stop_wanted_here(self):
        """This rank's vote at a step boundary: a signal reached it, or (rank 0) control.json
        asks for a pause or the batch script wrote stop.json."""
        if self.stop.requested:
            return True
        if self.dist.is_main:
            if stop_file_present(self.job_dir):
                self.stop.request("stop.json")
                return True
            if read_control(self.job_dir) == "pause":
                self.stop.request("control.json")
                return True
        return False

    def train_step(self):
        """One optimizer step over gradient_accumulation micro-batches. Returns the stats of
        this rank: [loss, tokens, samples, rewards_chosen, rewards_rejected, reward_accuracy]."""
        h = self.sp.hyper
        self.opt.zero_grad(set_to_none=True)
        step_loss, stats = 0.0, {}
        for i in range(h.gradient_accumulation):
            last = i == h.gradient_accumulation - 1
            sync = contextlib.nullcontext() if (last or not self.dist.active or self.fsdp) else self.train_model.no_sync()
            with sync:
                loss, st = self.loss(self.next_micro_batch(), self.train_model)
                scaled = loss / h.gradient_accumulation
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            step_loss += float(loss.detach()) / h.gradient_accumulation
            for k, v in st.items():
                stats[k] = stats.get(k, 0) + v
        if not math.isfinite(step_loss):
            raise RuntimeError("loss is %s at step %d" % (step_loss, self.step + 1))
        if self.scaler:
            self.scaler.unscale_(self.opt)
        torch.nn.utils.clip_grad_norm_(self.params, MAX_GRAD_NORM)
        if self.scaler:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        ga = h.gradient_accumulation
        return [step_loss, stats["tokens"], stats["samples"], stats.get("rewards_chosen", 0.0) / ga,
                stats.get("rewards_rejected", 0.0) / ga, stats.get("reward_accuracy", 0.0) / ga]

    def run(self):
        """Trains to the end or until a stop; returns the exit code (the same on every rank)."""
        self.setup()
        sp, h = self.sp, self.sp.hyper
        if self.already_completed():
            log.info("model/ already holds the final model of this job; nothing to do")
            self.rep.phase("completed", step=self.total, latest_checkpoint=None)
            return EXIT_OK
        self.resume()
        self.model.train()
        step_sleep = hooks.step_sleep()
        self.rep.phase("training")
        self.t_log = t_start = time.monotonic()
        start_step = self.step
        self.lr = lr_at(self.step, h.learning_rate, h.warmup_steps, self.total)
        world = self.dist.world
        stopping = False
        while self.step < self.total and not stopping:
            self.lr = lr_at(self.step, h.learning_rate, h.warmup_steps, self.total)
            for g in self.opt.param_groups:
                g["lr"] = self.lr
            mine = self.train_step()
            # One all-reduce per step: the ranks' stats and their stop votes.
            tot = self.dist.sum(mine + [1.0 if self.stop_wanted_here() else 0.0])
            stopping = tot[6] > 0
            step_loss = tot[0] / world
            self.step += 1
            a = self.acc
            a["loss"] += step_loss
            a["steps"] += 1
            a["tokens"] += int(tot[1])
            a["samples"] += int(tot[2])
            if sp.method == "dpo":
                a["rewards_chosen"] += tot[3] / world
                a["rewards_rejected"] += tot[4] / world
                a["reward_accuracy"] += tot[5] / world
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
            log.info("completed %d steps; model in %s", self.step, os.path.join(self.job_dir, layout.MODEL_DIR))
            return EXIT_OK
        log.info("stop requested (%s) at step %d", self.stop.signame or "another rank", self.step)
        if self.last_save_step != self.step and self.step > 0:
            self.save_checkpoint()
        pause = self.dist.broadcast_object(read_control(self.job_dir) == "pause" if self.dist.is_main else None)
        if pause:
            self.rep.phase("paused")
            if self.dist.is_main:
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

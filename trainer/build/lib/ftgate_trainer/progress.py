"""progress.json (replaced atomically), metrics.jsonl (appended) and TensorBoard scalars."""

import datetime
import logging
import os
import time

from . import fsio, layout

log = logging.getLogger("ftgate_trainer")

SCHEMA_VERSION = 1
PHASES = ("starting", "loading", "training", "checkpointing", "paused", "interrupted", "completed", "failed")


def _now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Reporter:
    """Holds the latest progress and writes it at phase changes and every interval seconds."""

    def __init__(self, job_dir, interval=5.0, restart_count=0):
        self.job_dir = job_dir
        self.path = os.path.join(job_dir, layout.PROGRESS_JSON)
        self.metrics_path = os.path.join(job_dir, layout.METRICS_JSONL)
        self.interval = interval
        self.started = time.monotonic()
        self.last_write = 0.0
        self.tb = None
        self.state = {
            "schema_version": SCHEMA_VERSION, "phase": "starting", "method": None, "step": 0, "total_steps": 0,
            "epoch": 0.0, "loss": None, "eval_loss": None, "learning_rate": None, "tokens_per_second": None,
            "samples_per_second": None, "eta_seconds": None, "elapsed_seconds": 0.0,
            "restart_count": restart_count, "resumed_from": None, "latest_checkpoint": None,
            "best_checkpoint": None, "error": None, "pid": os.getpid(), "updated_at": None,
        }

    def update(self, **fields):
        self.state.update(fields)

    def phase(self, phase, **fields):
        """Sets the phase and writes progress.json now."""
        assert phase in PHASES, phase
        self.state.update(fields, phase=phase)
        self.write()

    def tick(self):
        """Writes progress.json if the interval has passed."""
        if time.monotonic() - self.last_write >= self.interval:
            self.write()

    def write(self):
        self.state["elapsed_seconds"] = round(time.monotonic() - self.started, 3)
        self.state["updated_at"] = _now_iso()
        try:
            fsio.replace_json(self.path, self.state)
        except OSError as e:
            log.error("cannot write %s: %s", self.path, e)
        self.last_write = time.monotonic()

    def metrics(self, row):
        """Appends one line to metrics.jsonl and mirrors numeric fields to TensorBoard."""
        fsio.append_line(self.metrics_path, row)
        if self.tb is None:
            self.tb = self._open_tensorboard()
        if self.tb:
            for k, v in row.items():
                if k not in ("step", "time", "restart_count") and isinstance(v, (int, float)):
                    self.tb.add_scalar(k, v, row["step"])
            self.tb.flush()

    def _open_tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:  # a dependency (pyproject.toml); say so instead of failing the job
            log.warning("TensorBoard scalars off: %s", e)
            return False
        return SummaryWriter(os.path.join(self.job_dir, layout.TENSORBOARD_DIR))

    def close(self):
        if self.tb:
            self.tb.close()


class QuietReporter(Reporter):
    """The reporter of ranks other than 0: keeps the state, writes nothing."""

    def write(self):
        self.last_write = time.monotonic()

    def metrics(self, row):
        pass

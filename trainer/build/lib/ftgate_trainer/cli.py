"""`python -m ftgate_trainer --job-dir DIR [--signal USR2]`.

Signal handlers are installed before torch is imported, so a checkpoint signal that
arrives while the trainer starts is never fatal."""

import argparse
import logging
import os
import signal
import sys
import traceback

from . import EXIT_BAD_INPUT, EXIT_FAILURE, fsio, layout, progress, spec

# Overrides the device (cpu, cuda, cuda:1); by default cuda:LOCAL_RANK when CUDA is available.
DEVICE_ENV = "FTGATE_TRAINER_DEVICE"

log = logging.getLogger("ftgate_trainer")


class Stop:
    """Set by the signal handlers; the loop checks it between optimizer steps. A handler
    only sets fields, so a second signal during a save changes nothing on disk."""

    def __init__(self):
        self.requested = False
        self.signame = None
        self.count = 0

    def request(self, why):
        self.count += 1
        if not self.requested:
            self.requested = True
            self.signame = why
        log.warning("stop requested by %s (%d so far): will checkpoint after the current step", why, self.count)

    def handler(self, signum, frame):
        self.request(signal.Signals(signum).name)


def parse_signal(v):
    """Accepts USR2, SIGUSR2 or a number."""
    name = v.strip().upper()
    if name.isdigit():
        try:
            return signal.Signals(int(name))
        except ValueError:
            pass
    else:
        if not name.startswith("SIG"):
            name = "SIG" + name
        if hasattr(signal.Signals, name):
            return signal.Signals[name]
    raise argparse.ArgumentTypeError("unknown signal %r" % v)


def _threads():
    """torch's thread count: FTGATE_TRAINER_THREADS, else this node's share of the Slurm
    task's CPUs (torchrun runs LOCAL_WORLD_SIZE trainer processes in one task)."""
    v = os.environ.get("FTGATE_TRAINER_THREADS", "")
    if v.isdigit() and int(v) > 0:
        return int(v)
    v = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if v.isdigit() and int(v) > 0:
        local = os.environ.get("LOCAL_WORLD_SIZE", "1")
        return max(1, int(v) // (int(local) if local.isdigit() and int(local) > 0 else 1))
    return None


def _restart_count():
    v = os.environ.get("SLURM_RESTART_COUNT", "")
    return int(v) if v.isdigit() else 0


def main(argv=None):
    if (sys.argv[1:] if argv is None else argv) == ["--check"]:
        from . import check
        return check.main()
    # Models come from local directories only: never reach for the Hugging Face Hub.
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_HUB_DISABLE_TELEMETRY"):
        os.environ.setdefault(k, "1")
    ap = argparse.ArgumentParser(prog="python -m ftgate_trainer", description="Run one ftgate training job.")
    ap.add_argument("--job-dir", required=True, help="job directory holding job.json")
    # --checkpoint-signal under torchrun: its argument parser would take --signal for an
    # abbreviation of its own --signals-to-handle.
    ap.add_argument("--checkpoint-signal", "--signal", dest="signal", type=parse_signal, default=signal.SIGUSR2,
                    help="checkpoint signal (default USR2); SIGTERM is always handled too")
    args = ap.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                            format="%(asctime)s %(levelname)s ftgate_trainer: %(message)s")
    stop = Stop()
    for sig in {args.signal, signal.SIGTERM}:
        signal.signal(sig, stop.handler)
    job_dir = os.path.abspath(args.job_dir)
    if not os.path.isdir(job_dir):
        log.error("--job-dir: %s is not a directory", job_dir)
        return EXIT_BAD_INPUT
    main_rank = os.environ.get("RANK", "0") in ("", "0")  # torchrun's rank; torch is not imported yet
    reporter = progress.Reporter if main_rank else progress.QuietReporter
    rep = reporter(job_dir, restart_count=_restart_count())
    if main_rank:
        # A stale exit code from an earlier run must not speak for this one.
        try:
            os.unlink(os.path.join(job_dir, layout.EXIT_CODE_FILE))
        except FileNotFoundError:
            pass
    rep.phase("starting")
    code = _run(job_dir, rep, stop)
    if main_rank:
        try:
            fsio.replace_atomic(os.path.join(job_dir, layout.EXIT_CODE_FILE), b"%d\n" % code)
        except OSError as e:
            log.error("cannot write %s: %s", layout.EXIT_CODE_FILE, e)
    return code


def _run(job_dir, rep, stop):
    d = None
    try:
        import torch

        from . import dist, train
        n = _threads()
        if n:
            torch.set_num_threads(n)
        d = dist.Dist(os.environ.get(DEVICE_ENV))
        code = train.Trainer(job_dir, rep, stop, d).run()
    except spec.SpecError as e:
        log.error("bad input: %s", e)
        rep.phase("failed", error=str(e))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        rep.phase("failed", error="interrupted by SIGINT")
        return 130
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        rep.phase("failed", error="%s: %s" % (type(e).__name__, e))
        return EXIT_FAILURE
    finally:
        rep.close()
        if d is not None:
            d.close()
    return code

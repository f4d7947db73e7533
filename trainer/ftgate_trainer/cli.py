"""`python -m ftgate_trainer --job-dir DIR [--signal USR2]`.

Signal handlers are installed before torch is imported, so a checkpoint signal that
arrives while the trainer starts is never fatal."""

import argparse
import logging
import os
import signal
import sys
import traceback

from . import EXIT_BAD_INPUT, EXIT_FAILURE, progress, spec

log = logging.getLogger("ftgate_trainer")


class Stop:
    """Set by the signal handlers; the loop checks it between optimizer steps. A handler
    only sets fields, so a second signal during a save changes nothing on disk."""

    def __init__(self):
        self.requested = False
        self.signame = None
        self.count = 0

    def handler(self, signum, frame):
        self.count += 1
        if not self.requested:
            self.requested = True
            self.signame = signal.Signals(signum).name
        log.warning("received %s (%d so far): will checkpoint after the current step",
                    signal.Signals(signum).name, self.count)


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
    for key in ("FTGATE_TRAINER_THREADS", "SLURM_CPUS_PER_TASK"):
        v = os.environ.get(key, "")
        if v.isdigit() and int(v) > 0:
            return int(v)
    return None


def _restart_count():
    v = os.environ.get("SLURM_RESTART_COUNT", "")
    return int(v) if v.isdigit() else 0


def main(argv=None):
    if (sys.argv[1:] if argv is None else argv) == ["--check"]:
        from . import check
        return check.main()
    ap = argparse.ArgumentParser(prog="python -m ftgate_trainer", description="Run one ftgate training job.")
    ap.add_argument("--job-dir", required=True, help="job directory holding job.json")
    ap.add_argument("--signal", type=parse_signal, default=signal.SIGUSR2,
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
    rep = progress.Reporter(job_dir, restart_count=_restart_count())
    rep.phase("starting")
    try:
        import torch

        from . import train
        n = _threads()
        if n:
            torch.set_num_threads(n)
        code = train.Trainer(job_dir, rep, stop).run()
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
    return code

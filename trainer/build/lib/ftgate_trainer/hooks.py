"""Test hooks: environment variables that only tests set, never jobs. All in one place so
a reader sees everything that can change the trainer's behaviour from outside the Spec."""

import os

# Seconds to sleep after every optimizer step, so tests can signal mid-run.
STEP_SLEEP_ENV = "FTGATE_TRAINER_TEST_STEP_SLEEP"
# Seconds to sleep after each 64 KiB chunk of a durable write: widens the window in which a
# crash lands mid-write (the crash-safety test).
SLOW_WRITE_ENV = "FTGATE_TRAINER_TEST_SLOW_WRITE"
# Resizes builtin:tiny: "hidden,layers,heads,intermediate".
TINY_SIZE_ENV = "FTGATE_TRAINER_TINY"


def _float(name):
    try:
        return float(os.environ.get(name, "0") or 0)
    except ValueError:
        return 0.0


def step_sleep():
    return _float(STEP_SLEEP_ENV)


def slow_write():
    return _float(SLOW_WRITE_ENV)


def tiny_size(default):
    v = os.environ.get(TINY_SIZE_ENV)
    if not v:
        return default
    return tuple(int(x) for x in v.split(","))

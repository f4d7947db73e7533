"""Every trainer dependency is required (trainer/pyproject.toml): a missing one fails the
whole run at collection instead of skipping tests."""

import importlib

for _mod in ("torch", "numpy", "transformers", "peft", "safetensors", "tokenizers", "tensorboard"):
    try:
        importlib.import_module(_mod)
    except ImportError as _e:  # pragma: no cover - the point is to fail loudly
        raise SystemExit("trainer tests: required dependency %s does not import (%s): run make deps" % (_mod, _e))

import json
import os

import pytest

from helpers import SMALL, dpo_rows, sft_rows, spec, write_jsonl


@pytest.fixture
def make_job(tmp_path):
    """make_job(method, lora=False, name="job", **overrides) -> job dir with job.json and data."""
    def make(method, lora=False, name="job", rows=None, **over):
        d = tmp_path / name
        d.mkdir()
        data = tmp_path / ("%s-%s.jsonl" % (name, method))
        write_jsonl(data, rows if rows is not None else (sft_rows() if method == "sft" else dpo_rows()))
        with open(d / "job.json", "w") as f:
            json.dump(spec(method, str(data), lora=lora, **over), f)
        return str(d)
    return make


@pytest.fixture
def small_model(monkeypatch):
    monkeypatch.setenv("FTGATE_TRAINER_TINY", SMALL)



def _forbid_skip(rep):
    """The one skip rule of the trainer tests: under FTGATE_REQUIRE_STACK=1 (make test,
    CI) nothing may skip, so a skip (pytest.skip, importorskip, a skip mark, at
    collection or in a test) is reported as a failure with its reason."""
    if rep.skipped and os.environ.get("FTGATE_REQUIRE_STACK") == "1" and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = "FTGATE_REQUIRE_STACK=1 forbids skipping: %s" % reason


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _forbid_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _forbid_skip(outcome.get_result())

import json

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

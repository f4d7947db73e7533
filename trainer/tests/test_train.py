"""Learning, outputs, progress and metrics contracts, exit codes."""

import json
import os
import shutil

import pytest
import torch

from ftgate_trainer import checkpoint, fsio
from helpers import EXAMPLES, final_weights, metrics, progress, run_inprocess

PROGRESS_FIELDS = {"schema_version", "phase", "step", "total_steps", "epoch", "loss", "learning_rate",
                   "tokens_per_second", "samples_per_second", "eta_seconds", "elapsed_seconds", "restart_count",
                   "latest_checkpoint", "best_checkpoint", "error", "updated_at"}
METRIC_FIELDS = {"step", "epoch", "loss", "learning_rate", "tokens_per_second", "time"}


def test_sft_tiny_learns(make_job):
    d = make_job("sft", hyperparameters__max_steps=40, hyperparameters__batch_size=8,
                 logging__log_every=5)
    assert run_inprocess(d) == 0
    rows = metrics(d)
    first, last = rows[0]["loss"], rows[-1]["loss"]
    print("sft loss %.3f -> %.3f" % (first, last))
    assert last < 0.5 * first
    for r in rows:
        assert METRIC_FIELDS <= set(r), r
    prog = progress(d)
    assert PROGRESS_FIELDS <= set(prog)
    assert prog["phase"] == "completed" and prog["step"] == prog["total_steps"] == 40
    assert prog["error"] is None


def test_sft_tiny_lora_learns_with_default_targets(make_job):
    """peft LoRA with the default target modules (all linear layers, plus lm_head on the random
    builtin:tiny) must learn: the loss at least halves."""
    d = make_job("sft", lora=True, hyperparameters__max_steps=40, hyperparameters__batch_size=8,
                 hyperparameters__learning_rate=0.01, logging__log_every=5)
    path = os.path.join(d, "job.json")
    job = json.load(open(path))
    job["lora"] = {"enabled": True}  # defaults: r 8, alpha 16, no dropout, default targets
    json.dump(job, open(path, "w"))
    assert run_inprocess(d) == 0
    rows = metrics(d)
    first, last = rows[0]["loss"], rows[-1]["loss"]
    print("sft lora loss %.3f -> %.3f" % (first, last))
    assert last < 0.5 * first
    cfg = json.load(open(os.path.join(d, "model", "adapter_config.json")))
    assert "lm_head" in cfg["target_modules"] and "down_proj" in cfg["target_modules"]


def test_dpo_tiny_reaches_reward_accuracy(make_job):
    rows = [json.loads(line) for line in open(os.path.join(EXAMPLES, "dpo-train.jsonl"))]
    d = make_job("dpo", rows=rows, hyperparameters__max_steps=30, hyperparameters__batch_size=8,
                 hyperparameters__learning_rate=0.002, logging__log_every=10, logging__eval_every=30)
    job = json.load(open(os.path.join(d, "job.json")))
    job["dataset"]["eval_path"] = os.path.join(EXAMPLES, "dpo-eval.jsonl")
    json.dump(job, open(os.path.join(d, "job.json"), "w"))
    assert run_inprocess(d) == 0
    last = metrics(d)[-1]
    print("dpo at step %d: eval_reward_accuracy %.3f margin %.3f" % (last["step"], last["eval_reward_accuracy"],
                                                                     last["eval_reward_margin"]))
    assert last["eval_reward_accuracy"] >= 0.9
    assert last["eval_reward_margin"] > 0
    for k in ("rewards_chosen", "rewards_rejected", "reward_margin", "reward_accuracy"):
        assert k in last
    prog = progress(d)
    assert prog["eval_reward_accuracy"] == last["eval_reward_accuracy"]
    assert "reward_accuracy" in prog


def test_lora_trains_only_adapters_and_writes_adapter(make_job, small_model):
    d = make_job("sft", lora=True, hyperparameters__max_steps=6)
    assert run_inprocess(d) == 0
    files = set(os.listdir(os.path.join(d, "model")))
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "chat_template.jinja",
            "manifest.json", "training_state.json", "base"} <= files, files
    assert "model.safetensors" not in files
    sd = final_weights(d)
    assert sd and all(".lora_" in k for k in sd)
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in sd.items())
    cfg = json.load(open(os.path.join(d, "model", "adapter_config.json")))
    assert sorted(cfg["target_modules"]) == ["q_proj", "up_proj", "v_proj"] and cfg["r"] == 4


def test_model_manifest_verifies(make_job, small_model):
    d = make_job("sft", hyperparameters__max_steps=3)
    assert run_inprocess(d) == 0
    man = json.load(open(os.path.join(d, "model", "manifest.json")))
    assert {"model.safetensors", "config.json", "tokenizer.json", "training_state.json"} <= set(man["files"])
    for name, want in man["files"].items():
        p = os.path.join(d, "model", name)
        assert os.path.getsize(p) == want["size"] and fsio.sha256_file(p) == want["sha256"]


def test_requeue_after_completion_does_nothing(make_job, small_model):
    d = make_job("sft", hyperparameters__max_steps=3)
    assert run_inprocess(d) == 0
    before = open(os.path.join(d, "metrics.jsonl")).read()
    assert run_inprocess(d) == 0
    assert open(os.path.join(d, "metrics.jsonl")).read() == before
    assert progress(d)["phase"] == "completed"


def test_epochs_when_max_steps_is_zero(make_job, small_model):
    d = make_job("sft", rows=None, hyperparameters__max_steps=0, hyperparameters__epochs=2,
                 hyperparameters__batch_size=16, hyperparameters__gradient_accumulation=2, logging__log_every=100)
    assert run_inprocess(d) == 0
    prog = progress(d)
    # 64 rows / 16 = 4 micro-batches per epoch, 2 epochs, 2 per step -> 4 steps.
    assert prog["total_steps"] == 4 and prog["step"] == 4
    assert prog["epoch"] == 2.0


def _set(path, value):
    def edit(job):
        sec = job
        keys = path.split(".")
        for k in keys[:-1]:
            sec = sec[k]
        sec[keys[-1]] = value
    return edit


@pytest.mark.parametrize("edits,needle", [
    ([_set("dataset.path", "/nonexistent/train.jsonl")], "dataset.path: file not found"),
    ([_set("dataset.path", "relative.jsonl")], "dataset.path: must be an absolute path"),
    ([_set("quantization", "4bit"), _set("lora.enabled", True)], "quantization: 4bit needs a local model directory"),
    ([_set("quantization", "4bit")], "quantization: 4bit needs lora.enabled: true"),
    ([_set("lora.enabled", True), _set("lora.target_modules", ["nope_proj"])], "lora.target_modules: the model has no linear module 'nope_proj'"),
    ([_set("method", "ppo")], "method: must be sft or dpo"),
    ([_set("model", "/nonexistent/model")], "model:"),
    ([_set("hyperparameters.batch_size", -1)], "hyperparameters.batch_size: must be between 1 and 4096, got -1"),
    ([_set("hyperparameters.learning_rate", "fast")], "hyperparameters.learning_rate: must be a number"),
    ([_set("logging.typo", 1)], "logging.typo: unknown field"),
])
def test_bad_input_exits_2_with_named_field(make_job, small_model, edits, needle):
    d = make_job("sft")
    path = os.path.join(d, "job.json")
    job = json.load(open(path))
    for e in edits:
        e(job)
    json.dump(job, open(path, "w"))
    assert run_inprocess(d) == 2
    prog = progress(d)
    assert prog["phase"] == "failed"
    assert needle in prog["error"], prog["error"]


def test_bad_row_names_line_and_field(make_job, small_model):
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "a", "completion": "b"}, {"prompt": "a"}]
    d = make_job("sft", rows=rows)
    assert run_inprocess(d) == 2
    assert progress(d)["error"] == "dataset.path line 3: field 'completion': must be a string, got nothing"


def test_missing_job_json_exits_2(tmp_path):
    assert run_inprocess(str(tmp_path)) == 2
    assert "job.json: not found" in progress(str(tmp_path))["error"]


def test_other_failure_exits_1_with_traceback(make_job, small_model, capfd):
    d = make_job("sft", hyperparameters__max_steps=4, logging__save_every=2)
    open(os.path.join(d, "checkpoints"), "w").close()  # a file where the directory must go
    assert run_inprocess(d) == 1
    prog = progress(d)
    assert prog["phase"] == "failed" and "Error" in prog["error"]
    assert "Traceback" in capfd.readouterr().err


def test_broken_newest_checkpoint_is_skipped(make_job, small_model, caplog):
    d = make_job("sft", hyperparameters__max_steps=6, logging__save_every=2,
                 checkpoints={"keep_last": 5, "keep_best": 0})
    a = make_job("sft", name="a", hyperparameters__max_steps=6, logging__save_every=2,
                 checkpoints={"keep_last": 5, "keep_best": 0})
    assert run_inprocess(a) == 0
    shutil.copytree(os.path.join(a, "checkpoints"), os.path.join(d, "checkpoints"))
    assert sorted(os.listdir(os.path.join(d, "checkpoints"))) == ["step-2", "step-4"]
    with open(os.path.join(d, "checkpoints", "step-4", "model.pt"), "r+b") as f:
        f.seek(100)
        f.write(b"\0garbage")
    assert checkpoint.verify(os.path.join(d, "checkpoints", "step-4")) == "checksum mismatch for model.pt"
    assert run_inprocess(d) == 0
    assert progress(d)["resumed_from"] == "checkpoints/step-2"
    assert "skipping broken checkpoint" in caplog.text

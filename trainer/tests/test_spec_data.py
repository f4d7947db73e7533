"""Spec validation and dataset parsing: defaults, and errors that name the field or line."""

import json

import pytest

from ftgate_trainer import data, spec
from ftgate_trainer.spec import SpecError
from ftgate_trainer import tiny
from ftgate_trainer.backend import HFTokenizer


def ByteTokenizer():
    return HFTokenizer(tiny.tokenizer())


def base(**over):
    s = {"method": "sft", "model": "builtin:tiny", "dataset": {"path": "/d/train.jsonl"}}
    s.update(over)
    return s


def test_defaults_and_go_zero_values():
    # The gateway's Go Spec marshals every field; zero means "default" where 0 is meaningless.
    s = spec.parse(base(hyperparameters={"learning_rate": 0, "epochs": 0, "max_steps": 0, "batch_size": 0,
                                         "gradient_accumulation": 0, "max_length": 0, "warmup_steps": 0,
                                         "seed": 0, "dpo_beta": 0, "weight_decay": 0},
                        lora={"enabled": False, "r": 0, "alpha": 0, "dropout": 0, "target_modules": None},
                        quantization="", logging={"log_every": 0, "eval_every": 0, "save_every": 0,
                                                  "progress_interval_seconds": 0},
                        checkpoints={"keep_last": 0, "keep_best": 0}, name="x",
                        resources={"cluster": "dev", "gpus": 1},
                        notify={"webhook": {"url": "https://hooks.example/x", "events": ["job.failed"]}}))
    h = s.hyper
    assert (h.learning_rate, h.epochs, h.max_steps, h.batch_size, h.gradient_accumulation, h.max_length,
            h.seed, h.dpo_beta) == (1e-4, 1, 0, 8, 1, 512, 0, 0.1)
    assert s.quantization == "none" and not s.lora.enabled
    assert (s.logging.log_every, s.logging.eval_every, s.logging.save_every,
            s.logging.progress_interval_seconds) == (10, 50, 50, 5.0)
    assert (s.checkpoints.keep_last, s.checkpoints.keep_best) == (2, 0)
    assert s.eval_path is None


def test_lora_defaults():
    s = spec.parse(base(lora={"enabled": True}))
    assert (s.lora.r, s.lora.alpha, s.lora.merge) == (8, 16, False)
    assert s.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.mark.parametrize("obj,msg", [
    ([], "job.json: must be a JSON object"),
    (base(method=None), "method: must be sft or dpo, got null"),
    (base(model=""), "model: is required"),
    (base(model="models/x"), "model: must be an absolute path"),
    (base(dataset={}), "dataset.path: is required"),
    (base(dataset={"path": "/a/../b"}), "dataset.path: must be a clean path"),
    (base(dataset={"path": "/a", "eval_path": "b"}), "dataset.eval_path: must be an absolute path"),
    (base(dataset={"path": "/a", "extra": 1}), "dataset.extra: unknown field"),
    (base(surprise=1), "surprise: unknown field"),
    (base(hyperparameters={"epochs": 1.5}), "hyperparameters.epochs: must be an integer, got 1.5"),
    (base(hyperparameters={"batch_size": True}), "hyperparameters.batch_size: must be an integer, got true"),
    (base(hyperparameters={"learning_rate": 2}), "hyperparameters.learning_rate: must be > 0 and <= 1, got 2"),
    (base(hyperparameters={"learning_rate": -1}), "hyperparameters.learning_rate: must be > 0"),
    (base(hyperparameters={"seed": -1}), "hyperparameters.seed: must be between 0 and 2147483647, got -1"),
    (base(hyperparameters={"weight_decay": 2}), "hyperparameters.weight_decay: must be >= 0 and <= 1"),
    (base(lora={"enabled": "yes"}), "lora.enabled: must be true or false"),
    (base(lora={"enabled": True, "target_modules": ["q_proj", "rm -rf /"]}), "lora.target_modules[1]: must match"),
    (base(lora={"enabled": True, "dropout": 1}), "lora.dropout: must be >= 0 and <= 0.99, got 1"),
    (base(quantization="2bit"), "quantization: must be none, 8bit or 4bit"),
    (base(quantization="8bit"), "quantization: 8bit needs lora.enabled: true"),
    (base(logging={"save_every": -5}), "logging.save_every: must be between 1 and 1000000, got -5"),
    (base(checkpoints={"keep_last": 101}), "checkpoints.keep_last: must be between 1 and 100, got 101"),
    (base(checkpoints="many"), "checkpoints: must be an object"),
    (base(hyperparameters={"precision": "fp8"}), "hyperparameters.precision: must be one of auto, bf16, fp16, fp32"),
    (base(hyperparameters={"packing": 1}), "hyperparameters.packing: must be true or false"),
    (base(hyperparameters={"gradient_checkpointing": "yes"}), "hyperparameters.gradient_checkpointing: must be true"),
    (base(method="dpo", hyperparameters={"packing": True}), "hyperparameters.packing: only for method sft"),
    (base(lora={"enabled": True, "merge": "no"}), "lora.merge: must be true or false"),
    (base(distributed={"strategy": "zero3"}), "distributed.strategy: must be one of ddp, fsdp"),
    (base(distributed={"strategy": "fsdp"}, lora={"enabled": True}), "distributed.strategy: fsdp is for full"),
    (base(distributed={"nodes": 2}), "distributed.nodes: unknown field"),
])
def test_spec_errors_name_the_field(obj, msg):
    with pytest.raises(SpecError) as e:
        spec.parse(obj)
    assert str(e.value).startswith(msg), str(e.value)


def test_load_reports_malformed_json(tmp_path):
    p = tmp_path / "job.json"
    p.write_text("{")
    with pytest.raises(SpecError, match="job.json: malformed JSON"):
        spec.load(str(p))


def write(tmp_path, lines):
    p = tmp_path / "d.jsonl"
    p.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
    return str(p)


@pytest.mark.parametrize("method,lines,msg", [
    ("sft", ['{"prompt": "a", "completion": "b"}', "{oops"], "dataset.path line 2: malformed JSON"),
    ("sft", [[1, 2]], "dataset.path line 1: want a JSON object, got list"),
    ("sft", [{"prompt": "a", "completion": ""}], "dataset.path line 1: field 'completion': must not be empty"),
    ("sft", [{"prompt": 3, "completion": "x"}], "dataset.path line 1: field 'prompt': must be a string, got 3"),
    ("sft", [{"foo": "bar"}], "dataset.path line 1: want fields {prompt, completion}, {messages} or {text}"),
    ("sft", ["", {"messages": []}], "dataset.path line 2: field 'messages': must be a non-empty list"),
    ("sft", [{"messages": [{"role": "user", "content": "hi"}]}], "dataset.path line 1: field 'messages': the last message must be"),
    ("sft", [{"messages": [{"role": "robot", "content": "hi"}]}], "dataset.path line 1: field 'messages[0]'.role"),
    ("dpo", [{"prompt": "p", "chosen": "a"}], "dataset.path line 1: field 'rejected': must be a string, got nothing"),
    ("dpo", [], "dataset.path: "),
])
def test_bad_rows_name_line_and_field(tmp_path, method, lines, msg):
    with pytest.raises(SpecError) as e:
        data.load_rows(write(tmp_path, lines), method, "dataset.path")
    assert str(e.value).startswith(msg), str(e.value)


def test_all_sft_row_shapes_and_labels(tmp_path):
    rows = data.load_rows(write(tmp_path, [
        {"prompt": "ab", "completion": "cd"},
        {"text": "xyz"},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "id": 7},
    ]), "sft", "dataset.path")
    tok = ByteTokenizer()
    (ids0, lab0), (ids1, lab1), (ids2, lab2) = data.encode(rows, "sft", tok, 64)
    assert ids0 == [256, 97, 98, 99, 100, 257]
    assert lab0 == [-100, -100, -100, 99, 100, 257]
    assert lab1 == [-100, 120, 121, 122, 257]
    prompt = "<|user|>\nhi\n<|assistant|>\n"
    assert tok.decode(ids2) == prompt + "yo"
    assert lab2 == [-100] * (1 + len(prompt)) + [121, 111, 257]


def test_truncation_keeps_the_completion(tmp_path):
    tok = ByteTokenizer()
    [(ids, labels)] = data.encode([("plain", "p" * 50, "c" * 5)], "sft", tok, 10)
    assert len(ids) == 10 and ids[0] == 256 and tok.decode(ids) == "ppp" + "c" * 5
    assert labels[-6:] == [99] * 5 + [257]
    [(ids, labels)] = data.encode([("plain", "p", "c" * 50)], "sft", tok, 10)
    assert len(ids) == 10 and all(l != -100 for l in labels[1:])


def test_dpo_batch_layout():
    tok = ByteTokenizer()
    ex = data.encode([("q", "yes", "no")], "dpo", tok, 32)
    ids, labels, mask, pos = data.batch(ex, "dpo", tok.pad_id)
    assert pos is None
    assert ids.shape[0] == 2
    assert tok.decode(ids[0].tolist()) == "qyes" and tok.decode(ids[1].tolist()) == "qno"
    assert mask[1].tolist() == [1, 1, 1, 1, 1, 0]

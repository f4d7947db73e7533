"""Spec features users of LLaMA-Factory/Axolotl expect, and what model/ gives them:
TensorBoard scalars, gradient checkpointing, precision, packing, the saved chat template,
a full model transformers loads, merged LoRA weights."""

import json
import os

import pytest
import torch

from ftgate_trainer import backend, data, spec, tiny
from helpers import metrics, progress, run_inprocess


def edit_job(d, fn):
    path = os.path.join(d, "job.json")
    job = json.load(open(path))
    fn(job)
    json.dump(job, open(path, "w"))


def test_tensorboard_event_files_hold_the_loss(make_job, small_model):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    d = make_job("sft", hyperparameters__max_steps=6)
    assert run_inprocess(d) == 0
    acc = EventAccumulator(os.path.join(d, "tensorboard"))
    acc.Reload()
    assert "loss" in acc.Tags()["scalars"] and "learning_rate" in acc.Tags()["scalars"]
    got = {e.step: e.value for e in acc.Scalars("loss")}
    want = {r["step"]: r["loss"] for r in metrics(d)}
    assert sorted(got) == list(range(1, 7))
    for s, v in want.items():
        assert got[s] == pytest.approx(v, rel=1e-6)


def losses(d):
    return [r["loss"] for r in metrics(d)]


def test_gradient_checkpointing_is_on_and_changes_no_result(make_job, small_model):
    a = make_job("sft", name="a", lora=True, hyperparameters__max_steps=5)
    b = make_job("sft", name="b", lora=True, hyperparameters__max_steps=5)
    edit_job(b, lambda j: j["hyperparameters"].update(gradient_checkpointing=True))
    sp = spec.load(os.path.join(b, "job.json"))
    be = backend.HFBackend(sp, torch.device("cpu"))
    assert be.model.base_model.model.is_gradient_checkpointing
    assert run_inprocess(a) == 0 and run_inprocess(b) == 0
    assert losses(a) == pytest.approx(losses(b), rel=1e-5)


def test_precision(make_job, small_model):
    a = make_job("sft", name="a", hyperparameters__max_steps=8)
    b = make_job("sft", name="b", hyperparameters__max_steps=8)
    edit_job(b, lambda j: j["hyperparameters"].update(precision="bf16"))
    assert run_inprocess(a) == 0 and run_inprocess(b) == 0
    la, lb = losses(a), losses(b)
    print("fp32 %s\nbf16 %s" % (la, lb))
    assert la != lb, "bf16 autocast must change the numerics"
    assert lb == pytest.approx(la, rel=0.05)
    assert backend.compute_dtype("auto", torch.device("cpu")) == torch.float32
    c = make_job("sft", name="c")
    edit_job(c, lambda j: j["hyperparameters"].update(precision="fp16"))
    assert run_inprocess(c) == 2
    assert progress(c)["error"].startswith("hyperparameters.precision: fp16 needs a CUDA GPU")


def test_packing_masks_attention_between_examples(small_model):
    tok = backend.HFTokenizer(tiny.tokenizer())
    ex = data.encode([("plain", "upper: kalo\n", "KALO"), ("plain", "upper: zanvel\n", "ZANVEL")], "sft", tok, 64)
    [packed] = data.pack(ex, 64)
    assert packed[0] == ex[0][0] + ex[1][0] and packed[2] == list(range(len(ex[0][0]))) + list(range(len(ex[1][0])))
    sp = spec.parse({"method": "sft", "model": "builtin:tiny", "dataset": {"path": "/d"}})
    be = backend.HFBackend(sp, torch.device("cpu"))
    be.model.eval()
    ids, _, _, pos = data.batch([packed], "sft", tok.pad_id)
    with torch.no_grad():
        both = be.logits(be.model, ids, None, pos)[0, len(ex[0][0]):]
        alone = be.logits(be.model, torch.tensor([ex[1][0]]), torch.ones(1, len(ex[1][0]), dtype=torch.long))[0]
    assert torch.allclose(both, alone, atol=1e-5), "the second packed example saw the first"


def test_packing_run_needs_fewer_steps_per_epoch(make_job, small_model):
    a = make_job("sft", name="a", hyperparameters__max_steps=0, hyperparameters__epochs=1)
    b = make_job("sft", name="b", hyperparameters__max_steps=0, hyperparameters__epochs=1)
    edit_job(b, lambda j: j["hyperparameters"].update(packing=True, max_length=128))
    edit_job(a, lambda j: j["hyperparameters"].update(max_length=128))
    assert run_inprocess(a) == 0 and run_inprocess(b) == 0
    sa, sb = progress(a)["total_steps"], progress(b)["total_steps"]
    print("steps per epoch: %d unpacked, %d packed" % (sa, sb))
    assert sb < sa / 2


def test_chat_template_is_saved_and_reproduces_training_prompts(make_job, small_model):
    import transformers
    rows = [{"messages": [{"role": "system", "content": "be loud"}, {"role": "user", "content": "hi %d" % i},
                          {"role": "assistant", "content": "HI %d" % i}]} for i in range(16)]
    d = make_job("sft", rows=rows, hyperparameters__max_steps=3)
    assert run_inprocess(d) == 0
    tok = transformers.AutoTokenizer.from_pretrained(os.path.join(d, "model"), local_files_only=True)
    assert tok.chat_template == data.CHAT_TEMPLATE
    prompt = tok.apply_chat_template(rows[0]["messages"][:-1], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|system|>\nbe loud\n<|user|>\nhi 0\n<|assistant|>\n"


def test_full_model_loads_with_from_pretrained(make_job, small_model):
    import transformers
    d = make_job("sft", hyperparameters__max_steps=4)
    assert run_inprocess(d) == 0
    m = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(d, "model"), local_files_only=True)
    tok = transformers.AutoTokenizer.from_pretrained(os.path.join(d, "model"), local_files_only=True)
    ids = tok("upper: kalo1\n", return_tensors="pt").input_ids
    out = m.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False,
                     pad_token_id=tok.pad_token_id)
    assert out.shape[1] > ids.shape[1]


def test_lora_merge_writes_merged_weights_equal_to_adapter(make_job, small_model):
    import peft
    import transformers
    d = make_job("sft", lora=True, hyperparameters__max_steps=6, hyperparameters__learning_rate=0.02)
    edit_job(d, lambda j: j["lora"].update(merge=True, dropout=0.0))
    assert run_inprocess(d) == 0
    out = os.path.join(d, "model")
    base = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(out, "base"), local_files_only=True)
    lora = peft.PeftModel.from_pretrained(base, out).eval()
    merged = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(out, "merged"), local_files_only=True)
    ids = torch.tensor([[256, 117, 112, 112, 101, 114]])
    with torch.no_grad():
        a, b = lora(input_ids=ids).logits, merged.eval()(input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-4)
    plain = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(out, "base"), local_files_only=True)
    with torch.no_grad():
        assert not torch.allclose(plain(input_ids=ids).logits, b, atol=1e-4), "the adapter changed nothing"

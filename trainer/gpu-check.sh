#!/usr/bin/env bash
# trainer/gpu-check.sh: the trainer on a real CUDA GPU, in at most 8 minutes, with no network.
#
#   trainer/gpu-check.sh [WHEELS_DIR]
#
# Needs a Python with a stock CUDA PyTorch (>= 2.6) ($PYTHON, default python3). What else the
# trainer needs (transformers, peft, accelerate, safetensors, tokenizers, tensorboard,
# bitsandbytes, ...) is installed from WHEELS_DIR (default: gpu-wheels/ beside this script)
# into a venv that sees the system's torch, with pip --no-index. Prepare the directory on a
# machine with network:
#   pip download -d gpu-wheels -c trainer/constraints.txt transformers peft safetensors tokenizers \
#       tensorboard numpy bitsandbytes
# Optional: bin/ftctl (built with cgo) beside the repo for the NVML sampler check.
#
# It builds a small random Llama (bf16 compute), runs LoRA SFT and 4-bit QLoRA for some steps
# on CUDA, pauses one LoRA run by control.json and resumes it and compares it bitwise with an
# uninterrupted run, samples the GPU through NVML with `ftctl gpustat`, and prints tokens/s.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
wheels=${1:-$here/gpu-wheels}
python=${PYTHON:-python3}
work=$(mktemp -d /tmp/ftgate-gpu-check.XXXXXX)
t0=$SECONDS
say() { printf 'gpu-check [%3ds] %s\n' $((SECONDS - t0)) "$*"; }

"$python" -c 'import torch, sys; assert torch.cuda.is_available(), "no CUDA GPU visible"; print("torch", torch.__version__, torch.cuda.get_device_name(0))'
if ! "$python" -c 'import transformers, peft, bitsandbytes, tensorboard' 2>/dev/null; then
	[ -d "$wheels" ] || { echo "gpu-check: transformers/peft/bitsandbytes do not import and $wheels does not exist" >&2; exit 2; }
	say "installing from $wheels (no network)"
	"$python" -m venv --system-site-packages "$work/venv"
	"$work/venv/bin/python" -m pip install -q --no-index --find-links "$wheels" \
		transformers peft safetensors tokenizers tensorboard numpy bitsandbytes
	python=$work/venv/bin/python
fi

export PYTHONPATH=$here FTGATE_TRAINER_DEVICE=cuda HF_HUB_OFFLINE=1
timeout 420 "$python" - "$work" "$repo" <<'PY'
import json, os, signal, subprocess, sys, time
import torch, transformers
from safetensors.torch import load_file
from ftgate_trainer import tiny

work, repo = sys.argv[1], sys.argv[2]
model_dir = os.path.join(work, "llama")
tok = tiny.tokenizer()
tok.save_pretrained(model_dir)
cfg = transformers.LlamaConfig(vocab_size=tiny.VOCAB, hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
                               num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=512,
                               bos_token_id=tiny.BOS_ID, eos_token_id=tiny.EOS_ID, pad_token_id=tiny.PAD_ID)
torch.manual_seed(0)
transformers.LlamaForCausalLM(cfg).save_pretrained(model_dir)
print("model: random Llama, %.0fM parameters" % (sum(p.numel() for p in transformers.LlamaForCausalLM(cfg).parameters()) / 1e6))
data = os.path.join(repo, "examples", "data", "sft-train.jsonl")


def job(name, steps, **over):
    d = os.path.join(work, name)
    os.makedirs(d)
    s = {"method": "sft", "model": model_dir, "dataset": {"path": data},
         "hyperparameters": {"learning_rate": 2e-4, "max_steps": steps, "batch_size": 16, "max_length": 256,
                             "precision": "bf16", "seed": 1},
         "lora": {"enabled": True, "r": 16, "alpha": 32, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj",
                                                                           "gate_proj", "up_proj", "down_proj", "lm_head"]},
         "logging": {"log_every": 10, "save_every": 1000, "progress_interval_seconds": 1}}
    for k, v in over.items():
        s[k] = v
    json.dump(s, open(os.path.join(d, "job.json"), "w"))
    return d


def train(d, pause_at=None, sampler=None):
    p = subprocess.Popen([sys.executable, "-m", "ftgate_trainer", "--job-dir", d])
    if pause_at:
        while True:
            try:
                if json.load(open(os.path.join(d, "progress.json"))).get("step", 0) >= pause_at:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        json.dump({"action": "pause"}, open(os.path.join(d, "control.json"), "w"))
    rc = p.wait()
    assert rc == 0, "trainer exit %d in %s" % (rc, d)
    return json.load(open(os.path.join(d, "progress.json")))


def rate(d):
    rows = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))]
    return rows[-1]["tokens_per_second"], rows[0]["loss"], rows[-1]["loss"]


ftctl = os.path.join(repo, "bin", "ftctl")
sampler = None
if os.access(ftctl, os.X_OK):
    sampler = subprocess.Popen([ftctl, "gpustat", "--interval", "1s", "--out", os.path.join(work, "gpu.json")])

a = job("lora-a", 60)
t = time.monotonic()
train(a)
tps, l0, l1 = rate(a)
print("LoRA SFT bf16: 60 steps in %.1fs, %.0f tokens/s, loss %.3f -> %.3f" % (time.monotonic() - t, tps, l0, l1))

b = job("lora-b", 60)
prog = train(b, pause_at=25)
assert prog["phase"] == "paused", prog
train(b)
wa = load_file(os.path.join(a, "model", "adapter_model.safetensors"))
wb = load_file(os.path.join(b, "model", "adapter_model.safetensors"))
assert sorted(wa) == sorted(wb) and all(torch.equal(wa[k], wb[k]) for k in wa), "pause/resume on CUDA is not bitwise"
la = {r["step"]: r["loss"] for r in map(json.loads, open(os.path.join(a, "metrics.jsonl")))}
lb = {r["step"]: r["loss"] for r in map(json.loads, open(os.path.join(b, "metrics.jsonl")))}
assert la == lb, (la, lb)
print("pause at step %d + resume: adapter and losses bitwise equal to the uninterrupted run" % prog["step"])

q = job("qlora", 40, quantization="4bit")
t = time.monotonic()
train(q)
tps, l0, l1 = rate(q)
print("QLoRA 4-bit: 40 steps in %.1fs, %.0f tokens/s, loss %.3f -> %.3f" % (time.monotonic() - t, tps, l0, l1))

if sampler:
    time.sleep(2)
    sampler.send_signal(signal.SIGTERM)
    sampler.wait(10)
    g = json.load(open(os.path.join(work, "gpu.json")))
    print("NVML sampler (ftctl gpustat):", json.dumps(g)[:400])
else:
    print("NVML sampler: skipped (no executable %s; build it with go build -o bin/ftctl ./cmd/ftctl)" % ftctl)
PY
say "done (work dir $work)"

"""builtin:tiny: a small byte-level causal transformer in plain torch, with LoRA for its
linear layers. Deterministic on CPU for a given seed."""

import contextlib
import json
import math
import os

import torch
from torch import nn

from . import data
from .spec import SpecError

LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "lm_head")


class ByteTokenizer:
    """UTF-8 bytes 0..255 plus BOS, EOS and PAD."""

    bos_id, eos_id, pad_id = 256, 257, 258
    vocab_size = 259

    def encode(self, text):
        return list(text.encode("utf-8"))

    def decode(self, ids):
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

    def chat_prompt(self, messages):
        return data.render_messages(messages)


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update B @ A scaled by alpha / r."""

    def __init__(self, base, r, alpha, dropout):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scaling = alpha / r
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.disabled = False

    def forward(self, x):
        y = self.base(x)
        if self.disabled:
            return y
        return y + (self.dropout(x) @ self.lora_A.t() @ self.lora_B.t()) * self.scaling


class Block(nn.Module):
    def __init__(self, d, heads, ff):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)
        self.ln2 = nn.LayerNorm(d)
        self.up_proj = nn.Linear(d, ff)
        self.down_proj = nn.Linear(ff, d)

    def forward(self, x, causal):
        b, t, d = x.shape
        h = self.ln1(x)
        q, k, v = (p(h).view(b, t, self.heads, d // self.heads).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.heads)
        att = att.masked_fill(causal, float("-inf")).softmax(-1)
        x = x + self.o_proj((att @ v).transpose(1, 2).reshape(b, t, d))
        return x + self.down_proj(torch.nn.functional.gelu(self.up_proj(self.ln2(x))))


class TinyLM(nn.Module):
    """Pre-LayerNorm decoder-only transformer over bytes."""

    def __init__(self, vocab, d_model, layers, heads, d_ff, max_positions):
        super().__init__()
        self.config = dict(vocab_size=vocab, d_model=d_model, n_layers=layers, n_heads=heads, d_ff=d_ff,
                           max_positions=max_positions)
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(max_positions, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads, d_ff) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab, bias=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, ids, mask=None):
        t = ids.shape[1]
        x = self.embed(ids) + self.pos(torch.arange(t, device=ids.device))
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=ids.device), 1)
        for blk in self.blocks:
            x = blk(x, causal)
        return self.lm_head(self.ln_f(x))


# Size of builtin:tiny. Tests may shrink it with FTGATE_TRAINER_TINY="d_model,layers,heads,d_ff".
DEFAULT_SIZE = (64, 2, 4, 256)
SIZE_ENV = "FTGATE_TRAINER_TINY"


def _size():
    v = os.environ.get(SIZE_ENV)
    if not v:
        return DEFAULT_SIZE
    d, l, h, f = (int(x) for x in v.split(","))
    return d, l, h, f


class TinyBackend:
    """builtin:tiny with optional LoRA, behind the interface the training loop uses."""

    name = "builtin:tiny"

    def __init__(self, spec, device):
        if spec.quantization != "none":
            raise SpecError("quantization: %s needs the HF backend with bitsandbytes; builtin:tiny trains "
                            "in full precision only (use quantization: none)" % spec.quantization)
        self.spec = spec
        self.device = device
        self.tok = ByteTokenizer()
        d, layers, heads, ff = _size()
        torch.manual_seed(spec.hyper.seed)
        self.model = TinyLM(self.tok.vocab_size, d, layers, heads, ff, spec.hyper.max_length)
        self.lora = []
        if spec.lora.enabled:
            self._apply_lora(spec.lora)
        self.model.to(device)

    def _apply_lora(self, cfg):
        for p in self.model.parameters():
            p.requires_grad_(False)
        wanted = set(cfg.target_modules)
        unknown = sorted(wanted - set(LINEAR_NAMES))
        if unknown:
            raise SpecError("lora.target_modules: builtin:tiny has no module %r (it has %s)"
                            % (unknown[0], ", ".join(LINEAR_NAMES)))
        for parent in list(self.model.modules()):
            for name, child in list(parent.named_children()):
                if name in wanted and isinstance(child, nn.Linear):
                    wrapped = LoRALinear(child, cfg.r, cfg.alpha, cfg.dropout)
                    setattr(parent, name, wrapped)
                    self.lora.append(wrapped)

    def trainable_parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def logits(self, model, ids, mask):
        return model(ids, mask)

    @contextlib.contextmanager
    def adapters_disabled(self):
        for m in self.lora:
            m.disabled = True
        try:
            yield
        finally:
            for m in self.lora:
                m.disabled = False

    def checkpoint_state(self):
        """Adapter weights with LoRA, else the whole model, as CPU tensors."""
        sd = self.model.state_dict()
        if self.lora:
            sd = {k: v for k, v in sd.items() if ".lora_" in k}
        return {k: v.detach().cpu().clone() for k, v in sd.items()}

    def load_checkpoint_state(self, sd):
        missing, unexpected = self.model.load_state_dict(sd, strict=not self.lora)
        if unexpected or (self.lora and any(".lora_" in k for k in missing)):
            raise ValueError("checkpoint does not match the model: missing %s, unexpected %s"
                             % (missing[:3], unexpected[:3]))

    def save_final(self, out):
        """Writes model.pt + config.json, or adapter.pt + adapter_config.json with LoRA."""
        cfg = dict(self.model.config, architecture="ftgate-tiny", tokenizer="bytes+bos256+eos257+pad258",
                   seed=self.spec.hyper.seed)
        if self.lora:
            torch.save(self.checkpoint_state(), os.path.join(out, "adapter.pt"))
            lc = self.spec.lora
            meta = dict(base_model="builtin:tiny", base_config=cfg, r=lc.r, alpha=lc.alpha, dropout=lc.dropout,
                        target_modules=lc.target_modules)
            with open(os.path.join(out, "adapter_config.json"), "w") as f:
                json.dump(meta, f, indent=2, sort_keys=True)
        else:
            torch.save(self.checkpoint_state(), os.path.join(out, "model.pt"))
            with open(os.path.join(out, "config.json"), "w") as f:
                json.dump(cfg, f, indent=2, sort_keys=True)

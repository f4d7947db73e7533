"""The model backend: every model is a Hugging Face causal LM. builtin:tiny is a tiny Llama
built from a config and seed (tiny.py); anything else is a local model directory loaded with
local_files_only (never trust_remote_code). LoRA is peft; 8/4-bit quantization is
bitsandbytes on CUDA. `Backend` is the interface the training loop uses."""

import contextlib
import copy
import os
from typing import ContextManager, Dict, List, Optional, Protocol

import torch

from . import data, layout, tiny
from .spec import BUILTIN_TINY, SpecError


class Tokenizer(Protocol):
    bos_id: Optional[int]
    eos_id: int
    pad_id: int

    def encode(self, text: str) -> List[int]: ...
    def chat_prompt(self, messages: List[dict]) -> str: ...


class Backend(Protocol):
    """What the training loop needs from a model."""

    model: torch.nn.Module  # the module trained (peft-wrapped with LoRA)
    tok: Tokenizer
    dtype: torch.dtype  # compute dtype of the forward pass (autocast)

    def trainable_parameters(self) -> List[torch.nn.Parameter]: ...
    def logits(self, model: torch.nn.Module, ids, mask, position_ids=None) -> torch.Tensor: ...
    def adapters_disabled(self) -> ContextManager: ...
    def checkpoint_state(self) -> Dict[str, torch.Tensor]: ...
    def load_checkpoint_state(self, sd: Dict[str, torch.Tensor]) -> None: ...
    def save_final(self, out: str, state_dict: Optional[Dict[str, torch.Tensor]] = None) -> None: ...


class HFTokenizer:
    """The slice of a transformers tokenizer the trainer uses."""

    def __init__(self, tok):
        self.tok = tok
        if tok.eos_token_id is None:
            raise SpecError("model: the tokenizer has no eos token")
        if not getattr(tok, "chat_template", None):
            tok.chat_template = data.CHAT_TEMPLATE  # saved with the tokenizer: what training used
        self.bos_id = tok.bos_token_id
        self.eos_id = tok.eos_token_id
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def encode(self, text):
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids):
        return self.tok.decode(ids, skip_special_tokens=True)

    def chat_prompt(self, messages):
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def compute_dtype(precision, device):
    """auto = bf16 on a GPU that supports it, else fp32; fp16 needs CUDA."""
    cuda = device.type == "cuda"
    if precision == "auto":
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    if precision == "fp16" and not cuda:
        raise SpecError("hyperparameters.precision: fp16 needs a CUDA GPU; use bf16 or fp32 on CPU")
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise SpecError("hyperparameters.precision: bf16 is not supported by this GPU; use fp16 or fp32")
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


class HFBackend:
    """A causal LM (builtin:tiny or a local directory), optionally with LoRA adapters and
    quantized base weights."""

    def __init__(self, spec, device):
        import transformers

        self.spec = spec
        self.device = device
        self.dtype = compute_dtype(spec.hyper.precision, device)
        self.lora = spec.lora.enabled
        quant = spec.quantization
        if spec.model == BUILTIN_TINY:
            if quant != "none":
                raise SpecError("quantization: %s needs a local model directory, bitsandbytes and a CUDA GPU; "
                                "builtin:tiny trains unquantized (use quantization: none)" % quant)
            tok = tiny.tokenizer()
            model = tiny.model(spec.hyper.seed, spec.hyper.max_length)
        else:
            tok, model = self._load_dir(transformers, spec, device, quant)
        self.tok = HFTokenizer(tok)
        model.config.use_cache = False
        if spec.hyper.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if self.lora:
            model = self._apply_lora(model, spec, quant)
        if quant == "none":
            model.to(device)
        self.model = model

    def _load_dir(self, transformers, spec, device, quant):
        if not os.path.isdir(spec.model):
            raise SpecError("model: %s is not a directory" % spec.model)
        if not os.path.isfile(os.path.join(spec.model, "config.json")):
            raise SpecError("model: %s has no config.json (want a Hugging Face model directory)" % spec.model)
        kwargs = {"local_files_only": True, "trust_remote_code": False}
        if quant != "none":
            try:
                import bitsandbytes  # noqa: F401
            except ImportError as e:
                raise SpecError("quantization: %s needs the bitsandbytes package, which does not import here (%s)"
                                % (quant, e)) from None
            if device.type != "cuda":
                raise SpecError("quantization: %s needs a CUDA GPU; none is visible" % quant)
            if spec.lora.merge:
                raise SpecError("lora.merge: not with quantization (the base weights are quantized)")
            if quant == "8bit":
                qc = transformers.BitsAndBytesConfig(load_in_8bit=True)
            else:
                qc = transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                     bnb_4bit_compute_dtype=self.dtype if self.dtype != torch.float32
                                                     else torch.bfloat16, bnb_4bit_use_double_quant=True)
            kwargs["quantization_config"] = qc
            kwargs["device_map"] = {"": device.index or 0}
        # Full fine-tuning keeps fp32 master weights (autocast computes in self.dtype); a
        # frozen LoRA base is stored in the compute dtype to save memory.
        kwargs["dtype"] = self.dtype if (self.lora and device.type == "cuda") else torch.float32
        try:
            tok = transformers.AutoTokenizer.from_pretrained(spec.model, local_files_only=True,
                                                             trust_remote_code=False)
            model = transformers.AutoModelForCausalLM.from_pretrained(spec.model, **kwargs)
        except (OSError, ValueError) as e:
            raise SpecError("model: cannot load %s: %s" % (spec.model, e)) from None
        return tok, model

    def _apply_lora(self, model, spec, quant):
        import peft

        self.peft = peft
        if quant != "none":
            model = peft.prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=spec.hyper.gradient_checkpointing)
        targets = list(spec.lora.target_modules)
        if spec.model == BUILTIN_TINY and spec.lora.default_targets:
            targets.append("lm_head")  # a random base: see spec.DEFAULT_TARGETS
        names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
        missing = [m for m in targets if m not in names]
        if missing:
            raise SpecError("lora.target_modules: the model has no linear module %r (it has %s)"
                            % (missing[0], ", ".join(sorted(names))))
        cfg = peft.LoraConfig(r=spec.lora.r, lora_alpha=spec.lora.alpha, lora_dropout=spec.lora.dropout,
                              target_modules=targets, task_type="CAUSAL_LM", bias="none")
        torch.manual_seed(spec.hyper.seed)
        try:
            model = peft.get_peft_model(model, cfg)
        except ValueError as e:
            raise SpecError("lora.target_modules: %s" % e) from None
        for p in model.parameters():
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.float()
        return model

    def trainable_parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def logits(self, model, ids, mask, position_ids=None):
        # Packed rows: position ids that restart per example, no attention mask (transformers
        # then masks attention between the packed examples).
        kw = {"attention_mask": mask} if position_ids is None else {"position_ids": position_ids}
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            out = model(input_ids=ids, **kw).logits
        return out.float()

    @contextlib.contextmanager
    def adapters_disabled(self):
        with self.model.disable_adapter():
            yield

    def checkpoint_state(self):
        """The adapter tensors with LoRA, else the whole state dict, as CPU tensors."""
        sd = self.peft.get_peft_model_state_dict(self.model) if self.lora else self.model.state_dict()
        return {k: v.detach().cpu().clone() for k, v in sd.items()}

    def load_checkpoint_state(self, sd):
        if self.lora:
            res = self.peft.set_peft_model_state_dict(self.model, sd)
            unexpected = getattr(res, "unexpected_keys", [])
            if unexpected:
                raise ValueError("checkpoint does not match the adapter: unexpected %s" % unexpected[:3])
        else:
            self.model.load_state_dict(sd)

    def save_final(self, out, state_dict=None):
        """What users load: save_pretrained of the model (full fine-tuning) or the peft adapter,
        the tokenizer with its chat template; with LoRA on builtin:tiny the base model in
        base/, and with lora.merge the merged weights in merged/. state_dict: FSDP's full
        weights, gathered on rank 0."""
        if state_dict is not None:  # FSDP: the gathered full weights
            self.model.save_pretrained(out, state_dict=state_dict)
        else:
            self.model.save_pretrained(out)
        self.tok.tok.save_pretrained(out)
        if not self.lora:
            return
        if self.spec.model == BUILTIN_TINY:
            base = os.path.join(out, layout.BASE_DIR)
            tiny.model(self.spec.hyper.seed, self.spec.hyper.max_length).save_pretrained(base)
            self.tok.tok.save_pretrained(base)
        if self.spec.lora.merge:
            merged = os.path.join(out, layout.MERGED_DIR)
            copy.deepcopy(self.model).cpu().merge_and_unload().save_pretrained(merged)
            self.tok.tok.save_pretrained(merged)

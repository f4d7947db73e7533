"""The Hugging Face backend: AutoModelForCausalLM and its tokenizer from a local directory,
PEFT LoRA, and 8/4-bit quantization through bitsandbytes. Only imported for such models."""

import contextlib
import os

import torch

from . import data
from .spec import SpecError


class HFTokenizer:
    """The slice of a transformers tokenizer the trainer uses."""

    def __init__(self, tok):
        self.tok = tok
        if tok.eos_token_id is None:
            raise SpecError("model: the tokenizer has no eos token")
        self.bos_id = tok.bos_token_id
        self.eos_id = tok.eos_token_id
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    def encode(self, text):
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def chat_prompt(self, messages):
        if getattr(self.tok, "chat_template", None):
            return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return data.render_messages(messages)


def _version(mod):
    parts = []
    for p in mod.__version__.split(".")[:2]:
        digits = "".join(c for c in p if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


class HFBackend:
    """A local HF causal LM, optionally with LoRA adapters and quantized base weights."""

    name = "hf"

    def __init__(self, spec, device):
        try:
            import transformers
        except ImportError as e:
            raise SpecError("model: a local model directory needs the transformers package, which does not "
                            "import here (%s); use model: builtin:tiny or install transformers" % e) from None
        if not os.path.isdir(spec.model):
            raise SpecError("model: %s is not a directory" % spec.model)
        if not os.path.isfile(os.path.join(spec.model, "config.json")):
            raise SpecError("model: %s has no config.json (want a Hugging Face model directory)" % spec.model)
        self.spec = spec
        self.device = device
        kwargs = {"local_files_only": True}
        quant = spec.quantization
        if quant != "none":
            try:
                import bitsandbytes  # noqa: F401
            except ImportError as e:
                raise SpecError("quantization: %s needs the bitsandbytes package, which does not import here (%s)"
                                % (quant, e)) from None
            if device.type != "cuda":
                raise SpecError("quantization: %s needs a CUDA GPU; none is visible" % quant)
            compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            if quant == "8bit":
                qc = transformers.BitsAndBytesConfig(load_in_8bit=True)
            else:
                qc = transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                     bnb_4bit_compute_dtype=compute, bnb_4bit_use_double_quant=True)
            kwargs["quantization_config"] = qc
            kwargs["device_map"] = {"": device.index or 0}
        dtype = torch.float32
        if device.type == "cuda" and spec.lora.enabled and torch.cuda.is_bf16_supported():
            dtype = torch.bfloat16
        kwargs["dtype" if _version(transformers) >= (4, 56) else "torch_dtype"] = dtype
        try:
            tok = transformers.AutoTokenizer.from_pretrained(spec.model, local_files_only=True)
            model = transformers.AutoModelForCausalLM.from_pretrained(spec.model, **kwargs)
        except (OSError, ValueError) as e:
            raise SpecError("model: cannot load %s: %s" % (spec.model, e)) from None
        self.tok = HFTokenizer(tok)
        self.lora = spec.lora.enabled
        if self.lora:
            try:
                import peft
            except ImportError as e:
                raise SpecError("lora.enabled: LoRA on a local model needs the peft package, which does not "
                                "import here (%s)" % e) from None
            self.peft = peft
            if quant != "none":
                model = peft.prepare_model_for_kbit_training(model)
            cfg = peft.LoraConfig(r=spec.lora.r, lora_alpha=spec.lora.alpha, lora_dropout=spec.lora.dropout,
                                  target_modules=list(spec.lora.target_modules), task_type="CAUSAL_LM", bias="none")
            torch.manual_seed(spec.hyper.seed)
            try:
                model = peft.get_peft_model(model, cfg)
            except ValueError as e:
                raise SpecError("lora.target_modules: %s" % e) from None
            for n, p in model.named_parameters():
                if p.requires_grad and p.dtype != torch.float32:
                    p.data = p.data.float()
        if quant == "none":
            model.to(device)
        self.model = model

    def trainable_parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def logits(self, model, ids, mask):
        return model(input_ids=ids, attention_mask=mask).logits.float()

    @contextlib.contextmanager
    def adapters_disabled(self):
        with self.model.disable_adapter():
            yield

    def checkpoint_state(self):
        if self.lora:
            sd = self.peft.get_peft_model_state_dict(self.model)
        else:
            sd = self.model.state_dict()
        return {k: v.detach().cpu().clone() for k, v in sd.items()}

    def load_checkpoint_state(self, sd):
        if self.lora:
            res = self.peft.set_peft_model_state_dict(self.model, sd)
            unexpected = getattr(res, "unexpected_keys", [])
            if unexpected:
                raise ValueError("checkpoint does not match the adapter: unexpected %s" % unexpected[:3])
        else:
            self.model.load_state_dict(sd)

    def save_final(self, out):
        """save_pretrained of the adapter (LoRA) or the whole model, plus the tokenizer."""
        self.model.save_pretrained(out)
        self.tok.tok.save_pretrained(out)

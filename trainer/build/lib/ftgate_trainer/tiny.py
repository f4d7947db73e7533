"""builtin:tiny: a small Llama (transformers' LlamaForCausalLM) built from a config and the
job's seed, with a byte-level tokenizer built here. Nothing is downloaded; the model runs
through exactly the code a real Hugging Face model does."""

import torch

from . import data, hooks

# hidden, layers, heads, intermediate. Tests may resize it (hooks.TINY_SIZE_ENV).
DEFAULT_SIZE = (64, 2, 4, 256)
BOS, EOS, PAD = "<s>", "</s>", "<pad>"
BOS_ID, EOS_ID, PAD_ID = 256, 257, 258
VOCAB = 259


def _bytes_to_unicode():
    """GPT-2's byte -> printable character table (what the ByteLevel pre-tokenizer emits)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def tokenizer():
    """A fast tokenizer whose ids are the UTF-8 bytes (0..255) plus <s> 256, </s> 257,
    <pad> 258, with the plain chat template of data.CHAT_TEMPLATE."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {ch: b for b, ch in _bytes_to_unicode().items()}
    vocab.update({BOS: BOS_ID, EOS: EOS_ID, PAD: PAD_ID})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    fast.chat_template = data.CHAT_TEMPLATE
    return fast


def config(max_length):
    import transformers

    hidden, layers, heads, inter = hooks.tiny_size(DEFAULT_SIZE)
    return transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=max(128, max_length),
        bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID, tie_word_embeddings=False)


def model(seed, max_length):
    """The randomly initialised tiny Llama for a seed (the same weights for the same seed)."""
    import transformers

    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(config(max_length))

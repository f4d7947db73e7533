"""JSONL datasets: row validation (errors name the line and field), tokenization, batches."""

import json

import torch

from .spec import SpecError

IGNORE = -100


# The chat template given to tokenizers that have none (builtin:tiny's included); it is
# saved with the tokenizer in model/, so users prompt the trained model the same way.
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def read_jsonl(path, field):
    """Yields (line number, object) for each non-blank line of a JSONL file."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise SpecError("%s: file not found: %s" % (field, path)) from None
    except IsADirectoryError:
        raise SpecError("%s: is a directory, want a JSONL file: %s" % (field, path)) from None
    except OSError as e:
        raise SpecError("%s: cannot read %s: %s" % (field, path, e.strerror)) from None
    with f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as e:
                raise SpecError("%s line %d: malformed JSON: %s" % (field, n, e)) from None
            if not isinstance(obj, dict):
                raise SpecError("%s line %d: want a JSON object, got %s" % (field, n, type(obj).__name__))
            yield n, obj


def _string(obj, key, where, allow_empty=False):
    v = obj.get(key)
    if not isinstance(v, str):
        raise SpecError("%s: field %r: must be a string, got %s" % (where, key, "nothing" if v is None else json.dumps(v)[:40]))
    if not allow_empty and not v:
        raise SpecError("%s: field %r: must not be empty" % (where, key))
    return v


def _sft_row(obj, where):
    """Returns ("plain", prompt, completion) or ("chat", messages, completion)."""
    if "messages" in obj:
        msgs = obj["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise SpecError("%s: field 'messages': must be a non-empty list" % where)
        for i, m in enumerate(msgs):
            w = "%s: field 'messages[%d]'" % (where, i)
            if not isinstance(m, dict):
                raise SpecError("%s: must be an object with role and content" % w)
            role, content = m.get("role"), m.get("content")
            if role not in ("system", "user", "assistant", "tool"):
                raise SpecError("%s.role: must be system, user, assistant or tool, got %s" % (w, json.dumps(role)))
            if not isinstance(content, str):
                raise SpecError("%s.content: must be a string" % w)
        if msgs[-1]["role"] != "assistant" or not msgs[-1]["content"]:
            raise SpecError("%s: field 'messages': the last message must be a non-empty assistant message" % where)
        return ("chat", [dict(role=m["role"], content=m["content"]) for m in msgs[:-1]], msgs[-1]["content"])
    if "prompt" in obj or "completion" in obj:
        return ("plain", _string(obj, "prompt", where, allow_empty=True), _string(obj, "completion", where))
    if "text" in obj:
        return ("plain", "", _string(obj, "text", where))
    raise SpecError("%s: want fields {prompt, completion}, {messages} or {text}" % where)


def _dpo_row(obj, where):
    return (_string(obj, "prompt", where, allow_empty=True), _string(obj, "chosen", where), _string(obj, "rejected", where))


def load_rows(path, method, field):
    """Reads and validates every row; raises SpecError naming the line and field."""
    rows = []
    for n, obj in read_jsonl(path, field):
        where = "%s line %d" % (field, n)
        rows.append(_sft_row(obj, where) if method == "sft" else _dpo_row(obj, where))
    if not rows:
        raise SpecError("%s: %s has no rows" % (field, path))
    return rows


def _join(tok, prompt_ids, comp_ids, max_length):
    """[bos] + prompt + completion + [eos], truncating the prompt's start first, then the
    completion's end. Returns (ids, labels) with labels IGNORE on non-completion tokens."""
    head = [tok.bos_id] if tok.bos_id is not None else []
    comp = comp_ids + [tok.eos_id]
    room = max_length - len(head)
    if len(comp) >= room:
        comp, prompt_ids = comp[:room], []
    elif len(prompt_ids) + len(comp) > room:
        prompt_ids = prompt_ids[len(prompt_ids) + len(comp) - room:]
    ids = head + prompt_ids + comp
    labels = [IGNORE] * (len(head) + len(prompt_ids)) + comp
    return ids, labels


def pack(examples, max_length):
    """SFT packing: consecutive (ids, labels) rows concatenated into rows of at most
    max_length tokens. Each packed row carries position ids that restart at every example;
    with them (and no attention mask) transformers masks attention between the examples."""
    out, ids, labels, pos = [], [], [], []
    for a, b in examples:
        if ids and len(ids) + len(a) > max_length:
            out.append((ids, labels, pos))
            ids, labels, pos = [], [], []
        ids, labels, pos = ids + a, labels + b, pos + list(range(len(a)))
    if ids:
        out.append((ids, labels, pos))
    return out


def _prompt_text(tok, kind, prompt):
    return tok.chat_prompt(prompt) if kind == "chat" else prompt


def encode(rows, method, tok, max_length):
    """Tokenizes rows: SFT -> (ids, labels); DPO -> (chosen ids, labels, rejected ids, labels)."""
    out = []
    for r in rows:
        if method == "sft":
            kind, prompt, completion = r
            out.append(_join(tok, tok.encode(_prompt_text(tok, kind, prompt)), tok.encode(completion), max_length))
        else:
            prompt, chosen, rejected = r
            p = tok.encode(prompt)
            out.append(_join(tok, p, tok.encode(chosen), max_length) + _join(tok, p, tok.encode(rejected), max_length))
    return out


def collate(seqs, pad_id):
    """Pads (ids, labels) or packed (ids, labels, positions) rows on the right. Returns ids,
    labels, attention mask and position ids (None unless packed; pads then count as one more
    example, which the causal mask keeps away from the real tokens)."""
    n = max(len(s[0]) for s in seqs)
    ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    labels = torch.full((len(seqs), n), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    packed = len(seqs[0]) == 3
    pos = torch.zeros((len(seqs), n), dtype=torch.long) if packed else None
    for i, s in enumerate(seqs):
        a, b = s[0], s[1]
        ids[i, :len(a)] = torch.tensor(a, dtype=torch.long)
        labels[i, :len(b)] = torch.tensor(b, dtype=torch.long)
        mask[i, :len(a)] = 1
        if packed:
            pos[i, :len(a)] = torch.tensor(s[2], dtype=torch.long)
            pos[i, len(a):] = torch.arange(n - len(a))
    return ids, labels, mask, pos


def batch(examples, method, pad_id):
    """Builds one micro-batch. DPO batches hold the chosen rows first, then the rejected."""
    if method == "sft":
        return collate(examples, pad_id)
    return collate([(e[0], e[1]) for e in examples] + [(e[2], e[3]) for e in examples], pad_id)

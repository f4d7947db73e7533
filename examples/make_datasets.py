#!/usr/bin/python3
"""Writes the made-up example datasets in examples/data/ (deterministic; rerun to regenerate).

SFT: "upper: <word>" -> the word in capitals, and "<name> lives in" -> a fixed made-up town
(a small lookup a tiny model memorises), in all three row shapes the trainer reads.
DPO: the same upper-casing prompts; chosen is the capitalised word, rejected a wrong answer
(the word unchanged, reversed, or half capitalised)."""

import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
SYLLABLES = ["ka", "lo", "mi", "ru", "te", "po", "zan", "vel", "dor", "fi", "qua", "ser", "bo", "nim", "tra"]
TOWNS = ["Olvenmark", "Brastead", "Quillhaven", "Dunmere", "Saltreach", "Fernwick"]


def word(rng):
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))


def sft_rows(rng, n, people):
    rows = []
    for i in range(n):
        kind = i % 5
        if kind < 3:
            w = word(rng)
            rows.append({"prompt": "upper: %s\n" % w, "completion": w.upper()})
        elif kind == 3:
            name, town = rng.choice(people)
            rows.append({"messages": [{"role": "user", "content": "Where does %s live?" % name},
                                      {"role": "assistant", "content": town}]})
        else:
            name, town = rng.choice(people)
            rows.append({"text": "%s lives in %s." % (name, town)})
    return rows


def dpo_rows(rng, n):
    rows = []
    for i in range(n):
        w = word(rng)
        bad = [w, w[::-1].upper(), w[: len(w) // 2].upper() + w[len(w) // 2:]][i % 3]
        rows.append({"prompt": "upper: %s\n" % w, "chosen": w.upper(), "rejected": bad})
    return rows


def write(name, rows):
    with open(os.path.join(HERE, "data", name), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def main():
    rng = random.Random(20261129)
    people = [(word(rng).capitalize(), rng.choice(TOWNS)) for _ in range(12)]
    os.makedirs(os.path.join(HERE, "data"), exist_ok=True)
    write("sft-train.jsonl", sft_rows(rng, 320, people))
    write("sft-eval.jsonl", sft_rows(rng, 40, people))
    write("dpo-train.jsonl", dpo_rows(rng, 300))
    write("dpo-eval.jsonl", dpo_rows(rng, 40))


if __name__ == "__main__":
    main()

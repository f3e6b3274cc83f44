"""Exact check of an Elarablation setting on the slot bench's contexts AND on a second set written for this check.

Trains on the slot bench's 8 contexts (or reads a trained adapter), then measures exactly (no sampling): the
first-token probability mass the rules call bad (El- and stock names), good (other names) and neutral
(non-names) at name slots (the bench's 8 training and 10 held-out contexts, and 12 new ones), the probability of
the introduced name at back-reference slots (the bench's 20 and 10 new ones), and KL / perplexity drift. The
second set is never in the library and never trained on; its back-references were written (18) and kept where the
base model gives the name p >= 0.2 (10), as the issue asks for contexts the base reuses the name in.

    PYTHONPATH=. python docs/results/elarablation/exact_check.py OUT.json '{"within_class": true}'
    PYTHONPATH=. python docs/results/elarablation/exact_check.py OUT.json '{"adapter": "path/to/adapter"}'
    PYTHONPATH=. python docs/results/elarablation/exact_check.py OUT.json '{"seed": 1, "threads": 2}'

Settings are ``train()``'s keyword arguments (``seed`` 0 unless given), plus ``threads`` (torch threads, 1 unless given).
"""
import json
import sys
import time

import torch

from hf_steer.benchmarking import heldout_drift
from hf_steer.elarablation.bench import (
    HELDOUT_FAMILIES,
    REFERENCE_FAMILIES,
    TRAIN_FAMILIES,
    reference_probabilities,
)
from hf_steer.elarablation.contexts import load_contexts, make_row, render_context
from hf_steer.elarablation.pipeline import train

SECOND_NAMES = [
    'The young knight removed her helmet. "My name is',
    'A woman in a green cloak stepped into the tavern. "Call me',
    'The blind seer turned toward the door. "Come in, child. I am',
    'The dragon rider landed beside them. "Greetings. I am',
    'The baker\'s daughter wiped flour from her cheek. "Hi, I\'m',
    'The ghost girl floated closer. "Long ago, my name was',
    'The elven scout crouched by the river. "You can call me',
    'The little girl hugged her doll. "This is my doll. Her name is',
    'The enchantress bowed her head. "My name is',
    'Once upon a time, in a small village, there lived a girl named',
    'The new student walked into the classroom. Her name was',
    'The star-mage lifted her lantern. "Be welcome, stranger. I am',
]
SECOND_REFS = [  # written for this check; kept: base p >= 0.2 (10 of 18 written)
    ('The queen had two daughters, Elowen and Maren. Maren was tall and serious, while', 'Elowen'),
    ('The two knights, Elias and Gareth, rode side by side. Gareth was silent, while', 'Elias'),
    ('Elena and Kate shared a room at the inn. Kate fell asleep at once, while', 'Elena'),
    ('Two cousins, Elara and Jude, spent every summer at the lake. Jude liked to swim, while', 'Elara'),
    ('Eldrin and Tobias were apprentices of the same old mage. Tobias was lazy, while', 'Eldrin'),
    ('The sisters Aria and Beth ran the bakery together. Beth baked the bread, while', 'Aria'),
    ('"My name is Elena," said the stranger. The innkeeper nodded. "Welcome to the Red Fox,', 'Elena'),
    ('"Everyone calls me Elara," the girl said. The captain smiled. "Welcome aboard,', 'Elara'),
    ('"I am Elara, daughter of the forest king," she said. The soldiers knelt. "Forgive us, Princess', 'Elara'),
    ('In the tower lived two scholars, Elias and Ruth. Ruth read by day, while', 'Elias'),
]


def masses(model, tokenizer, rows, codes):
    out = []
    for row in rows:
        ids = torch.tensor([tokenizer(render_context(row, tokenizer))["input_ids"]])
        with torch.no_grad():
            p = torch.softmax(model(input_ids=ids).logits[0, -1].float(), -1)
        c = codes[: p.shape[0]]
        out.append({"bad": float(p[c == 2].sum()), "good": float(p[c == 1].sum()), "neutral": float(p[c == 0].sum())})
    return out



def mean(xs):
    return sum(xs) / len(xs)


def main(out_json, settings):
    t0 = time.time()
    settings = dict(settings)
    torch.set_num_threads(int(settings.pop("threads", 1)))
    if "adapter" in settings:
        from hf_steer.elarablation.pipeline import load_adapter
        model, tok = load_adapter(settings["adapter"])
        res = {"train_seconds": None, "steps": None}
    else:
        res = train(load_contexts(TRAIN_FAMILIES), out_json + "-adapter", None, disable_tqdm=True, **{"seed": 0, **settings})
        model, tok = res["trainer"].model, res["trainer"].processing_class
    model.eval()
    from hf_steer.elarablation.contexts import TokenRules, TokenTexts
    rules, texts = TokenRules.from_row(list(load_contexts(TRAIN_FAMILIES))[0], tok), TokenTexts(tok)
    codes = torch.tensor([{"neutral": 0, "good": 1, "bad": 2}.get(rules.classify(texts(i), i), 3)
                          for i in range(model.get_output_embeddings().weight.shape[0])])
    heldout = list(load_contexts(HELDOUT_FAMILIES, split="heldout"))
    train_rows = list(load_contexts(TRAIN_FAMILIES))
    second = [make_row(t) for t in SECOND_NAMES]
    reference = list(load_contexts(REFERENCE_FAMILIES, split="reference"))
    second_ref = [make_row(t, kind="keep", expected=e) for t, e in SECOND_REFS]
    fig = {"settings": settings, "train_seconds": res["train_seconds"], "steps": res["steps"]}
    for name, rows in (("train", train_rows), ("heldout", heldout), ("second", second)):
        with model.disable_adapter():
            b = masses(model, tok, rows, codes)
        a = masses(model, tok, rows, codes)
        for k in ("bad", "good", "neutral"):
            fig[f"{name}_{k}_before"] = mean([x[k] for x in b])
            fig[f"{name}_{k}_after"] = mean([x[k] for x in a])
    for name, rows in (("ref", reference), ("ref2", second_ref)):
        with model.disable_adapter():
            b = reference_probabilities(model, tok, rows)
        a = reference_probabilities(model, tok, rows)
        el = [i for i, r in enumerate(rows) if r["expected"].startswith("El")]
        fig[f"{name}_p_before"], fig[f"{name}_kept"] = mean(b), mean(a) / mean(b)
        fig[f"{name}_el_p_before"] = mean([b[i] for i in el])
        fig[f"{name}_kept_el"] = mean([a[i] for i in el]) / mean([b[i] for i in el])
        fig[f"{name}_rows"] = [[r["expected"], round(x, 3), round(y, 3)] for r, x, y in zip(rows, b, a)]
    d = heldout_drift(model, tok, model.disable_adapter)
    fig.update(kl=d["kl_nats"], ppl_pct=d["ppl_change_pct"])
    fig["wall"] = time.time() - t0
    json.dump(fig, open(out_json, "w"), indent=1)
    for k, v in fig.items():
        if not k.endswith("_rows"):
            print(k, v)


if __name__ == "__main__":
    for i in range(1, len(sys.argv), 2):
        main(sys.argv[i], json.loads(sys.argv[i + 1]))

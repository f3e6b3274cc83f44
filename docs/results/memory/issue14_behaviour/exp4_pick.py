"""Issue 14: pick the short answer among spans of the draft by the base model's score (no generation).

Reads exp2's JSON (question, expected, generated short answer, draft) and scores every 1-3 word span of each
draft as the whole answer ("Span." + end of turn) after the reshape prompt. Usage: python exp4_pick.py EXP2.json
"""
import json
import re
import sys

import torch

torch.set_num_threads(2)
from hf_steer.memory import LoraMemory  # noqa: E402
from hf_steer.memory.behaviour import reshape_prompt  # noqa: E402

res = json.load(open(sys.argv[1]))
mem = LoraMemory(folder="/tmp/pick_empty", profile="x", embedder=None)
tok, model = mem.tokenizer, mem.model
STOP = set("a an the is are was were be you your i my me we our us he she his her they their it its and or of in on at to for "
           "from by with now so that this just about usually called named him as then also keep mind".split())


def spans(text, n=3):
    w = re.findall(r"[\w'’-]+", text)
    out = []
    for i in range(len(w)):
        for j in range(i + 1, min(i + n, len(w)) + 1):
            s = w[i:j]
            if s[0].lower() in STOP or s[-1].lower() in STOP:
                continue
            c = " ".join(s)
            c = c[0].upper() + c[1:] + "."
            if c not in out:
                out.append(c)
    return out


@torch.no_grad()
def scores(prompt, cands):
    end = tok.eos_token
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    seqs = [tok(c + end, add_special_tokens=False)["input_ids"] for c in cands]
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), len(p_ids) + L), tok.pad_token_id)
    att = torch.zeros_like(ids)
    for k, s in enumerate(seqs):
        ids[k, : len(p_ids) + len(s)] = torch.tensor(p_ids + s)
        att[k, : len(p_ids) + len(s)] = 1
    logp = model(input_ids=ids, attention_mask=att).logits.log_softmax(-1)
    out = []
    for k, s in enumerate(seqs):
        lp = sum(logp[k, len(p_ids) + t - 1, s[t]].item() for t in range(len(s)))
        out.append((lp, lp / len(s)))
    return out


tot = {"sum": 0, "mean": 0}
n = 0
for key, rows in res.items():
    if not isinstance(rows, list):
        continue
    for q, e, short, draft in rows:
        if not draft:
            continue
        cands = spans(draft)
        sc = scores(reshape_prompt(tok, q, draft), cands)
        best_sum = cands[max(range(len(cands)), key=lambda i: sc[i][0])]
        best_mean = cands[max(range(len(cands)), key=lambda i: sc[i][1])]
        ok_s, ok_m = e.lower() in best_sum.lower(), e.lower() in best_mean.lower()
        tot["sum"] += ok_s
        tot["mean"] += ok_m
        n += 1
        print(f"{key} {q!r} {e!r}: sum {best_sum!r} {'ok' if ok_s else 'XX'}, mean {best_mean!r} {'ok' if ok_m else 'XX'} | gen {short!r} | {len(cands)} cands", flush=True)
print(tot, n)

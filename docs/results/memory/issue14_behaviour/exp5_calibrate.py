"""Issue 14: how a word limit picks among the draft's short runs. FOLDER holds the 4 dev chats learnt (exp.py) and
the one-word behaviour in every profile (exp3.py). For the 27 fact questions and the 20 simple questions this
takes the default path's drafts and scores the draft's candidates several ways:

- ``plain``: log p(candidate | question, draft), the behaviour adapter on (what the memory does);
- ``pmi``: the same minus log p(candidate | content-free question, draft): how much the *question* asks for the
  candidate (contextual calibration, Zhao et al. 2021; surface-form competition, Holtzman et al. 2021);
- ``half``: plain minus half the content-free score;
each with the candidate runs of today (``copy_candidates``) and with time words ("night", "today") allowed.

Usage: python exp5_calibrate.py FOLDER
"""
import sys

import numpy as np
import torch

torch.set_num_threads(2)
from picks import for_each_draft, has  # noqa: E402

from hf_steer.memory import LoraMemory  # noqa: E402
from hf_steer.memory import behaviour as beh  # noqa: E402
from hf_steer.memory import bench_chats as chats  # noqa: E402

folder = sys.argv[1]
NULLS = ["", "Answer."]
TIME = {"night", "nights", "today", "tomorrow", "yesterday", "now"}


def cands_time(draft, limit):
    old = beh._EDGE_STOP
    beh._EDGE_STOP = old - TIME
    try:
        return beh.copy_candidates(draft, limit)
    finally:
        beh._EDGE_STOP = old


mem = LoraMemory(folder=folder, profile=chats.DEV_CHATS[0]["name"])
tok = mem.tokenizer
tally: dict[str, list[bool]] = {}
simple_tally: dict[str, list[bool]] = {}


def score_all(q, draft, names, expected, into, label):
    for cname, cfun in (("today", beh.copy_candidates), ("time", cands_time)):
        cands = cfun(draft, 1)
        if not cands:
            continue
        plain = np.array(mem._answer_scores(beh.reshape_prompt(tok, q, draft), cands, names))
        rows = {"plain": plain}
        for k, null in enumerate(NULLS):
            base = np.array(mem._answer_scores(beh.reshape_prompt(tok, null, draft), cands, names))
            rows[f"pmi{k}"] = plain - base
            rows[f"half{k}"] = plain - 0.5 * base
        for how, s in rows.items():
            pick = cands[int(np.argmax(s))]
            into.setdefault(f"{cname}/{how}", []).append(has(pick, expected))
            if how in ("plain", "pmi0", "half0") and not has(pick, expected):
                print(f"  {label} {cname}/{how} {q!r} {expected!r}: {pick!r} <- {draft!r}", flush=True)


for_each_draft(mem, lambda q, d, names, e, label: score_all(q, d, names, e,
                                                           tally if label == "fact" else simple_tally, label))
for key in tally:
    print(f"{key:14s} fact {sum(tally[key])}/{len(tally[key])}  simple right {sum(simple_tally.get(key, []))}/{len(simple_tally.get(key, []))}")

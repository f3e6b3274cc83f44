"""Issue 14: a word limit's pick with an answer-type check, and with echoes dropped, together (the previous session
tried each alone: type 24 -> 25/27 facts but "What is the opposite of up?" -> "Up."; echo drop 7 -> 8/20 simple
right). FOLDER holds the 4 dev chats learnt (exp.py) and the one-word behaviour in every profile (exp3.py).

- ``plain``: log p(candidate | question, draft), the behaviour adapter on (what the memory does);
- ``type``: + the bare base's log p(" <noun>" | "<candidate> is a"), the noun the question asks for ("What is my
  job?" -> job, "What colour ..." -> colour, "What kind of animal ..." -> animal, where -> place, who -> person);
  questions with no such noun ("What does my brother make?") get no type term;
- ``noecho``: candidates made only of the question's own words dropped ("Up." for the opposite of up).

Usage (from this folder): python exp8_type.py FOLDER [learn]   (learn: teach the 4 dev chats and the behaviour chunk into FOLDER first)
"""
import sys

import numpy as np
import torch

torch.set_num_threads(2)
from picks import echo, for_each_draft, has, learn  # noqa: E402

from hf_steer.memory import LoraMemory  # noqa: E402
from hf_steer.memory import behaviour as beh  # noqa: E402
from hf_steer.memory import bench_chats as chats  # noqa: E402

folder = sys.argv[1]
mem = LoraMemory(folder=folder, profile=chats.DEV_CHATS[0]["name"])
if sys.argv[2:] == ["learn"]:
    learn(mem)
tok = mem.tokenizer
tally: dict[str, list[bool]] = {}


def score_all(q, draft, names, expected, label):
    cands = beh.copy_candidates(draft, 1)
    if not cands:
        return
    plain = np.array(mem._answer_scores(beh.reshape_prompt(tok, q, draft), cands, names))
    noun = beh.asked_type(q)
    typ = np.array(mem._type_fit(noun, cands)) if noun else np.zeros(len(cands))
    keep = np.array([not echo(q, c) for c in cands])
    if not keep.any():
        keep[:] = True
    rows = {"plain": plain, "type": plain + typ, "noecho": np.where(keep, plain, -1e9),
            "noecho+type": np.where(keep, plain + typ, -1e9)}
    for how, s in rows.items():
        pick = cands[int(np.argmax(s))]
        ok = has(pick, expected)
        tally.setdefault(f"{label}/{how}", []).append(ok)
        if how in ("plain", "noecho+type") and not ok:
            print(f"  {label} {how} [{noun}] {q!r} {expected!r}: {pick!r} <- {draft!r}", flush=True)


for_each_draft(mem, score_all)
for key in sorted(tally):
    print(f"{key:22s} {sum(tally[key])}/{len(tally[key])}")

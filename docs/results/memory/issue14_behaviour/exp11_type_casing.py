"""Issue 14: the three pick changes tried one at a time, together -- short answers in the draft's own casing
(exp10_casing.py: the job question's gap halved, Larkfield -2.51 against nurse -4.00), the answer-type check
(exp8_type.py: gave "Nurse." 3.0 nats back, 0.1 nat short) and echoes dropped (exp8_type.py: one simple question
more). Teaches the 4 dev chats and the one-word chunk into FOLDER with the casing patched in, then scores:

- ``plain``: the default pick on the patched learning (casing alone);
- ``type``: + the bare base's log p(" <noun>" | "<Candidate> is a(n)"), the noun the question asks for;
- ``noecho``: candidates made only of the question's words dropped;
- ``noecho+type``: both.

Usage (from this folder): python exp11_type_casing.py FOLDER
"""
import sys

import numpy as np
import torch

torch.set_num_threads(2)
from picks import echo, for_each_draft, has, learn, patch_casing  # noqa: E402

from hf_steer.memory import LoraMemory  # noqa: E402
from hf_steer.memory import behaviour as beh  # noqa: E402
from hf_steer.memory import bench_chats as chats  # noqa: E402

candidates = patch_casing()
mem = LoraMemory(folder=sys.argv[1], profile=chats.DEV_CHATS[0]["name"])
learn(mem)
tok = mem.tokenizer
tally: dict[str, list[bool]] = {}


def score(q, draft, names, expected, label):
    cands = candidates(draft, 1, False)
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
        if not ok:
            top = sorted(zip(s, cands), reverse=True)[:3]
            print(f"  {label} {how} [{noun}] {q!r} {expected!r}: {pick!r}  top "
                  f"{[(c, round(float(v), 2)) for v, c in top]} <- {draft!r}", flush=True)


for_each_draft(mem, score)
for key in sorted(tally):
    print(f"{key:22s} {sum(tally[key])}/{len(tally[key])}")

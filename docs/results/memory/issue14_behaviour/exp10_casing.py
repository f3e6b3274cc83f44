"""Issue 14: a word limit's short answers kept in the draft's own casing, capitalised only for display.

The default pick scores "Nurse." (capitalised) against "Larkfield." for "What is my job?" from "You work as a night
nurse at the Larkfield hospital.": a proper noun is copied from the draft as it stands, a common noun must be
re-cased first, and the adapter learnt the capitalised targets ("Baker." from "... as a baker ..."). Here the
targets and the candidates are the draft's own run of words ("baker.", "nurse.", "Larkfield."), so copying a common
noun costs what copying a name costs; the answer shown is capitalised afterwards.

Usage (from this folder): python exp10_casing.py FOLDER   (teaches the 4 dev chats and the one-word chunk into FOLDER
with the patched behaviour, then scores the default pick on the 27 fact and 20 simple questions)
"""
import sys

import numpy as np
import torch

torch.set_num_threads(2)
from picks import for_each_draft, has, learn, patch_casing  # noqa: E402

from hf_steer.memory import LoraMemory  # noqa: E402
from hf_steer.memory import behaviour as beh  # noqa: E402
from hf_steer.memory import bench_chats as chats  # noqa: E402

candidates = patch_casing()

folder = sys.argv[1]
mem = LoraMemory(folder=folder, profile=chats.DEV_CHATS[0]["name"])
learn(mem)
tok = mem.tokenizer
tally: dict[str, list[bool]] = {}


def score(q, draft, names, expected, label):
    cands = candidates(draft, 1, False)
    if not cands:
        return
    s = np.array(mem._answer_scores(beh.reshape_prompt(tok, q, draft), cands, names))
    pick = cands[int(np.argmax(s))]
    ok = has(pick, expected)
    tally.setdefault(label, []).append(ok)
    top = sorted(zip(s, cands), reverse=True)[:3]
    print(f"  {label} {'ok ' if ok else 'MISS'} {q!r} {expected!r}: {pick!r}  top {[(c, round(float(v), 2)) for v, c in top]}",
          flush=True)


for_each_draft(mem, score)
for key in sorted(tally):
    print(f"{key:8s} {sum(tally[key])}/{len(tally[key])}")

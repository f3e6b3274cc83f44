"""Issue 14: a word limit's short answers kept in the draft's own casing, capitalised only for display.

The default pick scores "Nurse." (capitalised) against "Larkfield." for "What is my job?" from "You work as a night
nurse at the Larkfield hospital.": a proper noun is copied from the draft as it stands, a common noun must be
re-cased first, and the adapter learnt the capitalised targets ("Baker." from "... as a baker ..."). Here the
targets and the candidates are the draft's own run of words ("baker.", "nurse.", "Larkfield."), so copying a common
noun costs what copying a name costs; the answer shown is capitalised afterwards.

Usage (from this folder): python exp10_casing.py FOLDER   (teaches the 4 dev chats and the one-word chunk into FOLDER
with the patched behaviour, then scores the default pick on the 27 fact and 20 simple questions)
"""
import re
import sys

import numpy as np
import torch

torch.set_num_threads(2)
from picks import for_each_draft, has, learn  # noqa: E402

from hf_steer.memory import LoraMemory  # noqa: E402
from hf_steer.memory import behaviour as beh  # noqa: E402
from hf_steer.memory import bench_chats as chats  # noqa: E402
from hf_steer.memory import memory as memory_module  # noqa: E402

original_obey, original_candidates = beh.obey, beh.copy_candidates


def as_in(draft: str, short: str | None) -> str | None:
    """The known short answer as the draft writes it ("baker" for "Baker" in "... as a baker at ...")."""
    if short is None:
        return None
    m = re.search(re.escape(short), draft, re.I)
    return draft[m.start():m.end()] if m else short


def obey(answer, behaviours, short_answer=None):
    return original_obey(answer, behaviours, as_in(answer, short_answer))


def limit(text, max_words):  # _limit without the capital
    words = re.findall(r"[\w'’-]+", text)
    return " ".join(words[:max_words]) + "." if words else text


def candidates(draft, max_words=3, small_talk=False):
    """copy_candidates in the draft's own casing."""
    out = []
    for c in original_candidates(draft, max_words, small_talk):
        body = c.rstrip(".!?")
        m = re.search(r"(?<![\w'’-])" + re.escape(body) + r"(?![\w'’-])", draft, re.I)
        out.append(draft[m.start():m.end()] + c[len(body):] if m else c)
    return list(dict.fromkeys(out))


beh.obey, beh._limit = obey, limit  # behaviour_examples looks both up in its module
memory_module.copy_candidates = candidates

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

"""Issue 14: under the one-word behaviour, is a wrong short answer the pick's fault or the draft's?

For the bench's 20 held-out simple questions, asked of a memory that holds the one-word behaviour (FOLDER as
exp8_type.py leaves it: the 4 dev chats and the behaviour chunk learnt), prints each question's draft (the
answer before the behaviour reshapes it), whether the draft holds the expected word (H) and whether the short
answer does (R).

Usage: python simple_drafts.py FOLDER
"""

import sys

import torch

from hf_steer.memory import LoraMemory
from hf_steer.memory import bench_chats as chats

torch.set_num_threads(2)
mem = LoraMemory(folder=sys.argv[1], profile=chats.DEV_CHATS[0]["name"])
simple = chats.BEHAVIOUR["questions"]
held = right = 0
for (question, expected), reply in zip(simple, mem.answer_many([q for q, _ in simple], max_new_tokens=32)):
    draft = reply.get("draft", "")
    holds, ok = expected.lower() in draft.lower(), expected.lower() in reply["answer"].lower()
    held, right = held + holds, right + ok
    print(f"{'H' if holds else '-'}{'R' if ok else '-'} {question!r} -> {reply['answer']!r} | {draft[:110]!r}")
print(f"drafts holding the expected word {held}/{len(simple)}, short answers right {right}/{len(simple)}")

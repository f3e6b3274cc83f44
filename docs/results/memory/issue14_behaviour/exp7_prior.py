"""Issue 14: how a word limit picks among the draft's short runs, second try (after exp5_calibrate.py). FOLDER holds
the 4 dev chats learnt (exp.py) and the one-word behaviour in every profile (exp3.py). For the 27 fact questions
and the 20 simple questions this takes the default path's drafts and scores each candidate:

- ``plain``: log p(candidate | question, draft), the behaviour adapter on (what the memory does);
- ``prior``: log p(candidate | question) from the bare base, no draft, no adapter: what kind of answer the
  question asks for ("What is my job?" -> a job word, not a place);
- ``plain+prior``: both (a product of the two, no weight fitted);
- ``noecho``: candidates made only of the question's own words dropped ("Japan." for the capital of Japan);
- ``+sent``: the draft's whole sentences that fit the limit offered too ("Hello!" for "Hi!").

Usage: python exp7_prior.py FOLDER
"""
import re
import sys

import numpy as np
import torch

torch.set_num_threads(2)
from picks import echo, for_each_draft, has  # noqa: E402

from hf_steer.memory import LoraMemory  # noqa: E402
from hf_steer.memory import augment as aug  # noqa: E402
from hf_steer.memory import behaviour as beh  # noqa: E402
from hf_steer.memory import bench_chats as chats  # noqa: E402

folder = sys.argv[1]
mem = LoraMemory(folder=folder, profile=chats.DEV_CHATS[0]["name"])
tok = mem.tokenizer
W = re.compile(r"[\w'’-]+")


@torch.no_grad()
def prior_scores(q, cands):
    with mem.peft.disable_adapter():
        return np.array(mem._answer_scores(aug.chat_prompt(tok, q), cands, ()))


def sentences(draft, limit):
    out = []
    for s in re.findall(r"[^.!?]+[.!?]", draft):
        s = s.strip()
        if 0 < len(W.findall(s)) <= limit:
            out.append(s)
    return out


tally: dict[str, list[bool]] = {}


def score_all(q, draft, names, expected, label):
    base = beh.copy_candidates(draft, 1)
    for cname, cands in (("today", base), ("sent", base + [s for s in sentences(draft, 2) if s not in base])):
        if not cands:
            continue
        plain = np.array(mem._answer_scores(beh.reshape_prompt(tok, q, draft), cands, names))
        prior = prior_scores(q, cands)
        keep = np.array([not echo(q, c) for c in cands])
        if not keep.any():
            keep[:] = True
        rows = {"plain": plain, "prior": prior, "plain+prior": plain + prior,
                "noecho": np.where(keep, plain, -1e9), "noecho+prior": np.where(keep, plain + prior, -1e9)}
        for how, s in rows.items():
            pick = cands[int(np.argmax(s))]
            ok = has(pick, expected) if expected else len(W.findall(pick)) <= 2
            tally.setdefault(f"{label}/{cname}/{how}", []).append(ok)
            if how in ("plain", "plain+prior", "noecho+prior") and not ok:
                print(f"  {label} {cname}/{how} {q!r} {expected!r}: {pick!r} <- {draft!r}", flush=True)


GREET = ["Hi!", "Hello, how are you?", "Good evening!", "Thanks a lot!", "Hey there"]
for_each_draft(mem, score_all)
mem.use_profile("mara", create=False)
names = tuple(mem.names("behaviour"))
for q, r in zip(GREET, mem.answer_many(GREET, max_new_tokens=32)):
    print("  greet", q, "->", r["answer"], "| draft", r.get("draft", "")[:80])
    score_all(q, r.get("draft", ""), names, None, "greet")
for key in sorted(tally):
    print(f"{key:28s} {sum(tally[key])}/{len(tally[key])}")

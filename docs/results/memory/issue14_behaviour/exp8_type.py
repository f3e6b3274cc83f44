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
import re
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
W = re.compile(r"[\w'’-]+")
DET = {"my", "your", "the", "a", "an", "his", "her", "our", "their"}
AUX = {"do", "does", "did", "should", "can", "could", "will", "would", "am", "have", "has"}
STOP_AT = {"called", "named", "of", "in", "for", "on", "at", "to", "with", "that", "do", "does", "did", "is", "are"}


def head_noun(q: str) -> str | None:
    w = [x.lower().removesuffix("'s").removesuffix("’s") for x in W.findall(q.replace("'s ", " is ", 1) if q.lower().startswith("what's") else q)]
    if not w:
        return None
    if w[0] == "where":
        return "place"
    if w[0] == "who":
        return "person"
    if w[0] not in ("what", "which") or len(w) < 2:
        return None
    rest = w[1:]
    if rest[0] in ("is", "are", "was", "were"):
        rest = rest[1:]
        while rest and rest[0] in DET:
            rest = rest[1:]
        nouns = []
        for x in rest:
            if x in STOP_AT:
                break
            nouns.append(x)
        return nouns[-1] if nouns else None
    if rest[0] in AUX:
        return None
    if rest[0] in ("kind", "type", "sort") and len(rest) > 2 and rest[1] == "of":
        return rest[2]
    return rest[0]


@torch.no_grad()
def type_scores(noun: str, cands: list[str]) -> np.ndarray:
    art = "an" if noun[0] in "aeiou" else "a"
    out = []
    with mem.peft.disable_adapter():
        for c in cands:
            ctx = tok(f"{c.rstrip('.!?')} is {art}", add_special_tokens=False)["input_ids"]
            tgt = tok(f" {noun}", add_special_tokens=False)["input_ids"]
            ids = torch.tensor([ctx + tgt])
            logp = mem.model(input_ids=ids).logits.float().log_softmax(-1)[0]
            out.append(sum(logp[len(ctx) - 1 + k, t].item() for k, t in enumerate(tgt)))
    return np.array(out)


tally: dict[str, list[bool]] = {}


def score_all(q, draft, names, expected, label):
    cands = beh.copy_candidates(draft, 1)
    if not cands:
        return
    plain = np.array(mem._answer_scores(beh.reshape_prompt(tok, q, draft), cands, names))
    noun = head_noun(q)
    typ = type_scores(noun, cands) if noun else np.zeros(len(cands))
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

"""Issue 14: a word limit's pick by two scorers. FOLDER as for exp5_calibrate.py. For the 27 fact questions
(and, with ``--simple``, the 20 simple questions) each candidate run of the draft is scored by

- ``plain``: log p(candidate | question, draft) with the behaviour adapter (what the memory does);
- ``base``: the same prompt, adapters off;
- ``both``: their sum (a product of the two experts);
each also with the candidates that only repeat the question's words dropped (``-echo``: "Car." for "What
colour is my car?").

Usage: python exp6_experts.py FOLDER [--simple]
"""
import re
import sys

import numpy as np
import torch

torch.set_num_threads(2)
from hf_steer.memory import LoraMemory  # noqa: E402
from hf_steer.memory import behaviour as beh  # noqa: E402
from hf_steer.memory import bench_chats as chats  # noqa: E402

folder = sys.argv[1]
mem = LoraMemory(folder=folder, profile=chats.DEV_CHATS[0]["name"])
tok = mem.tokenizer


def words(text):
    return {w.lower() for w in re.findall(r"[\w'’-]+", text)}


def has(a, e):
    return e.lower() in a.lower()


def run(qs, names, label, tally):
    for (q, e), r in zip(qs, mem.answer_many([q for q, _ in qs], max_new_tokens=32)):
        draft = r.get("draft", "")
        cands = beh.copy_candidates(draft, 1)
        if not cands:
            continue
        prompt = beh.reshape_prompt(tok, q, draft)
        plain = np.array(mem._answer_scores(prompt, cands, names))
        base = np.array(mem._answer_scores(prompt, cands, ()))
        echo = np.array([0.0 if words(c) - words(q) else -np.inf for c in cands])
        for how, s in {"plain": plain, "base": base, "both": plain + base}.items():
            for tag, ss in (("", s), ("-echo", s + echo)):
                pick = cands[int(np.argmax(ss))]
                tally.setdefault(how + tag, []).append(has(pick, e))
                if not has(pick, e) and tag == "-echo":
                    print(f"  {label} {how}{tag} {q!r} {e!r}: {pick!r} <- {draft!r}", flush=True)


facts: dict[str, list[bool]] = {}
for chat in chats.DEV_CHATS:
    mem.use_profile(chat["name"], create=False)
    run([(q, e) for q, e, *_ in chat["questions"]], tuple(mem.names("behaviour")), "fact", facts)
simple: dict[str, list[bool]] = {}
if "--simple" in sys.argv:
    mem.use_profile("mara", create=False)
    run(chats.BEHAVIOUR["questions"], tuple(mem.names("behaviour")), "simple", simple)
for key in facts:
    print(f"{key:12s} fact {sum(facts[key])}/{len(facts[key])}  simple right {sum(simple.get(key, []))}/{len(simple.get(key, []))}")

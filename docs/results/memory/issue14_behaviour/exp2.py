"""Issue 14: the behaviour as a reshaper of the draft answer. Re-teaches the one-word chunk in each dev chat's
profile of FOLDER (a copy of exp.py's learnt folder) and measures the default path.

Usage: python exp2.py FOLDER
"""
import json
import re
import sys
import time

import torch

torch.set_num_threads(2)
from hf_steer.memory import LoraMemory  # noqa: E402
from hf_steer.memory import bench_chats as chats  # noqa: E402

folder = sys.argv[1]
mem = LoraMemory(folder=folder, profile=chats.DEV_CHATS[0]["name"])


def words(a):
    return len(re.findall(r"[\w'’-]+", a))


def has(a, e):
    return e.lower() in a.lower()


res, secs = {}, []
simple = chats.BEHAVIOUR["questions"]
for chat in chats.DEV_CHATS:
    mem.use_profile(chat["name"], create=False)
    for n in mem.names("behaviour"):
        mem.forget(n)
    before_simple = mem.ask_many([q for q, _ in simple], max_new_tokens=32)
    t = time.time()
    row = mem.remember(chats.BEHAVIOUR["chunk"])
    secs.append(round(time.time() - t, 1))
    qs = chat["questions"]
    facts = mem.answer_many([q for q, *_ in qs], max_new_tokens=32)
    res[chat["name"]] = [(q, e, r["answer"], r["draft"]) for (q, e, *_), r in zip(qs, facts)]
    if chat is chats.DEV_CHATS[0]:
        s = mem.answer_many([q for q, _ in simple], max_new_tokens=32)
        res["simple"] = [(q, e, r["answer"], r["draft"]) for (q, e), r in zip(simple, s)]
        mem.forget(row["name"])
        again = mem.ask_many([q for q, _ in simple], max_new_tokens=32)
        res["restored"] = sum(a == b for a, b in zip(again, before_simple))
        mem.remember(chats.BEHAVIOUR["chunk"])
fact = [has(a, e) for c in chats.DEV_CHATS for _, e, a, _ in res[c["name"]]]
short_f = [words(a) <= 2 for c in chats.DEV_CHATS for _, e, a, _ in res[c["name"]]]
print(f"behaviour training seconds {secs}")
print(f"fact recall {sum(fact)}/{len(fact)} (<=2 words {sum(short_f)}); simple <=2 words "
      f"{sum(words(a) <= 2 for *_, a, _ in res['simple'])}/20, right {sum(words(a) <= 2 and has(a, e) for _, e, a, _ in res['simple'])}; "
      f"restored {res['restored']}/20")
for k in [c["name"] for c in chats.DEV_CHATS] + ["simple"]:
    for q, e, a, d in res[k]:
        print(f"{k} {q!r} expect {e!r}: {a!r}  <- {d!r}")
json.dump(res, open(folder.rstrip("/") + "_exp2.json", "w"), indent=1)

"""Issue 14: behaviour (reshaper) training settings. FOLDER holds the 4 dev chats learnt (exp.py); for each
setting the one-word adapter is trained once (in mara's profile), copied into the other profiles, and the
default path is measured on the 27 fact questions and the 20 simple questions.

Usage: python exp3.py FOLDER '[{"steps": 8, "behaviour_learning_rate": 5e-3}, ...]'
"""
import dataclasses
import json
import re
import sys
import time

import torch

torch.set_num_threads(2)
from hf_steer.memory import LoraMemory  # noqa: E402
from hf_steer.memory import bench_chats as chats  # noqa: E402

folder, settings = sys.argv[1], json.loads(sys.argv[2])
mem = LoraMemory(folder=folder, profile=chats.DEV_CHATS[0]["name"])
base_preset = mem.preset


def words(a):
    return len(re.findall(r"[\w'’-]+", a))


def has(a, e):
    return e.lower() in a.lower()


for k, setting in enumerate(settings):
    for chat in chats.DEV_CHATS:
        mem.use_profile(chat["name"], create=False)
        for n in mem.names("behaviour"):
            mem.forget(n)
    mem.use_profile("mara", create=False)
    mem.preset = dataclasses.replace(base_preset, **setting)
    t = time.time()
    row = mem.remember(chats.BEHAVIOUR["chunk"], name=f"b{k}")
    secs = time.time() - t
    src = mem.catalog.adapter_dir(row["name"]) if hasattr(mem.catalog, "adapter_dir") else None
    files = {p.name: p.read_bytes() for p in src.iterdir() if p.is_file()}
    fact, lines = [], []
    for chat in chats.DEV_CHATS:
        mem.use_profile(chat["name"], create=False)
        if row["name"] not in mem.catalog:
            mem.add_trained(files, {**row})
        for (q, e, *_), r in zip(chat["questions"], mem.answer_many([q for q, *_ in chat["questions"]], max_new_tokens=32)):
            fact.append(has(r["answer"], e))
            lines.append(f"  {q!r} {e!r}: {r['answer']!r} <- {r['draft']!r}")
    mem.use_profile("mara", create=False)
    simple = chats.BEHAVIOUR["questions"]
    s = mem.ask_many([q for q, _ in simple], max_new_tokens=32)
    print(f"{setting}: train {secs:.1f} s, fact recall {sum(fact)}/{len(fact)}, simple <=2 words "
          f"{sum(words(a) <= 2 for a in s)}/20, right {sum(words(a) <= 2 and has(a, e) for a, (_, e) in zip(s, simple))}", flush=True)
    print("\n".join(x for x, ok in zip(lines, fact) if not ok), flush=True)

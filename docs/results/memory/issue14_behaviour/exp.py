"""Issue 14, behaviour + facts: try answer paths with the one-word behaviour on the 4 dev chats.

Usage: python exp.py FOLDER [learn]   (learn: teach the dev chats + the behaviour chunk into FOLDER first)
Each dev chat is its own profile, as in the bench. Prints fact recall, <=2-word share and right rate per path.
"""
import json
import re
import sys

import torch

torch.set_num_threads(2)
from hf_steer.memory import LoraMemory  # noqa: E402
from hf_steer.memory import augment as aug  # noqa: E402
from hf_steer.memory import bench_chats as chats  # noqa: E402

folder = sys.argv[1]
mem = LoraMemory(folder=folder, profile=chats.DEV_CHATS[0]["name"])
if len(sys.argv) > 2 and sys.argv[2] == "learn":
    for chat in chats.DEV_CHATS:
        mem.use_profile(chat["name"])
        for c in chat["chunks"]:
            mem.remember(c)
        mem.remember(chats.BEHAVIOUR["chunk"])


def words(a):
    return len(re.findall(r"[\w'’-]+", a))


def has(a, e):
    return e.lower() in a.lower()


def paths(qs):
    out = {}
    out["default"] = mem.answer_many(qs, max_new_tokens=16)
    beh = mem.names("behaviour")
    facts = [[n for n in r["adapters"] if n not in beh] for r in out["default"]]
    drafts = []
    for q, f in zip(qs, facts):
        drafts.append(mem.answer_many([q], use=f, max_new_tokens=24)[0])
    out["draft"] = drafts
    for name, ctx in (("short_from_draft", lambda d: d["answer"]),
                      ("short_from_notes_and_draft", lambda d: aug.build_notes(d["notes"] + [d["answer"]]))):
        prompts = [aug.chat_prompt(mem.tokenizer, q, ctx(d)) for q, d in zip(qs, drafts)]
        mem.peft.base_model.set_adapter(beh, inference_mode=True)
        ans = mem._generate(prompts, True, 16, 16)
        mem._activate(mem.active)
        out[name] = [{"answer": a} for a in ans]
    return out


res = {}
for chat in chats.DEV_CHATS:
    mem.use_profile(chat["name"], create=False)
    qs = [q for q, *_ in chat["questions"]]
    res[chat["name"]] = {"facts": paths(qs), "expect": [e for _, e, *_ in chat["questions"]]}
mem.use_profile(chats.DEV_CHATS[0]["name"], create=False)
simple = chats.BEHAVIOUR["questions"]
res["simple"] = {"facts": paths([q for q, _ in simple]), "expect": [e for _, e in simple]}

for key in ("default", "draft", "short_from_draft", "short_from_notes_and_draft"):
    fact = [has(r["answer"], e) for c in chats.DEV_CHATS for r, e in zip(res[c["name"]]["facts"][key], res[c["name"]]["expect"])]
    short_f = [words(r["answer"]) <= 2 for c in chats.DEV_CHATS for r in res[c["name"]]["facts"][key]]
    s = res["simple"]
    short = [words(r["answer"]) <= 2 for r in s["facts"][key]]
    right = [words(r["answer"]) <= 2 and has(r["answer"], e) for r, e in zip(s["facts"][key], s["expect"])]
    print(f"{key:28s} fact recall {sum(fact)}/{len(fact)} (<=2 words {sum(short_f)}), simple <=2 words {sum(short)}/{len(short)}, right {sum(right)}")
for c in list(chats.DEV_CHATS) + [{"name": "simple"}]:
    r = res[c["name"]]
    for i, e in enumerate(r["expect"]):
        print(c["name"], repr(e), " | ".join(repr(r["facts"][k][i]["answer"]) for k in ("default", "draft", "short_from_draft", "short_from_notes_and_draft")))
json.dump(res, open(folder.rstrip("/") + ".json", "w"), indent=1, default=str)

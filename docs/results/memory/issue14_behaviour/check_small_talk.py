"""Issue 14: the default path on the 4 dev chats learnt with the one-word behaviour (FOLDER from exp.py + exp3.py):
fact recall, 6 small-talk messages per profile (answer, draft, adapters, notes), the 20 simple questions.

Usage: python check_small_talk.py FOLDER
"""
import re
import sys

import torch

torch.set_num_threads(2)
from hf_steer.memory import LoraMemory  # noqa: E402
from hf_steer.memory import bench_chats as chats  # noqa: E402

mem = LoraMemory(folder=sys.argv[1], profile="mara")
W = re.compile(r"[\w'’-]+")
good = n = 0
GREET = ["Hi!", "Hello, how are you?", "How are you doing today?", "Thanks a lot!", "Good evening!", "Bye, see you later!"]
for chat in chats.DEV_CHATS:
    mem.use_profile(chat["name"], create=False)
    qs = chat["questions"]
    for (q, e, *_), r in zip(qs, mem.answer_many([q for q, *_ in qs])):
        ok = e.lower() in r["answer"].lower()
        good, n = good + ok, n + 1
        if not ok:
            print("  miss", chat["name"], q, e, "->", r["answer"], "| draft", r["draft"])
    for q, r in zip(GREET, mem.answer_many(GREET)):
        print("  ", chat["name"], q, "->", r["answer"], "| draft", (r["draft"] or "")[:70], r["adapters"], r["notes"])
print("fact", good, "/", n)
mem.use_profile("mara", create=False)
simple = chats.BEHAVIOUR["questions"]
ans = mem.ask_many([q for q, _ in simple])
print("simple <=2 words", sum(len(W.findall(a)) <= 2 for a in ans), "right", sum(e.lower() in a.lower() for a, (_, e) in zip(ans, simple)))

"""beh.py [facts] [JSON overrides]: the bench's "answer in one word" chunk alone (or after dev chat mara with
'facts'), 20 held-out simple questions before/after, fact recall with it, answers after forgetting it."""
import sys, time, tempfile, torch, statistics
torch.set_num_threads(1)
from hf_steer.memory import LoraMemory
from hf_steer.memory import bench, bench_chats as chats
t=time.time()
mem = LoraMemory(folder=tempfile.mkdtemp(), profile="x")
simple = chats.BEHAVIOUR["questions"]
qs = []
if "facts" in sys.argv:
    chat = chats.DEV_CHATS[0]
    for c in chat["chunks"]:
        mem.remember(c)
    qs = chat["questions"]
    fb = mem.ask_many([q for q, *_ in qs])
before = mem.ask_many([q for q, _ in simple])
t0=time.time()
import json as _j
over=_j.loads([a for a in sys.argv[1:] if a.startswith("{")][0]) if any(a.startswith("{") for a in sys.argv[1:]) else {}
print("overrides", over)
row = mem.remember(chats.BEHAVIOUR["chunk"], **over)
print("behaviour train", row["train"], time.time()-t0)
after = mem.ask_many([q for q, _ in simple])
for (q, e), b, a in zip(simple, before, after):
    print(f"{q!r:45} {e:10} {bench._words(a)<=2 and bench._contains(a,e)!s:5} {a!r}   | base: {b[:50]!r}")
print("base: short", sum(bench._words(b)<=2 for b in before), "contains the word", sum(bench._contains(b,e) for b,(q,e) in zip(before,simple)))
print("short", sum(bench._words(a)<=2 for a in after), "right", sum(bench._words(a)<=2 and bench._contains(a,e) for a,(q,e) in zip(after,simple)))
if qs:
    fw = mem.ask_many([q for q, *_ in qs])
    for (q, e, *_), a, b in zip(qs, fb, fw):
        print(f"{q!r:45} {e:10} before {bench._contains(a,e)!s:5} {a[:60]!r} with {bench._contains(b,e)!s:5} {b[:60]!r}")
    print("fact before", sum(bench._contains(a,e) for a,(q,e,*_) in zip(fb,qs)), "with", sum(bench._contains(a,e) for a,(q,e,*_) in zip(fw,qs)), "of", len(qs))
mem.forget(row["name"])
again = mem.ask_many([q for q, _ in simple])
print("restored", sum(a==b for a,b in zip(again,before)), "/", len(before))
print("total", time.time()-t)

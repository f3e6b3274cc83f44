"""With dev chat mara learnt and the one-word behaviour on: each fact question's answer per adapter set."""
import tempfile, torch
torch.set_num_threads(2)
from hf_steer.memory import LoraMemory, bench, bench_chats as chats
mem = LoraMemory(folder=tempfile.mkdtemp(), profile="x")
chat = chats.DEV_CHATS[0]
for c in chat["chunks"]:
    mem.remember(c)
qs = chat["questions"]
before = mem.answer_many([q for q, *_ in qs], max_new_tokens=16)
row = mem.remember(chats.BEHAVIOUR["chunk"])
with_b = mem.answer_many([q for q, *_ in qs], max_new_tokens=16)
only_b = mem.answer_many([q for q, *_ in qs], use=[row["name"]], max_new_tokens=16)
for (q, e, *_), b, w, o in zip(qs, before, with_b, only_b):
    print(f"{q!r} expect {e!r}\n   notes {w['notes']} adapters {w['adapters']}\n   without: {b['answer']!r}\n   with:    {w['answer']!r} (recited {w['recited']!r})\n   notes + behaviour only: {o['answer']!r}")

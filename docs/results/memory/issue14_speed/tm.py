"""tm.py THREADS '{overrides}' [chats]: remember the first dev chats' chunks; per chunk wall / train / cpu seconds."""
import json, sys, tempfile, time
import torch
torch.set_num_threads(int(sys.argv[1]))
over = json.loads(sys.argv[2]); nchat = int(sys.argv[3]) if len(sys.argv) > 3 else 1
from hf_steer import load_model
from hf_steer.memory import LoraMemory
from hf_steer.memory.config import get_preset
from hf_steer.memory.bench_chats import DEV_CHATS
model, tok = load_model()
with tempfile.TemporaryDirectory() as d:
    mem = LoraMemory(model, tok, folder=d, preset=get_preset("fast-cpu", **over), profile="t")
    mem.anchors(mem.preset.anchors)
    for chat in DEV_CHATS[:nchat]:
        mem.use_profile("t-" + chat["name"])
        for chunk in chat["chunks"]:
            t = time.perf_counter(); r = mem.remember(chunk); w = time.perf_counter() - t
            tr = r["train"]
            print(f"wall {w:.2f} train {tr['seconds']} cpu {tr['cpu_seconds']} texts {tr['examples']} tokens {tr['tokens']} groups {tr.get('length_groups')} loss {tr['first_loss']}->{tr['last_loss']}", flush=True)

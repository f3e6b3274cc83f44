"""exp.py OUT.json SET N '{"steps": 6, ...}' THREADS: train SET's first N chats with preset overrides, score every path."""
import json, sys, tempfile, time, statistics
sys.path.insert(0, __import__("os").path.dirname(__file__))
import torch
out, which, n, over, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
from hf_steer import load_model
from hf_steer.memory import LoraMemory
from hf_steer.memory.config import BenchConfig, get_preset
from hf_steer.memory import bench, bench_chats
from mychats import MY_CHATS
sets = {"dev": bench_chats.DEV_CHATS, "heldout": bench_chats.HELDOUT_CHATS, "mine": MY_CHATS}
model, tok = load_model()
preset = get_preset("fast-cpu", **over)
res = {"set": which, "chats": n, "overrides": over, "preset": preset.to_dict()}
with tempfile.TemporaryDirectory() as d:
    mem = LoraMemory(model, tok, folder=d, preset=preset, profile="x")
    cfg = BenchConfig(parts=["conversation"], chats=n)
    secs = []
    orig = mem.remember
    def remember(chunk, *a, **k):
        row = orig(chunk, *a, **k)
        print("   train", row["train"], flush=True)
        return row
    mem.remember = remember
    bench._conversations(mem, cfg, sets[which][:n], "conversation", res, print, secs, behaviour=False)
json.dump(res, open(out, "w"), indent=1)
print({k: v for k, v in res.items() if not k.endswith("examples")})

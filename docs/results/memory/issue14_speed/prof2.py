"""prof2.py THREADS '{overrides}': where one 4-turn chunk's time goes with the given preset (mara chunk 1)."""
import sys, time, tempfile, json
import torch
torch.set_num_threads(int(sys.argv[1]))
over = json.loads(sys.argv[2])
from hf_steer import load_model
from hf_steer.memory import LoraMemory
from hf_steer.memory import augment as aug, train as tr
from hf_steer.memory.config import get_preset
from hf_steer.memory.bench_chats import DEV_CHATS
from hf_steer.memory.learn import preset_augment, add_adapter
import torch.nn.functional as F
T = {}
def tick(k, t0): T[k] = round(time.perf_counter() - t0, 3)
model, tok = load_model()
preset = get_preset("fast-cpu", **over)
mem = LoraMemory(model, tok, folder=tempfile.mkdtemp(), preset=preset)
anchors = mem.anchors(preset.anchors)
mem.remember(DEV_CHATS[1]["chunks"][0])  # warm-up: first adapter, first embedding (not timed)
chunk = DEV_CHATS[0]["chunks"][0]
t = time.perf_counter(); job = mem.plan(chunk)[0]; tick("read_chunk+plan", t)
t = time.perf_counter(); ex, _ = aug.fact_examples(job["facts"], tok, **preset_augment(preset)); tick("augment", t)
ex += anchors[: preset.anchors]
t = time.perf_counter(); rows = tr.encode_examples(tok, ex, preset.max_length); tick("tokenize", t)
groups = tr.length_groups([len(r["input_ids"]) for r in rows])
bs = [tr._collate([rows[i] for i in g], tok.pad_token_id) for g in groups]
info = {"texts": len(rows), "tokens": sum(len(r["input_ids"]) for r in rows), "padded_positions": sum(b["input_ids"].numel() for b in bs),
        "answer_tokens": sum(int((b["labels"][:, 1:] != -100).sum()) for b in bs), "groups": len(bs)}
t = time.perf_counter()
mem.peft = add_adapter(mem.peft, mem.model, job["name"], mem._config_for(preset))
mem.peft.base_model.set_adapter([job["name"]], inference_mode=False); tick("add_adapter", t)
peft = mem.peft; parts = tr._decoder_parts(peft); first = len(parts[0]) - preset.top_layers
params = [p for n, p in peft.named_parameters() if p.requires_grad and f".{job['name']}." in n]
opt = torch.optim.AdamW(params, lr=preset.learning_rate); peft.train()
t = time.perf_counter(); caches = [tr._PrefixCache(peft, parts, first, b) for b in bs]; tick("bottom_layers_once_no_grad", t)
sup = info["answer_tokens"]; fw = hd = bw = op = 0.0
for s in range(preset.steps):
    for c in caches:
        t0 = time.perf_counter(); h = c.hidden
        for layer in c.layers[first:]:
            h = layer(h, *c.rest, **c.kwargs); h = h[0] if isinstance(h, tuple) else h
        h = c.norm(h)[:, :-1][c.positions]; t1 = time.perf_counter(); fw += t1 - t0
        loss = F.cross_entropy(c.head(h).float(), c.targets, reduction="sum") / sup; t2 = time.perf_counter(); hd += t2 - t1
        loss.backward(); bw += time.perf_counter() - t2
    t3 = time.perf_counter(); opt.step(); opt.zero_grad(set_to_none=True); op += time.perf_counter() - t3
T.update({"top_layers_forward(all steps)": round(fw, 3), "lm_head_at_answers+loss(all steps)": round(hd, 3),
          "backward(all steps)": round(bw, 3), "optimizer(all steps)": round(op, 3)})
peft.eval()
row = {"kind": "chunk", "statements": [f["text"] for f in job["facts"]], "turns": job["turns"], "preset": preset.to_dict(), "train": {}}
t = time.perf_counter(); files = mem._files(job["name"], row); tick("adapter_to_safetensors_bytes", t)
t = time.perf_counter(); mem.catalog.write_adapter(job["name"], lambda tmp: __import__("hf_steer.memory.learn", fromlist=["x"]).write_adapter_files(tmp, files)); tick("write_adapter_folder", t)
t = time.perf_counter(); mem._embed_row(row); tick("embed_MiniLM", t)
print(json.dumps({"preset_overrides": over, "threads": int(sys.argv[1]), **info, "seconds": T}, indent=1))

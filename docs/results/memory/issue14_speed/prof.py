"""Where one 4-turn chunk's time goes (mara chunk 1), piece by piece."""
import sys, time, tempfile, json
import torch
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
from hf_steer import load_model
from hf_steer.memory import LoraMemory
from hf_steer.memory import augment as aug, train as tr
from hf_steer.memory.bench_chats import DEV_CHATS
from hf_steer.memory.learn import preset_augment, add_adapter

T = {}
def tick(k, t0): T[k] = round(time.perf_counter() - t0, 3)

model, tok = load_model()
folder = tempfile.mkdtemp()
mem = LoraMemory(model, tok, folder=folder)
anchors = mem.anchors(mem.preset.anchors)  # cached once per base (not per chunk)
chunk = DEV_CHATS[0]["chunks"][0]
preset = mem.preset
t = time.perf_counter(); jobs = mem.plan(chunk); tick("plan(read+link)", t)
job = jobs[0]
t = time.perf_counter(); ex, probes = aug.fact_examples(job["facts"], tok, **preset_augment(preset)); tick("augment", t)
ex = ex + anchors[: preset.anchors]
t = time.perf_counter(); rows = tr.encode_examples(tok, ex, preset.max_length); tick("tokenize", t)
lens = [len(r["input_ids"]) for r in rows]; sup = sum(sum(l != -100 for l in r["labels"][1:]) for r in rows)
print("texts", len(rows), "tokens", sum(lens), "max", max(lens), "mean", sum(lens)/len(lens), "supervised", sup)
t = time.perf_counter()
mem.peft = add_adapter(mem.peft, mem.model, job["name"], mem._config_for(preset))
mem.peft.base_model.set_adapter([job["name"]], inference_mode=False); tick("add_adapter", t)
peft = mem.peft
batch = tr._collate(rows, tok.pad_token_id)
print("batch shape", tuple(batch["input_ids"].shape))
parts = tr._decoder_parts(peft); first = len(parts[0]) - preset.top_layers
params = [p for n, p in peft.named_parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=preset.learning_rate)
peft.train()
t = time.perf_counter(); cache = tr._PrefixCache(peft, parts, first, batch); tick("prefix(no_grad bottom)", t)
fw = hd = bw = op = 0.0
for s in range(preset.steps):
    t = time.perf_counter()
    h = cache.hidden
    for layer in cache.layers[first:]:
        h = layer(h, *cache.rest, **cache.kwargs); h = h[0] if isinstance(h, tuple) else h
    h = cache.norm(h)[:, :-1][cache.positions]
    t1 = time.perf_counter(); fw += t1 - t
    loss = torch.nn.functional.cross_entropy(cache.head(h).float(), cache.targets)
    t2 = time.perf_counter(); hd += t2 - t1
    loss.backward(); t3 = time.perf_counter(); bw += t3 - t2
    opt.step(); opt.zero_grad(set_to_none=True); op += time.perf_counter() - t3
    print(s, round(float(loss), 4))
T.update({"fwd_top_total": round(fw, 3), "head_fwd_total": round(hd, 3), "backward_total": round(bw, 3), "optim_total": round(op, 3)})
peft.eval()
row = {"kind": "chunk", "statements": [f["text"] for f in job["facts"]], "turns": job["turns"], "preset": preset.to_dict(), "train": {}}
t = time.perf_counter(); files = mem._files(job["name"], row); tick("adapter_files(save bytes)", t)
t = time.perf_counter(); mem._embed_row(row); tick("embed(MiniLM)", t)
print(json.dumps(T, indent=1))
# full remember, end to end, on a fresh profile
mem2 = LoraMemory(model if False else load_model()[0], tok, folder=folder, profile="p2")
t = time.perf_counter(); r = mem2.remember(chunk); tick("remember_total", t)
print("remember", T["remember_total"], r["train"])

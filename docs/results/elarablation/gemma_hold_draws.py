"""Extra draws of held-out stories on Gemma-3-270M (openings:heldout, 3 per prompt, T=0.7, 200 tokens, fp32): the base and
the hold-100 and hold-57 adapters of the story bench (their work folders), judged by the base (the bench's judge, the same
weights). python gemma_hold_draws.py SEED OUT  (paths below are the runs' work folders)"""
import json
import sys
import time

import torch
from peft import PeftModel

from hf_steer.elarablation.stories import generate_stories, judge_perplexity, load_prompts, story_figures
from hf_steer.models import load_model

torch.set_num_threads(2)
seed, out = int(sys.argv[1]), sys.argv[2]
GEMMA = "/root/.cache/hf_steer/models/gemma-3-270m-q4_k_m-v1"
model, tok = load_model(GEMMA)
patterns = [p["text"] for p in json.load(open("/work/exp/gemD-work/patterns.json"))["patterns"]]
prompts, chat = load_prompts("openings:heldout")
model = PeftModel.from_pretrained(model, "/work/exp/gemD-work/adapter", adapter_name="hold100")
model.load_adapter("/work/exp/gem57-work/adapter", adapter_name="hold57")
model.eval()
result = {}
for name in ("base", "hold100", "hold57"):
    t = time.perf_counter()
    if name == "base":
        with model.disable_adapter():
            rows = generate_stories(model, tok, prompts, chat, 3, 200, 0.7, seed, 128, desc=name)
    else:
        model.set_adapter(name)
        rows = generate_stories(model, tok, prompts, chat, 3, 200, 0.7, seed, 128, desc=name)
    texts = [r["text"] for r in rows]
    f = story_figures(texts, patterns)
    with model.disable_adapter():
        judge = judge_perplexity(model, tok, texts)
    result[name] = {"patterns_per_1k": round(f["patterns_per_1k_words"], 3), "slop_index": round(f["slop_index"], 1),
                    "distinct_2": round(f["distinct_2"], 4), "looping": round(f["looping"], 3), "judge_ppl": round(judge, 3),
                    "seconds": round(time.perf_counter() - t, 1)}
    print(name, result[name], flush=True)
json.dump({"seed": seed, "draws": result}, open(out, "w"), indent=1)

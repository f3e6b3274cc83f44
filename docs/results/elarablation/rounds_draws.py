"""Extra draws: python draw3.py ADAPTER|base PROMPTS SEED_OFFSET OUT [MODEL]"""
import json, sys
from pathlib import Path
import torch
from hf_steer.models import load_model
from hf_steer.elarablation.stories import generate_stories, load_prompts, slop_index, loops, distinct_n
torch.set_num_threads(2)
adapter, prompts_spec, off, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
model, tok = load_model(sys.argv[5] if len(sys.argv) > 5 else None)
if adapter != "base":
    from peft import PeftModel
    model = PeftModel.from_pretrained(model, adapter)
model.eval()
prompts, chat = load_prompts(prompts_spec)
rows = generate_stories(model, tok, prompts, chat, 3, 200, 0.7, off, 128, desc="draw", done=[], on_batch=lambda r: None)
texts = [r["text"] for r in rows]
Path(out).write_text("".join(json.dumps(r) + "\n" for r in rows))
print(out, json.dumps({"slop": round(slop_index(texts)["slop_index"], 1), "loop": round(sum(map(loops, texts)) / len(texts), 3), "d2": round(distinct_n(texts), 4)}))

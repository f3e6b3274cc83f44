"""Extra draws of held-out stories with an auto work folder's adapter (or the base): python antislop_hold_draws.py WORK_DIR PROMPTS SEED_OFFSET OUT [base]

WORK_DIR may also be an adapter folder itself (one with adapter_config.json: `work/all_rounds_adapter` of --rounds)."""
import json
import sys
from pathlib import Path

import torch

from hf_steer.elarablation.stories import distinct_n, generate_stories, load_prompts, loops, slop_index
from hf_steer.models import load_model

torch.set_num_threads(2)
work, prompts_spec, off, out = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
base_only = len(sys.argv) > 5
model, tok = load_model(None)
if not base_only:
    from peft import PeftModel
    model = PeftModel.from_pretrained(model, str(work if (work / "adapter_config.json").is_file() else work / "adapter"))
model.eval()
prompts, chat = load_prompts(prompts_spec)
rows = generate_stories(model, tok, prompts, chat, 3, 200, 0.7, off, 128, desc="draw", done=[], on_batch=lambda r: None)
texts = [r["text"] for r in rows]
Path(out).write_text("".join(json.dumps(r) + "\n" for r in rows))
print(out, json.dumps({"slop": round(slop_index(texts)["slop_index"], 1), "loop": round(sum(map(loops, texts)) / len(texts), 3), "d2": round(distinct_n(texts), 4)}))

"""Issue 16: how far an `auto` adapter lowers each pattern at the very contexts it was trained on (exact, no sampling).

pattern_probe.py reads held-out stories; this reads the work folder's own contexts.yaml rows, tokenised as the
trainer tokenises them, and the pattern from the token the row is cut at (a phrase from its cut word:
" crew" of "the crew"). If these fall no further than the held-out slots, the training stops short of its own
target (bad_ratio: a tenth of the base) at the slots it sees, and more or other contexts would not help.

Usage: python trained_probe.py WORK   (2 threads, about a minute)
"""

import json
import re
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_steer.elarablation.contexts import load_file, tokenize_context
from hf_steer.models import bundled_model_path

work = sys.argv[1]
torch.set_num_threads(2)
path = bundled_model_path()
tok = AutoTokenizer.from_pretrained(path)
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), f"{work}/adapter")
model.eval()
patterns = {"found_" + re.sub(r"[^a-z0-9]+", "_", p["text"].lower()).strip("_"): p
            for p in json.load(open(f"{work}/patterns.json"))["patterns"]}


@torch.no_grad()
def whole(ids: list[int], target: list[int]) -> float:
    logp = model(input_ids=torch.tensor([ids + target])).logits[0].float().log_softmax(-1)
    return float(sum(logp[len(ids) - 1 + k, t] for k, t in enumerate(target)).exp())


by_pattern: dict[str, list[tuple[float, float]]] = {}
for row in load_file(f"{work}/contexts.yaml"):
    pattern = patterns.get(row["family"])
    if pattern is None or row["kind"] != "slop":
        continue
    text = pattern["text"]
    tail = text[text.lower().index(pattern["cut"].lower()):] if pattern["kind"] == "phrase" else text
    ids, target = tokenize_context(row, tok), tok(" " + tail, add_special_tokens=False)["input_ids"]
    with model.disable_adapter():
        base = whole(ids, target)
    by_pattern.setdefault(text, []).append((base, whole(ids, target)))
total_b = total_a = n = 0
for text, pairs in by_pattern.items():
    b, a = (sum(p[i] for p in pairs) / len(pairs) for i in (0, 1))
    total_b, total_a, n = total_b + b * len(pairs), total_a + a * len(pairs), n + len(pairs)
    print(f"{text!r:16} {len(pairs)} contexts: {b:.3f} -> {a:.3f} ({a / b:.2f}x)")
print(f"all {n} trained contexts: whole pattern {total_b / n:.3f} -> {total_a / n:.3f} ({total_a / total_b:.2f}x)")

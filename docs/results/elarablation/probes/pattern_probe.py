"""Issue 16: how much an `auto` adapter lowers each targeted pattern where the held-out stories use it (exact).

For every targeted pattern of a story bench work folder, each held-out "before" story is cut right before the
pattern's first use; p(pattern's first token) and p(whole pattern) with the adapter off and on, averaged per pattern.
The story stays the base's own text, so this reads the adapter where the base would write the pattern.

Usage: python pattern_probe.py WORK_FOLDER        (2 threads, a few minutes)
"""

import json
import re
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_steer.elarablation.stories import render_prompt
from hf_steer.models import bundled_model_path

torch.set_num_threads(2)
work = sys.argv[1]
path = bundled_model_path()
tok = AutoTokenizer.from_pretrained(path)
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), f"{work}/adapter")
model.eval()
patterns = json.load(open(f"{work}/patterns.json"))
patterns = [p["text"] for p in (patterns["patterns"] if isinstance(patterns, dict) else patterns)]
stories = [json.loads(line) for line in open(f"{work}/stories_eval_before.jsonl")]


@torch.no_grad()
def first_and_whole(context: str, target: list[int]) -> tuple[float, float]:
    ids = tok(context, add_special_tokens=False)["input_ids"] + target
    logp = model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)
    n = len(ids) - len(target)
    return logp[n - 1, target[0]].exp().item(), float(torch.tensor(
        sum(logp[n - 1 + k, t].item() for k, t in enumerate(target))).exp())


totals = []
for pattern in patterns:
    rows = []
    for story in stories:
        m = re.search(rf"(?<![\w']){re.escape(pattern)}(?![\w'])", story["text"])
        if not m or m.start() == 0:
            continue
        start = m.start() - (story["text"][m.start() - 1] == " ")  # the space goes with the word (" Elara")
        context = render_prompt(tok, story["prompt"], True) + story["text"][:start]
        target = tok(story["text"][start: m.end()], add_special_tokens=False)["input_ids"]
        with model.disable_adapter():
            base = first_and_whole(context, target)
        rows.append((*base, *first_and_whole(context, target)))
    if rows:
        means = [sum(r[i] for r in rows) / len(rows) for i in range(4)]
        totals.append((pattern, len(rows), *means))
        print(f"{pattern!r:16} {len(rows):3d} slots: first {means[0]:.3f} -> {means[2]:.3f}, whole {means[1]:.3f} -> "
              f"{means[3]:.3f} ({means[3] / means[1]:.2f}x)", flush=True)
n = sum(t[1] for t in totals)
whole_b = sum(t[1] * t[3] for t in totals) / n
whole_a = sum(t[1] * t[5] for t in totals) / n
print(f"all {n} slots: whole pattern {whole_b:.3f} -> {whole_a:.3f} ({whole_a / whole_b:.2f}x); patterns at or under "
      f"a third of the base: {sum(t[5] <= t[3] / 3 for t in totals)}/{len(totals)}")

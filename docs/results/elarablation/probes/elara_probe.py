"""Issue 16: how likely " Elara" is where a story first names one, base vs an `auto` adapter (exact, no sampling).

Reads a story bench work folder: every story (held-out before/after, training) cut right before its first " Elara",
rendered as the bench renders it (chat template), then p(" El") and p(" El" "ara") with the adapter off and on.

Usage: python elara_probe.py WORK_FOLDER        (e.g. /tmp/sbFT/stories_ft-work; 2 threads, about a minute)
"""

import json
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
target = tok(" Elara", add_special_tokens=False)["input_ids"]  # [" El", "ara"] on SmolLM2
contexts = []
for name in ("stories_eval_before.jsonl", "stories_eval_after.jsonl", "stories_train.jsonl"):
    for line in open(f"{work}/{name}"):
        row = json.loads(line)
        cut = row["text"].find(" Elara")
        if cut > 0:
            contexts.append((name, render_prompt(tok, row["prompt"], True) + row["text"][:cut]))


@torch.no_grad()
def first_and_whole(context: str) -> tuple[float, float]:
    ids = tok(context, add_special_tokens=False)["input_ids"] + target
    logp = model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)
    n = len(ids) - len(target)
    whole = sum(logp[n - 1 + k, t].item() for k, t in enumerate(target))
    return logp[n - 1, target[0]].exp().item(), float(torch.tensor(whole).exp())


sums: dict[str, list[float]] = {}
for name, context in contexts:
    with model.disable_adapter():
        base = first_and_whole(context)
    tuned = first_and_whole(context)
    group = "training" if "train" in name else "held-out"
    sums.setdefault(group, []).append((*base, *tuned))
    print(f"{group}: base ' El' {base[0]:.3f} Elara {base[1]:.3f} | adapter ' El' {tuned[0]:.3f} Elara {tuned[1]:.3f}"
          f" | ...{context[-50:]!r}")
for group, rows in sums.items():
    means = [sum(r[i] for r in rows) / len(rows) for i in range(4)]
    print(f"{group} ({len(rows)} slots), means: base ' El' {means[0]:.3f} Elara {means[1]:.3f} | adapter ' El' "
          f"{means[2]:.3f} Elara {means[3]:.3f}")

"""Issue 16: does an `auto` adapter make the model copy its own text more (the start of a loop), exactly?

The story bench's looping share (a word 4-gram written 3+ times) is a sampled figure: 45-102 stories, about 10
points between two draws of one model. This reads fixed texts instead: the held-out stories of a work folder, each
after its chat prompt, through the base model and the adapter, and at every position where the last ``--match``
tokens were written before, takes the token that followed them then (what copying would write now). It prints the
mean probability both models give that copy token, split by whether the story really copied there, and the mean
log ratio adapter / base. A ratio above 0 where the story did *not* copy is the adapter pulling the model toward
repeating itself where the base went on.

Usage: PYTHONPATH=. python copy_probe.py WORK [WORK ...] [--match 3] [--side before|after]
"""

import json
import math
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_steer.elarablation.stories import read_jsonl, render_prompt
from hf_steer.models import bundled_model_path

args = sys.argv[1:]
match = int(args[args.index("--match") + 1]) if "--match" in args else 3
side = args[args.index("--side") + 1] if "--side" in args else "before"
works = [a for i, a in enumerate(args) if not a.startswith("--") and (i == 0 or not args[i - 1].startswith("--"))]
torch.set_num_threads(2)
path = bundled_model_path()
tok = AutoTokenizer.from_pretrained(path)


def copy_targets(ids: list[int]) -> list[tuple[int, int, bool]]:
    """(position, copy token, copied?) wherever the last ``match`` tokens occurred earlier (latest occurrence)."""
    seen: dict[tuple[int, ...], int] = {}  # n-gram -> the token after its latest earlier occurrence
    out = []
    for j in range(match, len(ids)):
        key = tuple(ids[j - match:j])
        if key in seen:
            out.append((j, seen[key], ids[j] == seen[key]))
        seen[key] = ids[j]
    return out


@torch.no_grad()
def score(model, prefix: list[int], ids: list[int], spots) -> list[float]:
    logp = model(input_ids=torch.tensor([prefix + ids])).logits[0].float().log_softmax(-1)
    return [float(logp[len(prefix) + j - 1, c]) for j, c, _ in spots]


for work in works:
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), f"{work}/adapter")
    model.eval()
    rows = {True: [], False: []}  # copied? -> (base logp, adapter logp)
    for story in read_jsonl(f"{work}/stories_eval_{side}.jsonl"):
        spots = copy_targets(story["ids"])
        if not spots:
            continue
        prefix = tok(render_prompt(tok, story["prompt"], True), add_special_tokens=False)["input_ids"]
        with model.disable_adapter():
            base = score(model, prefix, story["ids"], spots)
        tuned = score(model, prefix, story["ids"], spots)
        for (_, _, copied), b, t in zip(spots, base, tuned):
            rows[copied].append((b, t))
    report = {"work": work, "side": side, "match": match}
    for copied, pairs in rows.items():
        key = "copied" if copied else "went_on"
        report[key] = {
            "positions": len(pairs),
            "base_p": round(sum(math.exp(b) for b, _ in pairs) / len(pairs), 4),
            "adapter_p": round(sum(math.exp(t) for _, t in pairs) / len(pairs), 4),
            "mean_log_ratio": round(sum(t - b for b, t in pairs) / len(pairs), 4),
        }
    print(json.dumps(report))

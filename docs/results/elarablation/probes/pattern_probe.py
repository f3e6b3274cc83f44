"""Issue 16: how much an `auto` adapter lowers targeted patterns where stories use them (exact, no sampling).

Each story of the chosen files of a story bench work folder is cut right before its first use of each pattern
(the space before it goes with the word: " Elara"), rendered as the bench renders it (chat template); then
p(pattern's first token) and p(whole pattern) at T=1 with the adapter off and on, averaged per pattern and file
group (held-out = before/after files, training = the training stories). The text stays the story's own.

Usage: python pattern_probe.py WORK [--pattern P ...] [--stories before after train] [--use N] [--model FOLDER] [--plain]
  (2 threads, minutes)
  all targeted patterns, held-out "before" stories (the default)
  --pattern Elara --stories before after train            where Elara is first named, every story of the folder
  --use 2                                                  at each pattern's second use (a name: the story refers back)
"""

import argparse
import json
import re

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_steer.elarablation.stories import render_prompt
from hf_steer.models import bundled_model_path

FILES = {"before": "stories_eval_before.jsonl", "after": "stories_eval_after.jsonl", "train": "stories_train.jsonl"}
parser = argparse.ArgumentParser()
parser.add_argument("work")
parser.add_argument("--pattern", nargs="+", default=None)
parser.add_argument("--stories", nargs="+", choices=list(FILES), default=["before"])
parser.add_argument("--use", type=int, default=1, help="cut before the pattern's N-th use in each story (2: where a "
                    "story refers back to a name it introduced: the keep rows' job, which should stay near 1x)")
parser.add_argument("--plain", action="store_true", help="the stories' prompts are plain openings (Gemma's "
                    "--prompts openings:...): the prompt itself after the tokenizer's BOS, as the bench generates them")
parser.add_argument("--model", default=None, help="the model folder the adapter was trained on (default: the bundled "
                    "model; a second round's merged first round, for one)")
args = parser.parse_args()
torch.set_num_threads(2)
path = args.model or bundled_model_path()
tok = AutoTokenizer.from_pretrained(path)
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), f"{args.work}/adapter")
model.eval()
patterns = args.pattern
if patterns is None:
    found = json.load(open(f"{args.work}/patterns.json"))
    patterns = [p["text"] for p in (found["patterns"] if isinstance(found, dict) else found)]
stories = [(("training" if side == "train" else "held-out"), json.loads(line))
           for side in args.stories for line in open(f"{args.work}/{FILES[side]}")]


@torch.no_grad()
def first_and_whole(context: str, target: list[int]) -> tuple[float, float]:
    ids = tok(context, add_special_tokens=args.plain)["input_ids"] + target
    logp = model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)
    n = len(ids) - len(target)
    whole = sum(logp[n - 1 + k, t].item() for k, t in enumerate(target))
    return logp[n - 1, target[0]].exp().item(), float(torch.tensor(whole).exp())


totals = []
for pattern in patterns:
    groups: dict[str, list[tuple[float, ...]]] = {}
    for group, story in stories:
        uses = list(re.finditer(rf"(?<![\w']){re.escape(pattern)}(?![\w'])", story["text"]))
        m = uses[args.use - 1] if len(uses) >= args.use else None
        if not m or m.start() == 0:
            continue
        start = m.start() - (story["text"][m.start() - 1] == " ")
        context = render_prompt(tok, story["prompt"], not args.plain) + story["text"][:start]
        target = tok(story["text"][start: m.end()], add_special_tokens=False)["input_ids"]
        with model.disable_adapter():
            base = first_and_whole(context, target)
        groups.setdefault(group, []).append((*base, *first_and_whole(context, target)))
    for group, rows in groups.items():
        means = [sum(r[i] for r in rows) / len(rows) for i in range(4)]
        totals.append((len(rows), means[1], means[3]))
        print(f"{pattern!r:16} {group:8} {len(rows):3d} slots: first {means[0]:.3f} -> {means[2]:.3f}, whole "
              f"{means[1]:.3f} -> {means[3]:.3f} ({means[3] / means[1]:.2f}x)", flush=True)
n = sum(t[0] for t in totals)
whole_b, whole_a = (sum(t[0] * t[k] for t in totals) / n for k in (1, 2))
print(f"all {n} slots: whole pattern {whole_b:.3f} -> {whole_a:.3f} ({whole_a / whole_b:.2f}x); pattern groups at or "
      f"under a third of the base: {sum(t[2] <= t[1] / 3 for t in totals)}/{len(totals)}")

"""Issue 16: is the story bench's judge-perplexity rise the clichés' own probability, or damage elsewhere?

Reads a story bench work folder (``<stem>-work/``: ``stories_eval_{before,after}.jsonl`` and ``patterns.json``),
scores every held-out story with the bench's judge (Gemma-3-270M) exactly as ``stories.judge_perplexity`` does
(each story alone, up to 512 tokens), and splits the judged tokens by where they sit:

- ``pattern``: the token overlaps a targeted pattern (``stories.pattern_regex``, as the bench counts them);
- ``after_pattern``: one of the 3 tokens after such a match (what the model wrote once the cliché was there);
- ``elsewhere``: every other token;
- ``no_loop_all``: every token of the stories that do not loop (``stories.loops``): a looping story repeats
  itself, which a judge finds easy, and the adapter changes how many stories loop.

Prints the perplexity of each part before and after, and its share of the tokens.

Usage: PYTHONPATH=. python docs/results/elarablation/judge_split.py WORK_FOLDER [--threads 2]
"""

import json
import math
import sys
from pathlib import Path

import torch

from hf_steer.benchmarking import load_judge
from hf_steer.elarablation.stories import loops, pattern_regex, read_jsonl

work = Path(sys.argv[1])
torch.set_num_threads(int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 2)
patterns = [p["text"] for p in json.loads((work / "patterns.json").read_text())["patterns"]]
regexes = [pattern_regex(p) for p in patterns]
judge, tok = load_judge("auto", print, without="no judge")


@torch.no_grad()
def split(text: str) -> dict[str, list[float]]:
    enc = tok(text, return_tensors="pt", truncation=True, max_length=512, return_offsets_mapping=True)
    offsets = enc.pop("offset_mapping")[0].tolist()
    logits = judge(**enc).logits[0, :-1].float()
    target = enc["input_ids"][0, 1:]
    nll = (-torch.log_softmax(logits, -1).gather(1, target[:, None])[:, 0]).tolist()
    spans = [m.span() for rx in regexes for m in rx.finditer(text)]
    out: dict[str, list[float]] = {"pattern": [], "after_pattern": [], "elsewhere": []}
    tail = -1  # index of the last token inside a pattern
    for i, (value, (a, b)) in enumerate(zip(nll, offsets[1:])):
        if b > a and any(a < e and b > s for s, e in spans):
            out["pattern"].append(value)
            tail = i
        elif tail >= 0 and i - tail <= 3:
            out["after_pattern"].append(value)
        else:
            out["elsewhere"].append(value)
    return out


rows = {}
for side in ("before", "after"):
    parts: dict[str, list[float]] = {"pattern": [], "after_pattern": [], "elsewhere": []}
    no_loop: list[float] = []
    for story in read_jsonl(work / f"stories_eval_{side}.jsonl"):
        if story["text"].strip():
            for k, v in split(story["text"]).items():
                parts[k] += v
                if not loops(story["text"]):
                    no_loop += v
    total = sum(len(v) for v in parts.values())
    every = [x for v in parts.values() for x in v]
    rows[side] = {"all": (math.exp(sum(every) / len(every)), len(every))}
    rows[side].update({k: (math.exp(sum(v) / len(v)) if v else float("nan"), len(v))
                       for k, v in {**parts, "no_loop_all": no_loop}.items()})
    print(side, {k: f"ppl {p:.2f} over {n} tokens ({100 * n / total:.1f}%)" for k, (p, n) in rows[side].items()},
          flush=True)
for k in rows["before"]:
    b, a = rows["before"][k][0], rows["after"][k][0]
    print(f"{k:14s} {b:7.2f} -> {a:7.2f} ({100 * (a / b - 1):+.1f}%)")

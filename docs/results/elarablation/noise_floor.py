"""Issue 16: how far apart are two draws of the *same* model's held-out stories on the story bench's figures?

The story bench compares stories written before and after training, each one sampled draw (T=0.7, seeded).
This draws the held-out stories again from the untrained model with other seeds and scores every draw as the
bench does (``stories.story_figures`` on the work folder's patterns, and the judge's perplexity), so a
before/after change can be read against the change between two draws of one model.

Usage: PYTHONPATH=. python docs/results/elarablation/noise_floor.py WORK_FOLDER OUT_JSON [--seeds 2 3] (generation seeds; the bench's before-stories used 1) [--threads 2]
(WORK_FOLDER: a bundled-model story bench's ``<stem>-work/``; its ``state.json`` gives the prompts and settings.)
"""

import argparse
import json
from pathlib import Path

import torch

from hf_steer.benchmarking import load_judge
from hf_steer.elarablation.stories import (
    generate_stories,
    judge_perplexity,
    load_prompts,
    read_jsonl,
    story_figures,
)
from hf_steer.models import load_model

parser = argparse.ArgumentParser(description="two draws of one model's held-out stories, scored as the story bench does")
parser.add_argument("work", type=Path)
parser.add_argument("out", type=Path)
parser.add_argument("--seeds", type=int, nargs="+", default=[2, 3])
parser.add_argument("--threads", type=int, default=2)
a = parser.parse_args()
work, out, seeds, threads = a.work, a.out, a.seeds, a.threads
torch.set_num_threads(threads)
state = json.loads((work / "state.json").read_text())
settings = state["settings"] if "settings" in state else state
patterns = [p["text"] for p in json.loads((work / "patterns.json").read_text())["patterns"]]
prompts, chat = load_prompts(settings["eval_prompts"])

draws = {"before (the bench's, generation seed 1)": [d["text"] for d in read_jsonl(work / "stories_eval_before.jsonl")],
         "after (the bench's adapter)": [d["text"] for d in read_jsonl(work / "stories_eval_after.jsonl")]}
model, tok = load_model(None)
for seed in seeds:
    rows = generate_stories(model, tok, prompts, chat, settings["eval_stories_per_prompt"], settings["max_new_tokens"],
                            settings["story_temperature"], seed, settings["generation_batch_size"],
                            desc=f"base, seed {seed}")
    draws[f"base, seed {seed}"] = [d["text"] for d in rows]
del model
judge, judge_tok = load_judge("auto", print, without="no judge")
result = {}
for name, texts in draws.items():
    figures = story_figures(texts, patterns)
    figures["judge_ppl"] = judge_perplexity(judge, judge_tok, texts) if judge is not None else None
    result[name] = {k: figures[k] for k in ("patterns_per_1k_words", "slop_index", "distinct_2", "looping", "judge_ppl")
                    if k in figures}
    print(name, json.dumps(result[name]))
base = result["before (the bench's, generation seed 1)"]
changes = {name: {k: (v / base[k] - 1 if k != "looping" else v - base[k]) for k, v in figs.items()
                  if isinstance(v, (int, float)) and base.get(k)}
           for name, figs in result.items() if name != "before (the bench's, generation seed 1)"}
for name, c in changes.items():
    print("vs before:", name, {k: round(v, 4) for k, v in c.items()})
out.write_text(json.dumps({"work": work.name, "prompts": settings["eval_prompts"], "draws": result,
                           "changes_vs_before": changes}, indent=1))

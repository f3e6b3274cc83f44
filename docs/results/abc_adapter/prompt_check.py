# ruff: noqa: E402
"""Source score of an abc adapter's samples along the dial, with prompts written here (not the bench's newline).

    PROMPTS="The|She looked at him and" PYTHONPATH=. python docs/results/abc_adapter/prompt_check.py \
        ABC_DIR LORA_TINYSTORIES_DIR LORA_SHAKESPEARE_DIR OUT.json [SAMPLES_PER_PROMPT=8]
Scores only the generated tokens (the prompt is the same at every alpha), seed 1 at every alpha, 48 tokens.
"""
import json
import sys
import time

import numpy as np
import torch

torch.set_num_threads(1)
from peft import PeftModel

from hf_steer import load_model
from hf_steer.abcgpt.adapter import AbcAdapterConfig  # noqa: F401  (registers the method with PEFT)
from hf_steer.abcgpt.evaluation import ALPHA_GRID, sample, source_score, spearman

abc_dir, spec_a, spec_b, out_json = sys.argv[1:5]
n_per = int(sys.argv[5]) if len(sys.argv) > 5 else 8
import os

PROMPTS = os.environ.get("PROMPTS", "The|She looked at him and|In the morning,|I will tell you").split("|")
base, tok = load_model()
import copy

abc = PeftModel.from_pretrained(copy.deepcopy(base), abc_dir).eval()
A = PeftModel.from_pretrained(copy.deepcopy(base), spec_a).eval()
B = PeftModel.from_pretrained(copy.deepcopy(base), spec_b).eval()
t0 = time.time()
res = {"prompts": PROMPTS, "n_per_prompt": n_per, "length": 48, "by_prompt": {}}
total = np.zeros(len(ALPHA_GRID))
for p in PROMPTS:
    scores = []
    for a in ALPHA_GRID:
        s = sample(abc, tok, a, n_per, 48, prompt=p, seed=1)
        # score only the generated tokens (the prompt is shared by every alpha)
        plen = len(tok(p, add_special_tokens=False)["input_ids"])
        scores.append(source_score(s[:, plen - 1:], A, B)["score"])
    res["by_prompt"][p] = {"scores": scores, "spearman": round(spearman(ALPHA_GRID, scores), 4)}
    total += np.array(scores)
    print(p, res["by_prompt"][p], flush=True)
mean = (total / len(PROMPTS)).tolist()
span = max(mean) - min(mean)
res["mean_scores"] = [round(v, 4) for v in mean]
res["spearman_of_mean"] = round(spearman(ALPHA_GRID, mean), 4)
res["monotone_mean"] = bool((np.diff(mean) >= 0).all())
res["max_step_fraction_mean"] = round(float(np.abs(np.diff(mean)).max() / span), 4)
res["wall_s"] = round(time.time() - t0, 1)
print(json.dumps({k: v for k, v in res.items() if k != "by_prompt"}))
open(out_json, "w").write(json.dumps(res, indent=1))

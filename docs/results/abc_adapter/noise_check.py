# ruff: noqa: E402
"""Source-score noise check (docs/abc_adapter.md, "The source score's reversal ... was sampling noise").

    PYTHONPATH=. python docs/results/abc_adapter/noise_check.py WORK_DIR OUT.json

WORK_DIR holds the bench's abc, lora_tinystories and lora_shakespeare folders."""
import copy
import json
import sys
import time

import torch

torch.set_num_threads(1)
from peft import PeftModel

from hf_steer import load_model
from hf_steer.abcgpt.adapter.adapt_trainer import load_adapter
from hf_steer.abcgpt.adapter.bench import sample_scores, summarize_scores

w = sys.argv[1]
alphas = [0.8, 0.9, 1.0]
abc, tok = load_adapter(f"{w}/abc")
base, _ = load_model()
A = PeftModel.from_pretrained(copy.deepcopy(base), f"{w}/lora_tinystories").eval()
B = PeftModel.from_pretrained(base, f"{w}/lora_shakespeare").eval()
t0 = time.process_time()
by_seed = [sample_scores(abc, A, B, tok, s, 16, 48, "\n", alphas) for s in (0, 1)]
out = summarize_scores(by_seed, alphas)
out["cpu_s"] = round(time.process_time() - t0, 1)
print(json.dumps(out, indent=1))
json.dump({"by_seed": by_seed, **out}, open(sys.argv[2], "w"), indent=1)

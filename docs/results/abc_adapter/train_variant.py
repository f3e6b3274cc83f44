# ruff: noqa: E402
"""Train one abc adapter variant (the bench's settings + overrides) and measure its held-out loss at a few alphas.

    PYTHONPATH=. python docs/results/abc_adapter/train_variant.py norm '{"gate_normalize": true}'
writes /tmp/abcad2b/<name>/ (the adapter, resumable) and /tmp/abcad2b/<name>.json. The specialists' losses
below are the bench's (bench_plain_gates.json). This is how the normalized-gate adapter of docs/abc_adapter.md
was trained before the bench evaluated it.
"""
import json
import sys
import time

import torch

torch.set_num_threads(1)
from hf_steer import load_model
from hf_steer.abcgpt.adapter.adapt_config import AbcAdaptConfig
from hf_steer.abcgpt.adapter.adapt_trainer import prepare_corpus, train_adapter
from hf_steer.abcgpt.evaluation import evaluate_loss
from hf_steer.abcgpt.training import BUNDLED_SOURCES

name, over = sys.argv[1], json.loads(sys.argv[2])
base, tok = load_model()
sources = {n: str(BUNDLED_SOURCES[n]) for n in ("tinystories", "shakespeare")}
cfg = AbcAdaptConfig(sources=sources, output_dir=f"/tmp/abcad2b/{name}", seed=0, eval_windows=0, save_steps=20,
                     logging_steps=10, resume=True, **over)
corpus = prepare_corpus(cfg, tok)
t0 = time.time()
model = train_adapter(cfg, base, tok, corpus, log=print).eval()
tt = time.time() - t0
spec = {"tinystories": 2.46066, "shakespeare": 3.8116}
out = {"name": name, "over": over, "train_s": round(tt, 1)}
for a in (0.0, 0.1, 0.5, 0.9, 1.0):
    out[a] = {n: round(evaluate_loss(model, corpus.val[n], a, 64, 2, 8), 5) for n in sources}
out["gap_end"] = {"tinystories": round(out[0.0]["tinystories"] / spec["tinystories"] - 1, 4),
                  "shakespeare": round(out[1.0]["shakespeare"] / spec["shakespeare"] - 1, 4)}
print(json.dumps(out))
open(f"/tmp/abcad2b/{name}.json", "w").write(json.dumps(out))

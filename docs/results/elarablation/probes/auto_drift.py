"""Issue 16: how much an `auto` adapter changes text that is not a story (exact, no sampling).

The slot bench's two drift checks (``hf_steer.benchmarking.heldout_drift``: KL(base || tuned) per token and the
perplexity change, adapter off and on) on its anchor-free drift text and on held-out TinyStories + Shakespeare
(``elarablation.bench.unrelated_text``), for the adapter of each work folder given. Bundled model, 2 threads.

Usage: python auto_drift.py WORK [WORK ...]
"""

import json
import sys

import torch
from peft import PeftModel

from hf_steer.benchmarking import heldout_drift
from hf_steer.elarablation.bench import unrelated_text
from hf_steer.models import load_model
from hf_steer.utils import quiet_third_party

quiet_third_party()
torch.set_num_threads(2)
base, tokenizer = load_model(None)
for work in sys.argv[1:]:
    model = PeftModel.from_pretrained(base, f"{work}/adapter").eval()
    with torch.no_grad():
        drift = heldout_drift(model, tokenizer, model.disable_adapter)
        unrelated = heldout_drift(model, tokenizer, model.disable_adapter, text=unrelated_text())
    print(work, json.dumps({"kl_nats": drift["kl_nats"], "ppl_change_pct": drift["ppl_change_pct"],
                            "kl_unrelated_nats": unrelated["kl_nats"],
                            "ppl_unrelated_change_pct": unrelated["ppl_change_pct"]}), flush=True)
    base = model.unload()

"""Issue 16: what auto's training stage costs, and what it computes, on a contexts file (bundled model).

Builds the trainer as `auto` does (its defaults: auto_keep 3, hold 100, 2 epochs, seed 0), times the set-up before
the first step and `STEPS` steps, and writes the prepared rows (own bad mass, bad shares of each beginning) and each
step's logged losses to OUT.json. Run it on two commits to check that a speed-up computes the same thing.

Usage: python train_cost.py CONTEXTS.yaml OUT.json STEPS [MODEL CHAT_TEMPLATE]   (2 threads; bundled model:
~1 minute plus ~6 s a step; Gemma-3-270M: its folder and `gemma`)
"""

import json
import sys
import time

import torch

from hf_steer.elarablation.arguments import LoraArguments
from hf_steer.elarablation.chat import apply_chat_template
from hf_steer.elarablation.config import ElarablationConfig
from hf_steer.elarablation.contexts import load_contexts
from hf_steer.elarablation.pipeline import default_lora_config
from hf_steer.elarablation.trainer import ElarablationTrainer
from hf_steer.models import load_model
from hf_steer.utils import set_seed

contexts, out_path, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(2)
model, tokenizer = load_model(sys.argv[4] if len(sys.argv) > 4 else None)
apply_chat_template(tokenizer, sys.argv[5] if len(sys.argv) > 5 else None)
config = ElarablationConfig(output_dir="/tmp/train_cost_out", num_train_epochs=2, seed=0,
                            save_strategy="no", context_weight=100.0, max_steps=steps, logging_steps=1,
                            disable_tqdm=True, report_to=[])
set_seed(0)
lora = LoraArguments()
peft_config = default_lora_config(model, lora.lora_r, lora.lora_alpha, lora.layers())
start = time.perf_counter()
trainer = ElarablationTrainer(model, config, load_contexts(contexts), tokenizer, peft_config=peft_config)
prepare = time.perf_counter() - start
start = time.perf_counter()
trainer.train()
train = time.perf_counter() - start
rows = [dict(id=r.context_id, depth=r.depth, own_bad=r.own_bad, path_prob=r.path_prob,
             bad_share={str(k): v for k, v in r.bad_share.items()}) for r in trainer._rows]
logs = [entry for entry in trainer.state.log_history if "loss" in entry]
with open(out_path, "w", encoding="utf-8") as f:
    json.dump(dict(prepare_s=prepare, train_s=train, steps=steps, rows=rows, logs=logs), f, indent=1)
print(f"before the first step {prepare:.1f} s, {steps} steps {train:.1f} s ({train / steps:.2f} s a step)")

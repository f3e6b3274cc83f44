"""Issue 16: where `auto`'s training stage spends its time, method by method (timers around the trainer's methods).

Trains the contexts of a story bench work folder as `auto` does (bundled model, chat template, top six layers, hold 57,
`--bf16`), for STEPS steps, and prints the seconds spent in each of the trainer's methods (a method called inside
another counts in both). Used for "Frozen weights cast once ..." in docs/elarablation.md (30 steps, each run alone,
old and new code one after another on the same folder).

Usage: python prep_timers.py WORK STEPS OUT   (2 threads; about a minute of preparation, then ~1.1 s a step)
"""

import collections
import functools
import sys
import time

import torch

from hf_steer.elarablation import trainer as T
from hf_steer.elarablation.arguments import AutoLoraArguments
from hf_steer.elarablation.chat import apply_chat_template
from hf_steer.elarablation.config import ElarablationConfig
from hf_steer.elarablation.pipeline import train
from hf_steer.models import load_model

torch.set_num_threads(2)
seconds: dict[str, float] = collections.defaultdict(float)
calls: collections.Counter = collections.Counter()


def timed(name):
    method = getattr(T.ElarablationTrainer, name)

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            seconds[name] += time.perf_counter() - start
            calls[name] += 1

    setattr(T.ElarablationTrainer, name, wrapper)


for name in ["_prepare_rows", "_expand", "_read_hold_beginnings", "_reference_forward", "_assign_hold_masks",
             "_assign_phrase_let_go", "_fill_reference", "_packing_works", "compute_loss", "_context_hold",
             "_anchor_kl", "_slot_forward", "training_step"]:
    timed(name)

work, steps, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
model, tokenizer = load_model(None)
apply_chat_template(tokenizer, None)
config = ElarablationConfig(output_dir=out, bf16=True)
fields = {"num_train_epochs": 2.0, "seed": 0, "save_strategy": "no", "context_weight": 57.0, "hold_let_go_words": None,
          "disable_tqdm": True, "logging_steps": 10, "max_steps": steps}
start = time.perf_counter()
result = train(f"{work}/contexts.yaml", out, model, config=config, lora=AutoLoraArguments(lora_layers="24-29"),
               tokenizer=tokenizer, **fields)
print(f"total {time.perf_counter() - start:.1f} s, train {result['train_seconds']:.1f} s, steps {result['steps']}, "
      f"rows {len(result['trainer']._rows)}")
for name, value in sorted(seconds.items(), key=lambda kv: -kv[1]):
    print(f"{name:28s} {value:7.2f} s  x{calls[name]}")

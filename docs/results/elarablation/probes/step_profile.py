"""Issue 16 (training cost): where a training step of auto's stage goes, fp32 against bf16 autocast, on this CPU.

Trains auto's default settings on a work folder's contexts.yaml for a few steps under torch.profiler (steps 4-6)
and prints each step's seconds and the ops by self CPU time. Usage (2 threads, the bundled model):
    python step_profile.py WORK_DIR [--bf16] > out.txt
step_profile_{fp32,bf16}_amd.txt: 2026-12-07, an AMD EPYC with AVX512-BF16, on a fresh `auto` folder's contexts (a
copy of the code then, with bf16 set the same way as --bf16 sets it now).
"""
import sys
import time

import torch
from transformers import TrainerCallback

from hf_steer.elarablation.config import ElarablationConfig
from hf_steer.elarablation.pipeline import train
from hf_steer.models import load_model

torch.set_num_threads(2)
work, bf16 = sys.argv[1], "--bf16" in sys.argv
model, tokenizer = load_model(None)
seconds = []


class StepTimes(TrainerCallback):
    def on_step_begin(self, *args, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, *args, **kwargs):
        seconds.append(time.perf_counter() - self.start)
        profiler.step()


profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                  schedule=torch.profiler.schedule(wait=2, warmup=1, active=3))
config = ElarablationConfig(output_dir="/tmp/step_profile", max_steps=7, num_train_epochs=2, context_weight=100,
                            save_strategy="no", logging_steps=10, bf16=bf16)
with profiler:
    result = train(f"{work}/contexts.yaml", "/tmp/step_profile", model, config=config, tokenizer=tokenizer,
                   callbacks=[StepTimes()])
print("trainer", round(result["train_seconds"], 1), "s; steps", [round(s, 2) for s in seconds])
print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))

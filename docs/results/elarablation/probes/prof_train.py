"""Issue 16: the training stage's preparation and trainer on a story-bench work folder's contexts.yaml, as `auto` runs
them (bundled model, top six layers, context_weight 100, 2 epochs, seed 0), without loading or saving the model.

Usage: python prof_train.py WORK bf16|fp32 [MAX_STEPS|-1 [q]]   (2 threads, minutes)
  prints {"load", "contexts", "init", "train", "rows", "steps"} in seconds, then cProfile tables of the preparation
  and the trainer (left out with a fourth argument, "q": the timings then carry no profiler overhead)
"""
import cProfile, pstats, sys, time, json
import torch
torch.set_num_threads(2)
from hf_steer.models import load_model
from hf_steer.elarablation.config import ElarablationConfig
from hf_steer.elarablation.pipeline import default_lora_config
from hf_steer.elarablation.contexts import load_contexts
from hf_steer.elarablation.trainer import ElarablationTrainer
from hf_steer.utils import set_seed

work = sys.argv[1]; bf16 = sys.argv[2] == "bf16"; steps = int(sys.argv[3]) if len(sys.argv) > 3 else -1; quiet = len(sys.argv) > 4
t0 = time.perf_counter()
model, tok = load_model(None)
t1 = time.perf_counter()
ds = load_contexts(f"{work}/contexts.yaml")
cfg = ElarablationConfig(output_dir="/tmp/prof_out", bf16=bf16, num_train_epochs=2, seed=0, save_strategy="no",
                         context_weight=100.0, disable_tqdm=True, logging_steps=10, max_steps=steps, report_to=[])
set_seed(0)
peft = default_lora_config(model, 8, 16, [-6, -5, -4, -3, -2, -1])
t2 = time.perf_counter()
prof = cProfile.Profile()
if not quiet: prof.enable()
tr = ElarablationTrainer(model, cfg, ds, tok, peft_config=peft)
prof.disable()
t3 = time.perf_counter()
prof2 = cProfile.Profile()
if not quiet: prof2.enable()
tr.train()
prof2.disable()
t4 = time.perf_counter()
print(json.dumps({"load": t1 - t0, "contexts": t2 - t1, "init": t3 - t2, "train": t4 - t3, "rows": len(tr._rows),
                  "steps": tr.state.global_step}))
for p, name in (() if quiet else ((prof, "init"), (prof2, "train"))):
    print("=====", name)
    pstats.Stats(p).sort_stats("cumulative").print_stats(45)

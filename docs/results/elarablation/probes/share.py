"""Issue 16: the bad shares first_token_push reads for the beginnings of bad words at one `auto` pattern's slots.

Builds the trainer's rows (no training) for one family of an `auto` contexts file on the bundled model and prints,
for each slot, the base's probability of going on to a bad word from each followed beginning (" El" -> "ara").

Usage: python share.py CONTEXTS_YAML [FAMILY]      (default family found_elara)
"""

import sys
import tempfile

import torch
import yaml
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_steer.elarablation.config import ElarablationConfig
from hf_steer.elarablation.contexts import load_contexts
from hf_steer.elarablation.trainer import ElarablationTrainer
from hf_steer.models import bundled_model_path

torch.set_num_threads(2)
family = sys.argv[2] if len(sys.argv) > 2 else "found_elara"
path = bundled_model_path()
tok = AutoTokenizer.from_pretrained(path)
doc = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d["family"] == family)
with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
    yaml.safe_dump(doc, f)
config = ElarablationConfig(output_dir=tempfile.mkdtemp(), num_train_epochs=1, disable_tqdm=True, auto_keep=0)
trainer = ElarablationTrainer(AutoModelForCausalLM.from_pretrained(path), config, load_contexts(f.name), tok,
                              peft_config=LoraConfig(r=4, target_modules=["q_proj"]))
for row in trainer._rows:
    if row.depth == 1:
        shares = {trainer._texts(t): round(q, 3) for t, q in row.bad_share.items()}
        print(f"...{tok.decode(row.input_ids[-6:])!r}: bad share of each followed beginning {shares}")

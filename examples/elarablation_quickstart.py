"""Elarablation in a dozen lines: train the bundled model out of "Elara", then look at the slot again.

    .venv/bin/python examples/elarablation_quickstart.py
"""

import torch

from hf_steer.elarablation import ElarablationConfig, ElarablationTrainer, load_contexts
from hf_steer.elarablation.pipeline import default_lora_config
from hf_steer.models import load_model

model, tokenizer = load_model()  # the bundled SmolLM2-135M-Instruct
contexts = load_contexts("female_names")  # 8 built-in contexts that end where a name starts
args = ElarablationConfig(output_dir="elarablation-quickstart", num_train_epochs=8, learning_rate=2e-3)
trainer = ElarablationTrainer(model, args, contexts, tokenizer, peft_config=default_lora_config(model))
trainer.train()
trainer.save_model()

probe = tokenizer('The archer lowered her bow. "My name is', return_tensors="pt")
with torch.no_grad():
    probs = trainer.model(**probe).logits[0, -1].softmax(-1)
top = probs.topk(10)
print([(tokenizer.decode([int(i)]), round(float(p), 3)) for p, i in zip(top.values, top.indices)])

"""Load the bundled SmolLM2-135M-Instruct and look at the slop problem in four lines.

    .venv/bin/python examples/load_bundled_model.py
"""

import torch

from hf_steer import load_model

model, tokenizer = load_model()  # converts the bundled GGUF once, then loads the cached folder
inputs = tokenizer('The elf girl nods. "My name is', return_tensors="pt")
with torch.no_grad():
    probs = model(**inputs).logits[0, -1].softmax(-1)
for p, token_id in zip(*probs.topk(5)):
    print(f"{tokenizer.decode([int(token_id)])!r:>8}  {p:.3f}")

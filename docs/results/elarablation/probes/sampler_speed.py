"""Issue 16: the stories' sampler read in blocks (InverseCdfSampling) against one float64 cumulative sum over the
vocabulary (the code before 17f46a4), on 102 held-out story prompts of the bundled model, 2 threads: seconds per run,
each sampler twice in one process, and whether they wrote the same tokens.

Usage: PYTHONPATH=. python docs/results/elarablation/probes/sampler_speed.py [MAX_NEW_TOKENS]
"""

import sys
import time

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from hf_steer.elarablation.sampling import InverseCdfSampling
from hf_steer.elarablation.stories import load_prompts, render_prompt
from hf_steer.models import load_model

torch.set_num_threads(2)


class WholeSum(LogitsProcessor):
    """The sampler before 17f46a4: one float64 cumulative sum over the whole vocabulary."""

    def __init__(self, temperature, seed):
        self.temperature = temperature
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, input_ids, scores):
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        cdf = probs.double().cumsum(dim=-1)
        u = torch.rand((len(scores), 1), generator=self.generator, dtype=torch.float64).to(cdf.device) * cdf[:, -1:]
        drawn = torch.searchsorted(cdf, u, right=True).clamp_(max=scores.shape[-1] - 1)
        return torch.full_like(scores, -float("inf")).scatter_(-1, drawn, 0.0)


model, tok = load_model(None)
model.eval()
prompts, chat = load_prompts("stories:heldout")
jobs = [p for p in prompts for _ in range(3)]
tok.padding_side = "left"
enc = tok([render_prompt(tok, p, chat) for p in jobs], return_tensors="pt", padding=True, add_special_tokens=not chat)
new_tokens = int(sys.argv[1]) if len(sys.argv) > 1 else 200
outs = {}
for name, cls in [("whole", WholeSum), ("blocks", InverseCdfSampling), ("whole2", WholeSum), ("blocks2", InverseCdfSampling)]:
    start = time.perf_counter()
    with torch.no_grad():
        outs[name] = model.generate(**enc, do_sample=False, logits_processor=LogitsProcessorList([cls(0.7, 5)]),
                                    max_new_tokens=new_tokens, pad_token_id=tok.pad_token_id,
                                    eos_token_id=[tok.eos_token_id])
    print(name, round(time.perf_counter() - start, 1), "s", tuple(outs[name].shape), flush=True)
print("same stories:", torch.equal(outs["whole"], outs["blocks"]))

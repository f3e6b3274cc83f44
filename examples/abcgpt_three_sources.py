"""abcGPT with three sources: TinyStories, Shakespeare and a list of first names.

The dial is now a mixture over the three sources. Each unit's source position m is a point on the
triangle (Dirichlet(½,½,½): most units sit near a corner, some on an edge, a few inside); training
draws one mixture per row from Dirichlet(½,½,½) and that row's source from Categorical(mixture).

    python examples/abcgpt_three_sources.py --steps 300 --output-dir runs/abc3

prints the held-out loss of every source at every corner and at the centre (the diagonal should be
the smallest number of its column), then samples at a few mixtures.
"""

import argparse

from hf_steer.abcgpt.evaluation import evaluate_loss
from hf_steer.abcgpt.generation import generate_text
from hf_steer.abcgpt.training import BUNDLED_SOURCES, TrainConfig, train

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=300)
parser.add_argument("--n-embd", type=int, default=64)
parser.add_argument("--n-layer", type=int, default=2)
parser.add_argument("--block-size", type=int, default=64)
parser.add_argument("--output-dir", default="runs/abc3")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

names = ["tinystories", "shakespeare", "names"]
cfg = TrainConfig(
    sources={n: str(BUNDLED_SOURCES[n]) for n in names}, output_dir=args.output_dir, steps=args.steps,
    n_embd=args.n_embd, n_layer=args.n_layer, n_head=4, block_size=args.block_size, seed=args.seed,
    log_every=max(1, args.steps // 5), save_every=0,  # no checkpoints: rerunning the example trains afresh
)
result = train(cfg)
model, tok, corpus = result.model, result.tokenizer, result.corpus

dials = {f"corner {n}": [1.0 if m == n else 0.0 for m in names] for n in names}
dials["centre"] = [1 / 3] * 3
print(f"\nheld-out loss (nats/char); rows = dial, columns = source text\n{'':>20}" + "".join(f"{n:>13}" for n in names))
for label, mix in dials.items():
    losses = [evaluate_loss(model, corpus.val[n], mix, cfg.block_size, 4, 16) for n in names]
    print(f"{label:>20}" + "".join(f"{v:>13.3f}" for v in losses))

for mix in ["tinystories=1", "shakespeare=1", "names=1", "shakespeare=0.5,names=0.5"]:
    text = generate_text(model, tok, prompt="\n", mix=mix, max_new_tokens=min(120, cfg.block_size - 2), seed=1)[0]
    print(f"\n--- {mix}\n{text.strip()}")

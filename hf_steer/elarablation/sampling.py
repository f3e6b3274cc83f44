"""Cheap exact sampling of short continuations, for measuring which names a model writes.

Sampling 200 names per context with ``generate(num_return_sequences=200)`` re-reads the context 200
times. Names are short, and most samples share their first tokens, so this sampler reads the
context once (KV cache), then walks a prefix tree: at each depth it runs ONE batched forward over
the distinct unfinished prefixes and draws, for each prefix, as many next tokens as samples went
through it. The draws are exactly those of ancestral sampling at the given temperature.

:class:`InverseCdfSampling` is the stories' draw (``stories.generate_stories``): ancestral sampling inside
``generate`` without ``torch.multinomial``'s exponential per vocabulary entry.
"""

from __future__ import annotations

import inspect
import re
from collections import Counter
from collections.abc import Callable

import torch
from transformers import LogitsProcessor

_NAME = re.compile(r"[A-Z][\w'\-]*")
_DONE_NAME = re.compile(r"[A-Z][\w'\-]*[^\w'\-]")


def first_name(continuation: str) -> str | None:
    """The first capitalised word of a continuation's first line, or ``None`` when the slot got no name."""
    match = _NAME.search(continuation.split("\n")[0])
    return match.group(0) if match else None


def name_is_complete(text: str) -> bool:
    """True once the first line holds a whole capitalised word (or the line ended)."""
    return "\n" in text or bool(_DONE_NAME.search(text))


def _cache_keyword(model) -> str:
    """``cache`` (transformers >= 5.2x) or the older ``past_key_values``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"


@torch.no_grad()
def sample_continuations(
    model,
    tokenizer,
    context: str | list[int],
    n: int = 200,
    temperature: float = 1.0,
    max_new_tokens: int = 5,
    done: Callable[[str], bool] = name_is_complete,
    generator: torch.Generator | None = None,
) -> Counter:
    """Sample ``n`` continuations of ``context`` and count their texts.

    A continuation stops when ``done(text)`` is true or after ``max_new_tokens`` tokens. Each depth feeds
    only the newest token of every distinct open prefix; the KV cache rows follow their parents.
    """
    from transformers import DynamicCache

    device = next(model.parameters()).device
    ids = tokenizer(context)["input_ids"] if isinstance(context, str) else list(context)
    ids = torch.tensor([ids], device=device)
    cache_kw = _cache_keyword(model)
    cache = DynamicCache()
    logits = model(input_ids=ids, use_cache=True, logits_to_keep=1, **{cache_kw: cache}).logits[:, -1]
    length = ids.shape[1]

    def draw(logits: torch.Tensor, counts: list[int]) -> list[list[int]]:
        probs = torch.softmax(logits.float() / temperature, dim=-1).cpu()
        return [torch.multinomial(p, c, replacement=True, generator=generator).tolist() for p, c in zip(probs, counts)]

    finished: Counter = Counter()
    # open prefixes of the previous depth, in the order of the cache's batch rows
    parents: list[tuple[int, ...]] = [()]
    counts: list[int] = [n]
    for depth in range(1, max_new_tokens + 1):
        children: Counter = Counter()
        child_parent: dict[tuple[int, ...], int] = {}
        for row, tokens in enumerate(draw(logits, counts)):
            for token in tokens:
                child = parents[row] + (token,)
                children[child] += 1
                child_parent[child] = row
        parents, counts, rows = [], [], []
        for prefix, count in children.items():
            text = tokenizer.decode(list(prefix), skip_special_tokens=True)
            if depth == max_new_tokens or done(text) or prefix[-1] == tokenizer.eos_token_id:
                finished[text] += count
            else:
                parents.append(prefix)
                counts.append(count)
                rows.append(child_parent[prefix])
        if not parents:
            break
        cache.batch_select_indices(torch.tensor(rows, device=device))
        length += 1
        logits = model(
            input_ids=torch.tensor([[p[-1]] for p in parents], device=device),
            attention_mask=torch.ones((len(parents), length), dtype=torch.long, device=device),
            position_ids=torch.full((len(parents), 1), length - 1, device=device),
            use_cache=True, logits_to_keep=1, **{cache_kw: cache},
        ).logits[:, -1]
    return finished


def name_counts(samples: Counter) -> Counter:
    """Counter of first names (``None`` for samples without one) from :func:`sample_continuations`."""
    names: Counter = Counter()
    for text, count in samples.items():
        names[first_name(text)] += count
    return names


class InverseCdfSampling(LogitsProcessor):
    """A ``LogitsProcessor`` that draws the next token itself, for ``generate(do_sample=False)``: ancestral
    sampling at ``temperature``, one uniform number per row through the cumulative distribution; every other
    token's score becomes ``-inf``, so greedy decoding takes the drawn one.

    Why not ``do_sample=True``: ``torch.multinomial`` draws one sample on the CPU by drawing an exponential for
    every vocabulary entry, serially (``q ~ Exp(1)``, ``argmax(p / q)``): 102 stories x 49,152 tokens took 97 ms a
    decoding step on 2 cores, a fifth of generating with the bundled model (``torch.profiler``). The draw here is
    from the same distribution, from another random stream: the same seed writes other stories than
    ``do_sample=True``.

    The cumulative sum is read in two levels, blocks of ``BLOCK`` tokens and then the tokens of the one block the
    number falls in: a float64 cumulative sum over the whole vocabulary (and the float64 copy it needs) was the
    largest cost of a decoding step outside the matrix products in ``torch.profiler`` (102 stories, bundled model,
    2 cores). Without the profiler 102 stories of 200 tokens took 83.8 / 86.1 s -> 80.5 / 82.6 s (about 4%; the
    same tokens). The same number picks the same token as the whole-vocabulary sum but where it lies within float
    rounding of a boundary.
    """

    BLOCK = 256

    def __init__(self, temperature: float, seed: int):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows, vocab = scores.shape
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        blocks = -(-vocab // self.BLOCK)
        padded = probs if vocab == blocks * self.BLOCK else torch.nn.functional.pad(probs, (0, blocks * self.BLOCK - vocab))
        padded = padded.view(rows, blocks, self.BLOCK)
        # float64 above the block: 49k float32 terms would drift at the top of one sum; a leading 0 is the mass
        # below the first block
        block_cdf = torch.nn.functional.pad(padded.sum(-1).double().cumsum(-1), (1, 0))
        u = torch.rand((rows, 1), generator=self.generator, dtype=torch.float64).to(probs.device) * block_cdf[:, -1:]
        block = (torch.searchsorted(block_cdf, u, right=True) - 1).clamp_(0, blocks - 1)
        below = block_cdf.gather(-1, block)
        inside = padded[torch.arange(rows, device=probs.device), block[:, 0]].double().cumsum(-1)
        # the number's place in its block, on the block's own sum (the same mass, summed in another order)
        mass = block_cdf.gather(-1, block + 1) - below
        v = ((u - below) / mass.clamp(min=torch.finfo(torch.float64).tiny) * inside[:, -1:])
        v = torch.minimum(v, torch.nextafter(inside[:, -1:], torch.zeros_like(v)))  # never past its last token
        drawn = (block * self.BLOCK + torch.searchsorted(inside, v, right=True)).clamp_(max=vocab - 1)
        out = probs if scores.dtype == probs.dtype else torch.empty_like(scores)
        return out.fill_(-float("inf")).scatter_(-1, drawn, 0.0)

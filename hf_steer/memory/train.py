"""Train one LoRA adapter on a handful of (prompt, target) pairs, fast enough to run between chat turns.

Why a plain torch loop and not ``transformers.Trainer``: a memory job is a few dozen optimizer steps on
a few hundred tokens. Trainer's set-up (accelerate state, dataloaders, callbacks, logging) costs about
as much as the job itself, and what makes such a job fast is a trick Trainer cannot do:

**Frozen-prefix caching.** The fast preset puts LoRA only on the top layers. Everything below them is
frozen *and* identical at every step, so their output is computed once (no grad) and reused; each step
then runs only the top layers, and the vocabulary projection only at the positions that carry a loss
(the answer tokens). On SmolLM2-135M (30 layers) with the top 6 layers adapted this makes a step
roughly 4-6x cheaper than a full forward/backward. Models whose decoder is not a plain ``layers`` +
``norm`` stack fall back to ordinary full forwards, with the same result and more time.

**Length groups.** A chunk's texts are 22-84 tokens long; one right-padded batch of them was 40%
padding. Each optimizer batch now runs as a few groups of similar length (:func:`length_groups`), each
group's summed loss divided by the batch's answer-token count, the gradients accumulated: the loss and
gradient of the one padded batch, exactly (``tests/memory/test_train.py`` checks both against
transformers' own loss on a tiny model, for the cached-bottom path and the fallback).

Where a 4-turn chunk's time went (issue 14, the bench's first personal chunk, bundled model, 2
threads, under ``flock -x``; the previous recipe: 29 texts, one 29 x 84 batch = 2436 positions for 1475
tokens, 425 answer tokens, top 6 layers, 12 steps): training 63.2 s of a 63.9 s ``remember`` --
bottom 24 layers once 5.8 s; over the 12 steps the top-6 forward 20.4 s, the vocabulary projection at
the answer tokens 5.4 s, backward 27.5 s, AdamW 0.2 s; reading, augmenting and tokenizing 0.016 s,
adapter to bytes 0.05 s. Everything scales with positions x adapted layers x steps, so the ``fast-cpu``
recipe now cuts all three: no padding (above), fewer texts (an assistant sentence that only repeats
the user's names is not learned; 1 echo question per fact; 4 anchors), the top 3 layers and 8 steps at
lr 1e-2 (docs/memory.md has the figures of each candidate).

Tried and dropped (issue 14, 2026-12-02, first two dev chats of the conversation bench, default path):
top 3 layers, 6 steps at lr 2e-2 (final loss 0.46-1.02: too high a rate for so few steps); top 3 or 4
layers, 6 steps at lr 1e-2 (recall 0.47 / 0.33 against 0.53 before, the second chunk's correction lost).

Tried and dropped (issue 14, 2026-12-03): running each length group's shared chat-template opening (14
tokens of SmolLM2's 32-73; every text starts with the system prompt) once through the top layers and
letting every row attend to its keys and values (a duck-typed cache in front of the rows' own): exact
(loss and gradients matched the plain run to 1e-5 on tiny llama/qwen3/mistral/phi3), but no faster. The
8 steps of the first dev chunk, interleaved, idle (flock -x), 2 threads: 10.9/11.4/10.5/8.7 s shared
against 10.9/10.5/10.7/7.9 s plain. A quarter fewer positions in the top 3 layers is about a tenth of the
step's FLOPs (the vocabulary projection at the answers is ~40%), and the extra small calls ate it.

Models with sliding-window layers (Gemma-3) run piecewise only when the window covers the texts
(``_one_mask_fits``): the top layers get one captured mask, which must fit them all.

Tried on SmolLM2-135M and dropped (2026-11-26, two chunks of the recall bench, all else default):
* a softmax over a candidate vocabulary (the batch's tokens, the base's top 32 and each target's 32
  nearest output embeddings) made a step a quarter cheaper, but recall fell from 0.96 to 0.38: tokens
  left out of the softmax rose with their targets and won at generation time;
* a penalty on the size of the adapter's writes (‖B·A·x‖² / ‖x‖²) on the anchors' tokens, meant to
  make stacked adapters add up without disturbing each other: at weight 10 the chunk's loss stayed at
  0.32 instead of 0.08 and recall fell to 0.29 (all active: 0.17, against 0.58 without it). Anchors
  and facts share the chat template, so "write nothing on anchors" also blocks the writes facts need.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from ..errors import HfSteerError
from .config import PRESETS, TrainPreset, get_preset

# The preset lives in config.py (no torch: the CLI reads its fields for flags and help).
__all__ = ["PRESETS", "TrainPreset", "get_preset", "lora_config", "train_adapter"]


def lora_config(preset: TrainPreset, num_layers: int, module_names: set[str]):
    """The ``LoraConfig`` for a preset on a model with ``num_layers`` layers and these linear module names."""
    from peft import LoraConfig

    targets = [m for m in preset.target_modules if m in module_names]
    if not targets:
        raise HfSteerError(
            f"preset target_modules {list(preset.target_modules)} match no module of this model "
            f"(it has {sorted(module_names)[:12]}): pass target_modules that exist"
        )
    layers = None
    if 0 < preset.top_layers < num_layers:
        layers = list(range(num_layers - preset.top_layers, num_layers))
    return LoraConfig(
        r=preset.r, lora_alpha=preset.alpha, lora_dropout=preset.dropout, target_modules=targets,
        layers_to_transform=layers, bias="none", task_type="CAUSAL_LM",
    )


def encode_examples(tokenizer, examples: list[tuple[str, str]], max_length: int) -> list[dict]:
    """Tokenize ``(prompt, target)`` pairs; labels are -100 on the prompt so only the target is learned."""
    rows = []
    for prompt, target in examples:
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
        t_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
        if not p_ids and tokenizer.bos_token_id is not None and tokenizer.bos_token_id != tokenizer.eos_token_id:
            p_ids = [tokenizer.bos_token_id]
        if len(p_ids) + len(t_ids) > max_length and len(t_ids) < max_length // 2:
            p_ids = p_ids[len(p_ids) + len(t_ids) - max_length :]  # a long prompt loses its start, not the answer
        ids = (p_ids + t_ids)[:max_length]
        labels = ([-100] * len(p_ids) + t_ids)[:max_length]
        if any(label != -100 for label in labels[1:]):
            rows.append({"input_ids": ids, "labels": labels})
    return rows


def _collate(rows: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    # Right padding: training positions then start at 0 exactly like an unpadded prompt at inference.
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"])
        labels[i, :n] = torch.tensor(r["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class _Stop(Exception):
    """Raised by the capture hook to end a forward pass early."""


def _one_mask_fits(config, max_length: int | None) -> bool:
    """Whether one causal mask serves every layer for texts of up to ``max_length`` tokens: no local
    (sliding-window) layers, or a window no shorter than the texts (Gemma-3: 512 against our 128)."""
    types = getattr(config, "layer_types", None) or []
    window = getattr(config, "sliding_window", None)
    if getattr(config, "use_sliding_window", True) is False:
        window = None
    local = window is not None and (not types or any(t != "full_attention" for t in types))
    return not local or (max_length is not None and window >= max_length)


def _decoder_parts(model, max_length: int | None = None):
    """``(layers, norm, lm_head)`` when the model is a plain decoder stack we can run piecewise on texts of up
    to ``max_length`` tokens, else None."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        decoder = base.get_decoder()
    except Exception:
        return None
    layers, norm, head = getattr(decoder, "layers", None), getattr(decoder, "norm", None), base.get_output_embeddings()
    if layers is None or norm is None or head is None:
        return None
    if getattr(base.config, "final_logit_softcapping", None) or getattr(base.config, "logit_scale", None):
        return None
    if not _one_mask_fits(base.config, max_length):  # the top layers run with one captured mask: it must fit them all
        return None
    return layers, norm, head


class _PrefixCache:
    """Runs the frozen bottom of the model once per batch and the adapted top at every step."""

    def __init__(self, model, parts, first: int, batch: dict[str, torch.Tensor]):
        self.layers, self.norm, self.head = parts
        self.first = first
        captured = {}

        def hook(_module, args, kwargs):
            captured["args"], captured["kwargs"] = args, kwargs
            raise _Stop

        handle = self.layers[first].register_forward_pre_hook(hook, with_kwargs=True)
        try:
            with torch.no_grad():
                model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
        except _Stop:
            pass
        finally:
            handle.remove()
        hidden, *rest = captured["args"] if captured["args"] else (captured["kwargs"].pop("hidden_states"),)
        self.hidden = hidden.detach()
        self.rest = tuple(rest)
        self.kwargs = dict(captured["kwargs"])
        labels = batch["labels"][:, 1:]
        self.positions = labels != -100
        self.targets = labels[self.positions]

    def loss_sum(self) -> torch.Tensor:
        """Summed cross-entropy over the batch's answer tokens (the caller divides by the step's token count)."""
        h = self.hidden
        for layer in self.layers[self.first :]:
            h = layer(h, *self.rest, **self.kwargs)
            if isinstance(h, tuple):
                h = h[0]
        h = self.norm(h)[:, :-1][self.positions]
        return F.cross_entropy(self.head(h).float(), self.targets, reduction="sum")


class _FullForward:
    """The fallback: the whole model at every step (same loss as :class:`_PrefixCache`, more time)."""

    def __init__(self, model, batch: dict[str, torch.Tensor]):
        self.model, self.batch = model, batch

    def loss_sum(self) -> torch.Tensor:
        logits = self.model(input_ids=self.batch["input_ids"], attention_mask=self.batch["attention_mask"],
                            use_cache=False).logits
        labels = self.batch["labels"][:, 1:]
        return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels.flatten(), ignore_index=-100,
                               reduction="sum")


def length_groups(lengths: list[int], slack: float = 1.25) -> list[list[int]]:
    """Indices of texts grouped by length, longest first, so a group pads little.

    A new group starts when a text is shorter than its group's longest divided by ``slack``; padding is
    then under ``1 - 1/slack`` of a group. One padded batch of a 4-turn chunk's 29 texts (lengths 22-84
    tokens) was 40% padding: 2436 positions for 1475 tokens.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[i] * slack >= lengths[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def step_loss(pieces: list, supervised: int) -> float:
    """One optimizer batch's mean token loss, its gradient accumulated piece by piece (``backward`` on each).

    Exactly the loss (and gradient) of one padded batch: every piece's summed loss over the batch's
    answer-token count.
    """
    total = 0.0
    for piece in pieces:
        loss = piece.loss_sum() / supervised
        loss.backward()
        total += float(loss.detach())
    return total


def train_adapter(
    model, tokenizer, adapter_name: str, examples: list[tuple[str, str]], preset: TrainPreset, seed: int = 0
) -> dict:
    """Train ``adapter_name`` (already added to the PeftModel ``model`` and the ONLY active one) in place.

    Returns figures: seconds, steps, tokens, first and last loss, whether prefix caching was used.
    """
    rows = encode_examples(tokenizer, examples, preset.max_length)
    if not rows:
        raise HfSteerError("the chunk gave no training text: pass a chunk with at least one sentence")
    start, cpu_start = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    bs = preset.batch_size or len(rows)
    # Each optimizer batch is run as a few length groups (no long padding), its gradient summed over them.
    batches = []
    for i in range(0, len(rows), bs):
        chunk_rows = rows[i : i + bs]
        groups = length_groups([len(r["input_ids"]) for r in chunk_rows])
        batches.append([{k: v.to(device) for k, v in _collate([chunk_rows[j] for j in g], pad).items()}
                        for g in groups])
    steps = preset.epochs * len(batches) if preset.epochs else preset.steps
    params = [p for n, p in model.named_parameters() if p.requires_grad and f".{adapter_name}." in n]
    if not params:
        raise HfSteerError(f"adapter {adapter_name!r} has no trainable weights: it must be added and set active first")
    optimizer = torch.optim.AdamW(params, lr=preset.learning_rate, weight_decay=preset.weight_decay)
    # Short cosine decay: a high rate early to move fast, a low one late so the last steps settle.
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))

    parts = _decoder_parts(model, preset.max_length)
    first = 0
    if parts is not None and 0 < preset.top_layers < len(parts[0]):
        first = len(parts[0]) - preset.top_layers
    model.train()
    try:
        pieces = [[_PrefixCache(model, parts, first, g) if first > 0 else _FullForward(model, g) for g in groups]
                  for groups in batches]
        supervised = [sum(int((g["labels"][:, 1:] != -100).sum()) for g in groups) for groups in batches]
        losses = []
        for step in range(steps):
            i = step % len(batches)
            losses.append(step_loss(pieces[i], supervised[i]))
            optimizer.step()
            sched.step()
            optimizer.zero_grad(set_to_none=True)
    finally:
        model.eval()
    return {
        "seconds": round(time.perf_counter() - start, 3),
        # CPU time of this process: on a shared machine wall time overstates the cost; this does not.
        "cpu_seconds": round(time.process_time() - cpu_start, 3),
        "steps": steps,
        "examples": len(rows),
        "tokens": int(sum(len(r["input_ids"]) for r in rows)),
        "first_loss": round(losses[0], 4),
        "last_loss": round(losses[-1], 4),
        "prefix_cache": first > 0,
        "length_groups": sum(len(groups) for groups in batches),
    }

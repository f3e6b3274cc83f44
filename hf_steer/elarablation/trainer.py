"""ElarablationTrainer: train slop tokens out of a model at the exact point they would start.

The contexts are never trained on. Each step runs ONE forward over a left-padded batch of contexts,
reads the logits at the last position only, takes the top-k next tokens of each row (plus its
forced-good tokens), classifies them with the row's rules, and steps on the loss of
:mod:`hf_steer.elarablation.loss`; *keep* rows (a name already introduced must come back) are held at
the reference instead. Everything else (optimiser, schedule, accumulation, checkpoint/resume,
distributed launch, PEFT saving) is :class:`transformers.Trainer`'s; the sampler draws ``repeat``
rows per epoch from each group of alternatives, as the original elarablate does.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainerCallback

from ..benchmarking import kl_per_position
from ..errors import HfSteerError
from ..utils import frozen_linears_in, reusing_freed_memory
from .config import ElarablationConfig
from .contexts import (
    TokenRules,
    TokenTexts,
    load_contexts,
    prompt_length,
    render_context,
    tokenize_context,
    validate_hyperparameters,
    word_match,
    word_start,
)
from .loss import elarablation_loss, keep_loss
from .stories import hold_phrase_list, hold_word_list, pattern_regex, word_spans, words

# Rows one token deeper are built for a candidate that only *begins* a bad word (" tow" for "towering"),
# at most this many levels down.
MAX_WORD_DEPTH = 3
# The context hold reads the reference at every position of each context; its last hidden states are kept (one
# vocabulary projection per step instead of a whole forward) up to this many bytes, then read again each step.
REFERENCE_HIDDEN_BYTES = 1 << 30
# The context hold lets go a token that only begins a bad word (let_go_beginnings) where the reference gives it at
# least this much, and follows it deeper on paths at least this likely. On auto's 319 positions (bundled model):
# at 0.01, 1,641 positions let go and 44 s more preparation; 0.02, 1,008 and 35 s; 0.05, 415 and 24 s (10 s of
# it the vocabulary projection at every position). Below 5% a token's target moves by under 0.045 at bad_ratio 0.1.
HOLD_BEGINNING_MIN_PROB = 0.05


@dataclass
class PreparedRow:
    """One trainable position: token ids of the context (plus, one level deeper, the tokens so far) and its rules."""

    input_ids: list[int]
    rules: TokenRules
    top_k: int
    max_threshold: float
    min_threshold: float
    temperature: float
    depth: int
    context_id: str
    kind: str = "slop"
    expected_id: int | None = None
    group: str = ""
    draws: int | None = None
    vocab_class: int | None = None  # index of the row's whole-vocabulary classes (regex rules only)
    hold_class: int | None = None  # index of the row's bad-token mask for the context hold (context_weight)
    min_path_prob: float = 0.0  # deeper rows for a bad word's beginning only on paths at least this likely
    path_prob: float = 1.0  # how likely the base model's path from the slot to this row is
    # first_token_push: the base's next-token mass here on bad words (None: not read) and on beginnings of one;
    # then, for each beginning, the base's probability of going on to a bad word from it (read deeper down)
    own_bad: float | None = None
    pending_probs: dict[int, float] = field(default_factory=dict)
    bad_share: dict[int, float] = field(default_factory=dict)
    parent: PreparedRow | None = field(default=None, repr=False, compare=False)  # the row a deeper row grew from
    # the reference's last hidden states at the context's tokens (context hold; ElarablationTrainer._kept_states)
    ref_hidden: torch.Tensor | None = field(default=None, repr=False, compare=False)
    # and at the input of the first decoder layer with anything to train (frozen_bottom)
    ref_bottom: torch.Tensor | None = field(default=None, repr=False, compare=False)
    # (positions, tokens, bad shares) the context hold lets go by their share: beginnings of bad words
    # (let_go_beginnings, read once: _read_hold_beginnings) and bad phrases' words (_assign_phrase_let_go, share 1)
    hold_let_go: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = field(default=None, repr=False, compare=False)
    # the first position the context hold reads: the prompt's last token (it predicts the first token written);
    # the chat template before it is given, never written (contexts.prompt_length)
    held_from: int = 0
    # a deeper row's slot reference, read by the preparation's one-token forward (``_expand``)
    ref_logits: torch.Tensor | None = field(default=None, repr=False, compare=False)


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def continuation_ids(tokenizer, context: str, continuation: str) -> list[int]:
    """Token ids of ``continuation`` as the model would write it right after ``context``.

    A space is put before it unless the context ends in whitespace or an opening quote/bracket. The
    pair is tokenized together (so merges across the boundary are the model's own); when the context's
    tokens do not survive as a prefix, the continuation is tokenized alone.
    """
    sep = "" if not context or context[-1].isspace() or context[-1] in "\"'“‘([" else " "
    add_special = False
    base = tokenizer(context, add_special_tokens=add_special)["input_ids"]
    both = tokenizer(context + sep + continuation, add_special_tokens=add_special)["input_ids"]
    if both[: len(base)] == base and len(both) > len(base):
        return list(both[len(base):])
    return list(tokenizer(sep + continuation, add_special_tokens=False)["input_ids"])


class DrawSampler(torch.utils.data.Sampler):
    """Each epoch: every ungrouped row once, ``draws`` rows drawn at random (with replacement) from each group.

    That is the original elarablate's ``repeat`` with a random ``{a|b}`` choice per repeat. The order is
    shuffled with ``seed + epoch``, so every process of a distributed run sees the same order.
    """

    def __init__(self, rows: Sequence[PreparedRow], seed: int = 0):
        self.singles = [i for i, r in enumerate(rows) if not r.group]
        groups: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(rows):
            if r.group:
                groups[r.group].append(i)
        self.groups = [(members, rows[members[0]].draws or 1) for members in groups.values()]
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.singles) + sum(draws for _, draws in self.groups)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        picked = list(self.singles)
        for members, draws in self.groups:
            picked += [members[i] for i in torch.randint(len(members), (draws,), generator=generator).tolist()]
        order = torch.randperm(len(picked), generator=generator).tolist()
        return iter([picked[i] for i in order])


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask, position_ids)`` with padding on the left, so position -1 is every row's last token.

    Position ids are given explicitly: most models count positions from the first slot, padding included,
    which would shift a padded row away from the same context run alone.
    """
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, length - len(seq):] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[i, length - len(seq):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


def last_position_logits(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                         position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Next-token logits at the last position of each (left-padded) row: ``(B, V)``.

    ``logits_to_keep=1`` skips the vocabulary projection of every other position (on a 49k vocabulary
    that projection is a large share of a short forward).
    """
    if position_ids is None:
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    return forward_last(model, input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                        use_cache=False).logits[:, -1]


def forward_last(model: nn.Module, **kwargs: Any):
    """``model(**kwargs)`` with the vocabulary projection at the last position only, where the model allows it."""
    try:
        return model(**kwargs, logits_to_keep=1)
    except TypeError:  # architectures without logits_to_keep
        return model(**kwargs)


def _head_alone_gives_logits(model: nn.Module) -> bool:
    """Whether the output embedding applied to the last hidden states gives the model's logits (no soft-capping
    or logit scale after it, as Gemma-2 and Cohere have), the same with the adapter on or off (nothing in it trains)."""
    config = getattr(model, "config", None)
    head = model.get_output_embeddings()
    return (head is not None and not any(p.requires_grad for p in head.parameters())
            and not getattr(config, "final_logit_softcapping", None) and not getattr(config, "logit_scale", None))


def may_reach(head: nn.Module, states: torch.Tensor, tokens: list[int], written: list[int],
              floor: float) -> torch.Tensor:
    """Which rows of ``states`` (hidden states the output layer ``head`` reads) may give one of ``tokens`` a
    probability of at least ``floor``: a bool mask, with no row missed. The logits of ``tokens`` and of the tokens
    the text ``written`` next are a part of the vocabulary, so their logsumexp is at most the whole one's and
    ``exp(logit - it)`` is at least a token's probability; the bound is taken against a quarter of ``floor``, far
    past bf16's rounding. A model's own story gives its next token much of the mass, so the bound is close: the
    hold's beginnings need the whole vocabulary at few positions (projecting all of them was 10 s of ``auto``'s
    preparation, bundled model, 2 cores). A head that is not a plain float ``nn.Linear`` (a quantized one): every
    row."""
    weight = getattr(head, "weight", None)
    if not (isinstance(head, nn.Linear) and weight is not None and weight.dtype.is_floating_point
            and weight.dim() == 2 and weight.shape[-1] == states.shape[-1]):
        return torch.ones(len(states), dtype=torch.bool, device=states.device)
    cols = sorted(set(tokens) | set(written))
    at = {t: i for i, t in enumerate(cols)}
    index = torch.tensor(cols, device=weight.device)
    bias = None if head.bias is None else head.bias[index]
    logits = nn.functional.linear(states, weight[index], bias).float()
    bound = logits[:, [at[t] for t in tokens]] - logits.logsumexp(dim=-1, keepdim=True)
    return (bound >= math.log(floor / 4)).any(dim=-1)


def frozen_bottom(model: nn.Module) -> tuple[nn.ModuleList | None, int]:
    """``(decoder layers, how many of them from the bottom have nothing to train)``; ``(None, 0)`` when the model
    is not a plain stack of decoder ``layers`` or something outside them trains (embeddings)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        layers = getattr(base.get_decoder(), "layers", None)
    except Exception:  # no get_decoder
        return None, 0
    trainable = [re.search(r"\.layers\.(\d+)\.", n) for n, p in model.named_parameters() if p.requires_grad]
    if not isinstance(layers, nn.ModuleList) or not trainable or not all(trainable):
        return None, 0
    return layers, min(int(m.group(1)) for m in trainable)


class _PassThrough(nn.Module):
    """Stands in for a frozen bottom layer whose output is already known (it is given as ``inputs_embeds``)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        if hasattr(layer, "attention_type"):  # some models pick each layer's mask by it
            self.attention_type = layer.attention_type

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


@torch.no_grad()
def bottom_skip_works(model: nn.Module, layers: nn.ModuleList, first: int, input_ids: list[int]) -> bool:
    """Whether the model run from layer ``first`` on that layer's input gives its whole forward's logits, checked
    once on a few tokens: some architectures' decoder loops read a layer's output as a tuple, or do more between
    the layers, and those run whole."""
    was_training = model.training
    model.eval()
    try:
        ids = torch.tensor([input_ids[:16]], device=next(model.parameters()).device)
        whole = model(input_ids=ids, use_cache=False, output_hidden_states=True)
        with bottom_skipped(layers, first):
            skipped = model(inputs_embeds=whole.hidden_states[first], use_cache=False).logits
        return skipped.shape == whole.logits.shape and torch.allclose(skipped, whole.logits, atol=1e-3, rtol=1e-3)
    except Exception:  # an architecture that cannot start from inputs_embeds
        return False
    finally:
        model.train(was_training)


@contextlib.contextmanager
def bottom_skipped(layers: nn.ModuleList, first: int):
    """The model runs from decoder layer ``first`` on: pass that layer's input as ``inputs_embeds``."""
    saved = [layers[i] for i in range(first)]
    for i, layer in enumerate(saved):
        layers[i] = _PassThrough(layer)
    try:
        yield
    finally:
        for i, layer in enumerate(saved):
            layers[i] = layer


def listed_tokens(texts: Sequence[str], spec: str) -> tuple[dict[str, list[int]], dict[tuple[str, ...], dict[str, list[int]]]]:
    """``(words, phrases)`` of ``hold_let_go_words`` (``spec``): ``{word: its one-token forms}`` for its words that the
    vocabulary (every token's reader text, ``texts``) has as one token after a space (" whispered", " Whispered"), and
    ``{the words before: {last word: its one-token forms}}`` for its phrases whose last word is one. A token without
    the space is most often a piece inside a longer word ("aria" of "variation"): not let go. A list with neither is
    an error (the hold would let nothing go)."""
    listed, phrases = hold_word_list(spec), hold_phrase_list(spec)
    wanted = listed | {phrase[-1] for phrase in phrases}
    forms: dict[str, list[int]] = defaultdict(list)
    for token, text in enumerate(texts):
        word = text[1:].casefold()
        if text.startswith(" ") and word.isalpha() and word in wanted:
            forms[word].append(token)
    found = {word: forms[word] for word in listed if word in forms}
    after: dict[tuple[str, ...], dict[str, list[int]]] = defaultdict(dict)
    for *before, last in phrases:
        if last in forms and last not in found:  # a listed word is let go by the words' rule, not twice
            after[tuple(before)][last] = forms[last]
    if not found and not after:
        raise HfSteerError(f"hold_let_go_words {spec}: none of its {len(listed) + len(phrases)} words and phrases ends in "
                           "a word that is one token of this model (after a space), so the hold would let nothing go: "
                           "list whole words such as 'whispered'")
    return found, dict(after)


# A loss this close to zero is the reference itself: it gives no gradient (see compute_loss).
ZERO_LOSS = 1e-9


class ElarablationTrainer(Trainer):
    """Trainer for Elarablation (see the module docstring and ``docs/elarablation.md``).

    Args:
        model: a model, a model folder / Hub id, or ``None`` for the bundled SmolLM2-135M-Instruct.
        args: an :class:`ElarablationConfig` (default: one writing to ``elarablation-output``).
        train_dataset: a context Dataset (:func:`~hf_steer.elarablation.contexts.load_contexts`), or
            anything ``load_contexts`` accepts (paths, library names, row dicts).
        processing_class: the tokenizer (default: loaded from the model's folder).
        peft_config: a :class:`peft.PeftConfig` to train an adapter instead of the full model (required
            for a 4-bit model: QLoRA).
        anchor_text: ordinary text whose next-token distributions are held at the reference
            (``args.anchor_weight``); default: six short paragraphs in different registers (a children's story,
            an encyclopedia entry, instructions, a dialogue, a news item, a letter) shipped in ``data/anchor.txt``.
        callbacks, optimizers: as in :class:`~transformers.Trainer`.
    """

    _tag_names = ["trl", "elarablation", "hf_steer"]
    _name = "Elarablation"
    # compute_loss returns a per-batch mean: let Trainer divide by the accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model: PreTrainedModel | str | None = None,
        args: ElarablationConfig | None = None,
        train_dataset: datasets.Dataset | Sequence[Any] | str | None = None,
        processing_class: PreTrainedTokenizerBase | None = None,
        peft_config: Any | None = None,
        anchor_text: str | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple = (None, None),
    ):
        from ..models import keep_4bit_weights_unpacked, load_model, load_tokenizer

        if args is None:
            args = ElarablationConfig(output_dir="elarablation-output")
        if model is None or isinstance(model, (str, os.PathLike)):
            model, tokenizer = load_model(model, load_in_4bit=args.load_in_4bit,
                                          device="cpu" if args.use_cpu else None)
            processing_class = processing_class or tokenizer
        if processing_class is None:
            processing_class = load_tokenizer(model.config._name_or_path)
        if processing_class.pad_token_id is None:
            processing_class.pad_token = processing_class.eos_token
        if train_dataset is None:
            raise HfSteerError("train_dataset is empty: pass context files, library names or a context Dataset")
        if not isinstance(train_dataset, datasets.Dataset):
            train_dataset = load_contexts(train_dataset)
        if len(train_dataset) == 0:
            raise HfSteerError("train_dataset is empty: pass at least one context")
        if args.auto_keep > 0:
            from .contexts import rows_to_dataset
            from .keep import keep_rows

            rows = list(train_dataset)
            generated = keep_rows(rows, processing_class, args.auto_keep, seed=args.seed)
            if generated:
                train_dataset = rows_to_dataset(rows + generated, "context set with generated keep contexts")

        # A 4-bit model the user quantized himself: keep every CPU on bitsandbytes' autograd path (models.py).
        keep_4bit_weights_unpacked(model)
        quantized = bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))
        if peft_config is not None:
            from peft import PeftModel, get_peft_model, prepare_model_for_kbit_training

            if isinstance(model, PeftModel):
                raise HfSteerError("model is already a PeftModel and a peft_config was given: pass one or the other")
            if quantized:
                model = prepare_model_for_kbit_training(
                    model, use_gradient_checkpointing=args.gradient_checkpointing
                )
            model = get_peft_model(model, peft_config)
        elif quantized and not hasattr(model, "peft_config"):
            raise HfSteerError("a 4-bit model cannot be trained directly: pass peft_config (QLoRA)")

        self._pad_id = processing_class.pad_token_id
        self._texts = TokenTexts(processing_class)
        self._uses_adapter = hasattr(model, "disable_adapter")
        # The context hold's reference and the frozen bottom layers' output are read once per context and kept.
        self._hidden_bytes = 0
        self._head_alone = _head_alone_gives_logits(model)
        self._keeps_hidden = args.context_weight > 0 and self._head_alone
        self._layers, self._first = frozen_bottom(model)
        self._skips_bottom = (self._first > 0 and args.world_size == 1  # (under DDP/FSDP the layers run as usual)
                              and bottom_skip_works(model, self._layers, self._first,
                                                    tokenize_context(train_dataset[0], processing_class)))
        self._keeps_bottom = args.context_weight > 0 and self._skips_bottom
        self._lets_go_beginnings = args.context_weight > 0 and args.let_go_beginnings
        self._kinds: dict[tuple, str | None] = {}
        self._firsts: dict[tuple, list[int]] = {}
        self._word_masks: dict[str, torch.Tensor] = {}
        self._word_starts: dict[str, list[int]] | None = None  # one vocabulary a trainer, as _word_masks
        self._vocab_texts: list[str] = []
        self._anchor_bottom: torch.Tensor | None = None
        with self._cpu_reads(args, model):  # its reads of the base model too
            self._rows = self._prepare_rows(model, processing_class, train_dataset, args)
        self._ref_cache: dict[int, torch.Tensor] = {i: r.ref_logits for i, r in enumerate(self._rows)
                                                     if r.ref_logits is not None}
        self._anchor_ids: list[int] = []
        self._anchor_ref: torch.Tensor | None = None
        if args.anchor_weight > 0:
            if anchor_text is None:
                anchor_text = (Path(__file__).parent / "data" / "anchor.txt").read_text(encoding="utf-8")
            self._anchor_ids = processing_class(anchor_text)["input_ids"][: args.anchor_tokens]
            if len(self._anchor_ids) < 2:
                raise HfSteerError("anchor_text renders to fewer than 2 tokens: give more text or set anchor_weight=0")
        if args.context_weight > 0 and not self._uses_adapter:
            raise HfSteerError("context_weight needs a LoRA adapter (its reference is the model with the adapter off): "
                               "pass peft_config or set context_weight=0")
        if self._keeps_bottom:  # the rows the preparation did not read (keep rows), before the first step
            with self._cpu_reads(args, model):
                self._fill_reference(model, [i for i, r in enumerate(self._rows) if r.ref_bottom is None],
                                     args.per_device_train_batch_size,
                                     None if args.disable_tqdm else "reading the base model (keep)")
        if not self._uses_adapter:
            # Full fine-tuning has no frozen copy to ask later: read the reference logits now.
            needs_ref = [i for i, r in enumerate(self._rows) if args.loss_type == "margin" or r.kind == "keep"]
            if needs_ref:
                self._fill_reference(model, needs_ref)
            if self._anchor_ids:
                self._fill_anchor_reference(model)
        # A deeper row trains in the step of the row it grew from (``_collate``): the steps, and the hold and anchor
        # each step carries, stay those of the contexts; as rows of their own the deeper rows doubled auto's steps
        # and, with them, the pull of the hold and the anchor against every context's push.
        self._units = [i for i, r in enumerate(self._rows) if r.parent is None]
        self._index_of = {id(r): i for i, r in enumerate(self._rows)}
        self._riders: dict[int, list[int]] = defaultdict(list)  # unit -> its deeper rows
        self._unit_of: dict[int, int] = {}  # deeper row -> its unit
        for i, r in enumerate(self._rows):
            if r.parent is not None:
                root = r.parent
                while root.parent is not None:
                    root = root.parent
                self._unit_of[i] = self._index_of[id(root)]
                self._riders[self._unit_of[i]].append(i)
        self._attn_implementation = getattr(getattr(model, "config", None), "_attn_implementation", None)
        self._packs_riders = bool(self._riders) and self._packing_works(model)
        prepared = datasets.Dataset.from_dict(
            {"input_ids": [self._rows[i].input_ids for i in self._units], "row_index": self._units}
        )
        self._metrics: dict[str, list[float]] = defaultdict(list)
        super().__init__(
            model=model, args=args, data_collator=self._collate, train_dataset=prepared,
            processing_class=processing_class, callbacks=callbacks, optimizers=optimizers,
        )
        if args.disable_tqdm:  # quiet means quiet: no per-step dict printed either (figures stay in log_history)
            from transformers.trainer_callback import PrinterCallback

            self.remove_callback(PrinterCallback)

    # ------------------------------------------------------------------------------------ data
    def _row_settings(self, row: dict[str, Any], args: ElarablationConfig, vocab_size: int) -> dict[str, Any]:
        top_k = int(_pick(row.get("top_k"), args.top_k))
        if row.get("relative_thresholds"):  # the original's defaults: 1/top_k and 0.75 of it
            max_t = float(_pick(row.get("max_threshold"), 1.0 / top_k))
            min_t = float(_pick(row.get("min_threshold"), 0.75 * max_t))
        else:
            max_t = float(_pick(row.get("max_threshold"), args.max_threshold))
            min_t = float(_pick(row.get("min_threshold"), args.min_threshold))
        validate_hyperparameters(top_k, max_t, min_t, row.get("source") or "context", vocab_size=vocab_size)
        return dict(top_k=top_k, max_threshold=max_t, min_threshold=min_t,
                    temperature=float(_pick(row.get("temperature"), args.temperature)),
                    min_path_prob=float(_pick(row.get("min_path_prob"), args.min_path_prob)))

    def _prepare_rows(self, model, tokenizer, dataset: datasets.Dataset, args: ElarablationConfig) -> list[PreparedRow]:
        vocab_size = model.get_output_embeddings().weight.shape[0] if model.get_output_embeddings() is not None else len(tokenizer)
        if args.top_k > vocab_size:
            raise HfSteerError(f"top_k={args.top_k} is out of range: use a value in 1..{vocab_size}")
        # the word list is checked before the minutes of reading below (a list with no usable word is an error)
        self._listed, self._listed_phrases = (listed_tokens(self._vocabulary_texts(vocab_size), args.hold_let_go_words)
                                              if args.context_weight > 0 and args.hold_let_go_words else ({}, {}))
        rows, sources = [], []
        for row in dataset:
            settings = self._row_settings(row, args, vocab_size)
            ids = tokenize_context(row, tokenizer)
            expected_id = None
            if row.get("kind") == "keep":
                expected_id = continuation_ids(tokenizer, render_context(row, tokenizer), row["expected"])[0]
            rows.append(PreparedRow(input_ids=ids, rules=TokenRules.from_row(row, tokenizer), depth=1,
                                    context_id=row["id"], kind=row.get("kind") or "slop", expected_id=expected_id,
                                    group=row.get("group") or "", draws=row.get("draws"),
                                    held_from=max(prompt_length(row, tokenizer, ids) - 1, 0), **settings))
            sources.append(row)
        self._assign_vocab_masks(rows, vocab_size, args)
        children: list[PreparedRow] = []
        # one switch to the reference for every read below (_expand and _read_hold_beginnings run inside it):
        # switching per batch (eval/train over the whole module tree and the adapter off/on) was 246 switches,
        # 7.8 s of auto's preparation (bundled model, 2 cores)
        with self._reference_mode(model):
            if args.tree_depth == 2:
                children += self._expand(model, tokenizer, rows, sources, args, "good", levels=1)
            # A candidate that only begins a bad word is decided where the word is: one token deeper (and, with
            # first_token_push, also pushed at the slot by how often the base goes on to a bad word: _bad_shares).
            children += self._expand(model, tokenizer, rows, sources, args, "pending", levels=MAX_WORD_DEPTH)
        self._bad_shares(rows + children)
        if not args.trains_deeper_rows:
            # the beginnings are pushed at their slots by those shares; the deeper rows were only read for them
            # (off since 2026-12-07 evening: trained, packed after their slot, they take Elara 0.60x -> 0.17x)
            children = [child for child in children if child.parent is None]  # tree_depth=2 rows stay
        rows = rows + children
        self._assign_hold_masks(rows, vocab_size, args)
        self._assign_phrase_let_go(rows, vocab_size, args)
        for row in rows:  # a phrase in the prompt ("Write a story about the crew ...") is not held: nothing to let go
            if row.hold_let_go is not None:
                keep = row.hold_let_go[0] >= row.held_from
                row.hold_let_go = tuple(t[keep] for t in row.hold_let_go) if keep.any() else None
        return rows

    _CLASS_CODES = {"neutral": 0, "good": 1, "bad": 2}

    def _vocab_tables(self, rows: list[PreparedRow], vocab_size: int, key_of, build) -> tuple[list, list]:
        """``(tables, index of each row's table)``: one whole-vocabulary tensor per distinct ``key_of(row)``
        (``None``: the row gets none), built once by ``build(row, texts)`` from the decoded vocabulary."""
        tables: list[torch.Tensor] = []
        keys: dict = {}
        for row in rows:
            key = key_of(row)
            if key is not None and key not in keys:
                keys[key] = len(tables)
                tables.append(build(row, self._vocabulary_texts(vocab_size)))
        return tables, [None if key_of(row) is None else keys[key_of(row)] for row in rows]

    def _assign_vocab_masks(self, rows: list[PreparedRow], vocab_size: int, args: ElarablationConfig) -> None:
        """Whole-vocabulary classes (0 neutral, 1 good, 2 bad, 3 other) of the (depth-1) rows whose rules are
        regexes, one tensor per distinct rule set (see ``loss.elarablation_loss``'s ``vocab_bad`` and
        ``vocab_neutral``); word rules are decided in context, not per token."""
        self._vocab_masks: list[torch.Tensor] = []
        if args.loss_type != "margin":
            return

        def key_of(row):
            if row.kind != "slop" or not (row.rules.bad or row.rules.good) or row.rules.bad_words:
                return None
            return (tuple(p.pattern for p in row.rules.bad), tuple(p.pattern for p in row.rules.good),
                    row.rules.unmatched, row.rules.forced_ids, row.rules.excluded_ids)

        def build(row, texts):
            return torch.tensor([self._CLASS_CODES.get(row.rules.classify(t, i), 3) for i, t in enumerate(texts)],
                                dtype=torch.uint8)

        self._vocab_masks, index = self._vocab_tables(rows, vocab_size, key_of, build)
        for row, i in zip(rows, index):
            if i is not None:
                row.vocab_class = i

    def _assign_hold_masks(self, rows: list[PreparedRow], vocab_size: int, args: ElarablationConfig) -> None:
        """What the context hold lets go, one bool mask per distinct list of bad words: every token that is a
        whole bad word on its own (" ancient", " shadows"). The hold's target is the reference with those tokens
        at ``bad_ratio`` of their probability: auto's contexts are the model's stories, which hold other
        patterns before the slot (" tasked" ... " enigmatic" ... "named"), and a plain hold held those up too.
        A token that only begins a bad word (" El" of Elara) is not in it: elsewhere it begins other words (it is let
        go by its share where it is likely, ``_read_hold_beginnings``).
        Regex rules (hand-written slot files) are about their slot, not the text before it: not used here.

        With ``hold_let_go_words``, the one-token words of that list are let go too, but for the listed words the
        context has already written (a character named earlier is referred to again: held)."""
        self._hold_masks: list[torch.Tensor] = []
        if args.context_weight <= 0:
            return
        listed = self._listed
        # the listed words each row's text has written (decoded once a row: key_of and build both read it); a
        # possessive writes its word ("Aria's" is Aria), as pattern_regex reads a bad word's
        written = {id(row): frozenset(w.split("'")[0] for w in words(self._decoded(row.input_ids)[0])) & listed.keys()
                   for row in rows if listed and row.kind == "slop" and row.rules.bad_words}

        def key_of(row):
            if row.kind != "slop" or not row.rules.bad_words:
                return None
            return row.rules.bad_words, tuple(sorted(written.get(id(row), ())))

        def build(row, texts):
            mask = torch.stack([self._whole_word_mask(w, texts) for w in row.rules.bad_words]).any(dim=0)
            if listed:
                kept = written[id(row)]
                mask[[t for word, tokens in listed.items() if word not in kept for t in tokens]] = True
            return mask

        self._hold_masks, index = self._vocab_tables(rows, vocab_size, key_of, build)
        for row, i in zip(rows, index):
            row.hold_class = i

    def _whole_word_mask(self, word: str, texts: list[str]) -> torch.Tensor:
        """The vocabulary's tokens that are ``word`` whole (" sun", "Sun", ...), as a bool mask (cached: files share
        words across rows with different lists)."""
        if word not in self._word_masks:
            if self._word_starts is None:
                # token ids by the first two letters of their word, folded: a token is a word whole only if its word
                # starts with the word's own (word_match over the whole vocabulary for each of auto's ~80 words was
                # 3.9M calls, ~4 s of preparation on the bundled model)
                self._word_starts = defaultdict(list)
                for i, t in enumerate(texts):
                    self._word_starts[word_start(t).casefold()[:2]].append(i)
            target = word.casefold()[:2]
            candidates = [i for key, ids in self._word_starts.items() if key.startswith(target) for i in ids]
            mask = torch.zeros(len(texts), dtype=torch.bool)
            mask[[i for i in candidates if word_match(texts[i], word) == "bad"]] = True
            self._word_masks[word] = mask
        return self._word_masks[word]

    def _assign_phrase_let_go(self, rows: list[PreparedRow], vocab_size: int, args: ElarablationConfig) -> None:
        """The context hold also lets go a bad phrase's last word where the text it holds ends with the phrase's
        other words (" sun" after "the" for "the sun"), to ``bad_ratio`` of the reference, as ``hold_let_go`` entries.

        A phrase's word is bad only inside its phrase, so it is not one of the rows' bad words, and the hold held it
        at every other context's "the" while the phrase's own slot pushed it: on a user's 30 prompts (bundled model)
        the phrases' words fell to 0.81-0.96x of the base at their own training slots ("the sun", "that seemed to",
        "casting a warm", "the edge of"), the words trained alone to 0.09-0.5x. A row's own bad words are let go
        already (``_assign_hold_masks``) and its beginnings by their share: not twice.

        The phrases of ``hold_let_go_words`` (``antislop``: the slop index's bigrams and trigrams) are let go the same
        way in every context with bad words, but where the context has already written the whole phrase or, with a
        capital, its last word (a place or a name it refers back to), and for the list's own words (let go already)."""
        if args.context_weight <= 0 or not (self._listed_phrases or any(r.rules.bad_phrases for r in rows)):
            return
        texts = self._vocabulary_texts(vocab_size)
        for row in rows:
            own_phrases = row.rules.bad_phrases if row.kind == "slop" else ()
            listed = bool(self._listed_phrases) and row.kind == "slop" and bool(row.rules.bad_words)
            if not (own_phrases or listed) or len(row.input_ids) < 2:
                continue
            text, token_ends = self._decoded(row.input_ids[:-1])
            ends = {end: p for p, end in enumerate(token_ends)}  # position p predicts token p + 1
            taken = set()
            if row.hold_let_go is not None:
                taken = set(zip(row.hold_let_go[0].tolist(), row.hold_let_go[1].tolist()))
            found, own = [], {w.lower() for w in row.rules.bad_words}
            for phrase in own_phrases:
                *before, word = phrase.split()
                if word.lower() in own:
                    continue
                tokens = self._whole_word_mask(word, texts).nonzero()[:, 0].tolist()
                for match in pattern_regex(" ".join(before)).finditer(text):
                    p = ends.get(match.end())
                    if p is not None:
                        found += [(p, t) for t in tokens]
            if listed:
                found += self._listed_phrase_let_go(text, ends, own)
            found = list(dict.fromkeys(f for f in found if f not in taken))
            if found:
                positions, tokens = torch.tensor(found).T
                shares = torch.ones(len(found))
                if row.hold_let_go is not None:
                    positions, tokens, shares = (torch.cat([old, new]) for old, new in
                                                 zip(row.hold_let_go, (positions, tokens, shares)))
                row.hold_let_go = (positions, tokens, shares)

    def _listed_phrase_let_go(self, text: str, ends: dict[int, int], own: set[str]) -> list[tuple[int, int]]:
        """``(position, token)`` of every listed phrase's last word after its other words in ``text`` (see
        ``_assign_phrase_let_go``); ``ends`` maps where a token ends in ``text`` to its position."""
        spans = word_spans(text)
        longest = max(map(len, self._listed_phrases))
        found = []
        for i, (_, _, end) in enumerate(spans):
            p = ends.get(end)
            if p is None:
                continue
            written = text[:end]
            for n in range(1, min(longest, i + 1) + 1):
                run = spans[i - n + 1: i + 1]
                if any(text[a[2]:b[1]].strip() for a, b in zip(run, run[1:])):  # words apart: not the phrase
                    break
                for last, tokens in self._listed_phrases.get(tuple(w for w, _, _ in run), {}).items():
                    if last in own:
                        continue
                    if (pattern_regex(" ".join([w for w, _, _ in run] + [last])).search(written)
                            or re.search(r"(?<![A-Za-z'])" + re.escape(last.capitalize()) + r"(?![A-Za-z])", written)):
                        continue
                    found += [(p, t) for t in tokens]
        return found

    @staticmethod
    def _bad_shares(rows: list[PreparedRow]) -> None:
        """Each beginning's ``bad_share`` at its parent, deepest rows first: the base's probability of going on
        to a bad word from it, through deeper beginnings too (" cre" -> "ature" is bad; " cre" -> "at" -> "ures"
        counts as p("at") x its own share). A row that was never read (the last level) gives none."""
        for row in sorted(rows, key=lambda r: -r.depth):
            if row.parent is not None and row.own_bad is not None:
                share = row.own_bad + sum(p * row.bad_share.get(t, 0.0) for t, p in row.pending_probs.items())
                row.parent.bad_share[row.input_ids[-1]] = min(share, 1.0)

    @torch.no_grad()
    def _expand(self, model, tokenizer, parents: list[PreparedRow], sources: list[dict], args, which: str,
                levels: int) -> list[PreparedRow]:
        """Rows one token deeper, ``levels`` levels down: for each row, its ``which`` candidates ("good": the tree
        of ``tree_depth=2``; "pending": beginnings of bad words), most likely first, up to ``tree_width``; a
        pending one only on a path at least ``min_path_prob`` likely (most deeper rows of auto's contexts were
        paths under 1%: half the training positions for a few % of the text). Level by level, as before. Called
        inside ``_reference_mode`` (the base model's own tree: min_path_prob reads its paths).

        A deeper row is its parent plus one token, so it is read with the parent's KV cache: one full forward
        per batch of contexts and one-token forwards below it. Re-reading every deeper row whole took 119 full
        forwards for auto's 231 contexts (148 s before the first step, bundled model, 2 cores; now ~45 s); the
        probabilities read are the same to float rounding. The contexts' own states are kept on the way
        (``_reference_forward``)."""
        # deeper rows are trained (not only read for their shares): keep their slot reference and bottom output
        keeps_children = which == "good" or args.trains_deeper_rows
        todo = [(r, src) for r, src in zip(parents, sources) if r.kind == "slop"
                and (which == "good" or r.rules.bad_words)]
        by_level: list[list[PreparedRow]] = [[] for _ in range(levels)]
        device = next(model.parameters()).device
        # before the first step: on auto's contexts the "pending" pass is most of a minute on 2 cores (bundled model).
        # Read as they come: shortest first (1.25 tokens read for each real one as they come) saved ~3 s, but under
        # bf16 other batch-mates round a read otherwise, moving paths across min_path_prob (674 rows against 672)
        # and with them the trained adapter; kept as it was, this preparation trains the same adapter as before.
        starts = range(0, len(todo), args.per_device_train_batch_size)
        for start in tqdm(starts, desc=f"reading the base model ({which})", unit="batch",
                          disable=args.disable_tqdm or not starts):
            batch = todo[start:start + args.per_device_train_batch_size]
            ids, mask, pos = (t.to(device) for t in left_pad([r.input_ids for r, _ in batch], tokenizer.pad_token_id))
            reads_hold = which == "pending" and self._lets_go_beginnings
            out = self._reference_forward(model, ids, mask, pos, [r for r, _ in batch], use_cache=True,
                                          need=reads_hold)
            if reads_hold:
                self._read_hold_beginnings(model, tokenizer, [r for r, _ in batch], ids, mask, pos, out)
            for level in range(levels):
                slot_logits = out.logits[:, -1].float().cpu()
                if level and keeps_children:  # the rows of this level are deeper rows: this is their slot's reference
                    for (child, _), row_logits in zip(batch, slot_logits):
                        child.ref_logits = row_logits
                grown = self._grow(batch, slot_logits, args, which)
                by_level[level] += [child for _, child, _ in grown]
                if not grown or level == levels - 1:
                    break
                index = torch.tensor([b for b, _, _ in grown], device=device)
                cache = out.cache
                cache.reorder_cache(index)
                mask = torch.cat([mask[index], mask.new_ones((len(grown), 1))], dim=1)
                pos = pos[index, -1:] + 1
                step = torch.tensor([[child.input_ids[-1]] for _, child, _ in grown], device=device)
                out = model(input_ids=step, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True,
                            output_hidden_states=keeps_children and self._keeps_bottom)
                if keeps_children and self._keeps_bottom:  # a deeper row's bottom output: its parent's and one token
                    for k, (b, child, _) in enumerate(grown):
                        kept = batch[b][0].ref_bottom  # the parent's
                        size = kept.numel() * kept.element_size() if kept is not None else 0
                        if kept is not None and self._hidden_bytes + size <= REFERENCE_HIDDEN_BYTES:
                            child.ref_bottom = torch.cat([kept, out.hidden_states[self._first][k, -1:].detach().cpu()])
                            self._hidden_bytes += size
                batch = [(child, source) for _, child, source in grown]
        return [child for level in by_level for child in level]

    @torch.no_grad()
    def _read_hold_beginnings(self, model, tokenizer, rows: list[PreparedRow], ids: torch.Tensor, mask: torch.Tensor,
                              pos: torch.Tensor, out) -> None:
        """``hold_let_go`` of each row (``let_go_beginnings``; called inside ``_reference_mode``): at every held
        position where the reference gives the first token of one of the row's bad words as the tokenizer writes
        it (" cr" of " crumbling", " El" of " Elara") at least ``HOLD_BEGINNING_MIN_PROB``, and that token only begins the word, the reference's share of
        going on from it to a bad word, up to two tokens deeper (" Rav" -> "ens" -> "wood"), on paths at least that
        likely (as ``_bad_shares`` reads a slot's). Read once from the contexts' reference forward (``out``, with its
        KV cache and last hidden states): each beginning is one token past its position, so it is read with the
        context's cache and the positions after it masked out.

        Only the written first tokens: every token that merely spells a word's first letters (" a" of "ancient",
        itself one token) was ~20,000 reads on auto's contexts, 94 s of preparation for shares of about 0."""
        width = ids.shape[1]
        if self._keeps_hidden:  # each row's held positions projected below
            head, hidden = model.get_output_embeddings(), out.hidden_states[-1]
        else:  # soft-capped logits: the whole reference forward
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False).logits
        words_of = [row.rules.bad_words for row in rows]
        starts: list[tuple[int, int, int, float]] = []  # (row in batch, column, beginning token, its probability)
        for b, row in enumerate(rows):
            n = len(row.input_ids)
            if not words_of[b] or n < 2:
                continue
            firsts = self._first_tokens(tokenizer, words_of[b])
            if not firsts:
                continue
            held = slice(width - n + row.held_from, width - 1)  # the positions the hold reads (not the prompt's)
            if self._keeps_hidden:  # projected where a beginning may reach the floor (may_reach: 0 elsewhere)
                states = hidden[b, held]
                near = may_reach(head, states, firsts, row.input_ids[row.held_from + 1:], HOLD_BEGINNING_MIN_PROB)
                probs = states.new_zeros((len(states), len(firsts)), dtype=torch.float32)
                if near.any():
                    probs[near] = torch.softmax(head(states[near]).float(), dim=-1)[:, firsts]
            else:
                probs = torch.softmax(logits[b, held].float(), dim=-1)[:, firsts]
            written = self._words_written(row.input_ids, words_of[b])
            for q, k in (probs >= HOLD_BEGINNING_MIN_PROB).nonzero().tolist():
                p, t = q + row.held_from, firsts[k]  # q counts from the first held position
                # a word the context already wrote is a back-reference there ("Elara ... Elara"): held
                if not any(written.get(w, n) <= p and word_match(self._texts(t), w) == "pending" for w in words_of[b]):
                    starts.append((b, width - n + p, t, float(probs[q, k])))
        shares: dict[tuple[int, int, int], float] = {}
        # A sliding window counts back from a token's place in the cache, not from its position: a beginning put at
        # the end of the context's cache would see other tokens than at its own place. Such batches are read whole.
        window = getattr(getattr(model, "config", None), "sliding_window", None)
        whole = bool(window) and width > window
        for lo in range(0, len(starts), 256):
            part = starts[lo:lo + 256]
            if whole:
                cache = None
                step, step_mask, step_pos = (t.to(ids.device) for t in left_pad(
                    [rows[b].input_ids[:c - width + len(rows[b].input_ids) + 1] + [t] for b, c, t, _ in part],
                    self._pad_id))
            else:
                index = torch.tensor([b for b, _, _, _ in part], device=ids.device)
                cols = torch.tensor([c for _, c, _, _ in part], device=ids.device)
                cache = copy.deepcopy(out.cache)
                cache.reorder_cache(index)
                step_mask = mask[index] * (torch.arange(width, device=ids.device)[None] <= cols[:, None])
                step_mask = torch.cat([step_mask, step_mask.new_ones((len(part), 1))], dim=1)
                step_pos = pos[index, cols][:, None] + 1
                step = torch.tensor([[t] for _, _, t, _ in part], device=ids.device)
            # one node per path read: (row in batch, the word so far, path probability); its own bad mass and
            # (child node, probability) of its beginnings, filled level by level
            nodes = [(b, self._texts(t), v) for b, _, t, v in part]
            level_nodes = list(range(len(nodes)))
            own: dict[int, float] = {}
            kids: dict[int, list[tuple[int, float]]] = defaultdict(list)
            for level in range(MAX_WORD_DEPTH - 1):
                result = forward_last(model, input_ids=step, attention_mask=step_mask, position_ids=step_pos,
                                      cache=cache, use_cache=True)
                cache = result.cache
                probs = torch.softmax(result.logits[:, -1].float(), dim=-1)
                values, tokens = probs.topk(min(max(r.top_k for r in rows), probs.shape[-1]), dim=-1)
                grown = []
                for k, (node, vs, ts) in enumerate(zip(level_nodes, values.tolist(), tokens.tolist())):
                    b, prefix, path = nodes[node]
                    own[node] = 0.0
                    for v, t in zip(vs[:rows[b].top_k], ts[:rows[b].top_k]):  # the row's own top-k, as _grow reads
                        kind = self._word_kind(words_of[b], prefix, t)
                        if kind == "bad":
                            own[node] += v
                        elif (kind == "pending" and level < MAX_WORD_DEPTH - 2
                              and path * v >= HOLD_BEGINNING_MIN_PROB):
                            nodes.append((b, prefix + self._texts(t), path * v))
                            kids[node].append((len(nodes) - 1, v))
                            grown.append((k, len(nodes) - 1, t))
                if not grown:
                    break
                index = torch.tensor([k for k, _, _ in grown], device=ids.device)
                cache.reorder_cache(index)
                step_mask = torch.cat([step_mask[index], step_mask.new_ones((len(grown), 1))], dim=1)
                step_pos = step_pos[index, -1:] + 1
                step = torch.tensor([[t] for _, _, t in grown], device=ids.device)
                level_nodes = [node for _, node, _ in grown]

            share = [0.0] * len(nodes)
            for node in reversed(range(len(nodes))):  # a node's children come after it
                share[node] = own.get(node, 0.0) + sum(v * share[kid] for kid, v in kids[node])
            for k, (b, c, t, _) in enumerate(part):
                shares[(b, c, t)] = min(share[k], 1.0)
        for b, row in enumerate(rows):
            found = [(c - (width - len(row.input_ids)), t, s) for (bb, c, t), s in shares.items() if bb == b and s > 0]
            if found:
                row.hold_let_go = (torch.tensor([p for p, _, _ in found]), torch.tensor([t for _, t, _ in found]),
                                   torch.tensor([s for _, _, s in found]))

    def _first_tokens(self, tokenizer, words: tuple[str, ...]) -> list[int]:
        """The first tokens of ``words`` as the tokenizer writes them (lower and capitalised, after a space or not)
        that only begin a word of ``words``, in a fixed order (cached)."""
        if words not in self._firsts:
            found = set()
            for word in words:
                for form in (word, word.capitalize()):
                    for text in (" " + form, form):
                        first = tokenizer(text, add_special_tokens=False)["input_ids"][:1]
                        if first and self._word_kind(words, "", first[0]) == "pending":
                            found.add(first[0])
            self._firsts[words] = sorted(found)
        return self._firsts[words]

    def _decoded(self, ids: list[int]) -> tuple[str, list[int]]:
        """The reader text of ``ids`` and where each token ends in it."""
        text, ends = "", []
        for token in ids:
            text += self._texts(token)
            ends.append(len(text))
        return text, ends

    def _vocabulary_texts(self, vocab_size: int) -> list[str]:
        """Every token's reader text, decoded once (the hold's masks and the phrases read it; 262k tokens on Gemma)."""
        if len(self._vocab_texts) != vocab_size:
            self._vocab_texts = [self._texts(i) for i in range(vocab_size)]
        return self._vocab_texts

    def _words_written(self, ids: list[int], words: tuple[str, ...]) -> dict[str, int]:
        """The first position (token index) by which each of ``words`` the text of ``ids`` contains is written whole."""
        text, ends = self._decoded(ids)
        first = {}
        for word in words:
            found = pattern_regex(word).search(text)
            if found:
                first[word] = next(k for k, end in enumerate(ends) if end >= found.end())
        return first

    def _word_kind(self, words: tuple[str, ...], prefix: str, token: int) -> str | None:
        """``word_match`` of ``prefix`` + the token against any of ``words``: "bad", "pending" or ``None`` (cached)."""
        key = (words, prefix, token)
        if key not in self._kinds:
            kinds = {word_match(prefix + self._texts(token), w) for w in words}
            self._kinds[key] = "bad" if "bad" in kinds else ("pending" if "pending" in kinds else None)
        return self._kinds[key]

    def _grow(self, batch: list[tuple[PreparedRow, dict]], logits: torch.Tensor, args,
              which: str) -> list[tuple[int, PreparedRow, dict]]:
        """``(index in batch, child, source)`` of each row's picked candidates (see ``_expand``); a pending row also
        records what ``_bad_shares`` needs."""
        grown = []
        for b, ((row, source), row_logits) in enumerate(zip(batch, logits)):
            probs = torch.softmax(row_logits / row.temperature, dim=-1)
            top = probs.topk(row.top_k).indices.tolist()
            kinds = {t: row.rules.classify(self._texts(t), t) for t in top}
            if which == "pending":  # what first_token_push needs (_bad_shares)
                row.own_bad = sum(float(probs[t]) for t in top if kinds[t] == "bad")
                row.pending_probs = {t: float(probs[t]) for t in top if kinds[t] == "pending"}
            picked = [t for t in top if kinds[t] == which
                      and (which != "pending" or row.path_prob * float(probs[t]) >= row.min_path_prob)]
            for token in picked[: args.tree_width]:
                child = PreparedRow(
                    input_ids=row.input_ids + [token], rules=row.rules.extended(self._texts(token)),
                    top_k=row.top_k, temperature=row.temperature, depth=row.depth + 1,
                    max_threshold=float(_pick(source.get("next_max_threshold"), args.next_max_threshold)),
                    min_threshold=float(_pick(source.get("next_min_threshold"), args.next_min_threshold)),
                    context_id=f"{row.context_id}+{self._texts(token)!r}",
                    min_path_prob=row.min_path_prob, path_prob=row.path_prob * float(probs[token]),
                    held_from=row.held_from,
                    parent=row if which == "pending" else None,
                )
                grown.append((b, child, source))
        return grown

    def _collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        index = [f["row_index"] for f in features]
        riders = [i for unit in index for i in self._riders.get(unit, ())]  # its deeper rows ride along
        if not self._packs_riders:
            index, riders = index + riders, []
        ids, mask, positions = left_pad([self._rows[i].input_ids for i in index], self._pad_id)
        batch = {"input_ids": ids, "attention_mask": mask, "position_ids": positions,
                 "row_index": torch.tensor(index, dtype=torch.long)}
        if riders:
            batch["riders"] = torch.tensor(riders, dtype=torch.long)
        return batch

    @torch.no_grad()
    def _packing_works(self, model) -> bool:
        """Whether the deeper rows can be packed after their context's slot (``_packed``): a model that takes a 4D
        mask as it is (sdpa, eager), texts within its sliding window (a window counts back from a column, not from
        a position), every deeper row's bottom state kept; then checked once on the first context with deeper rows
        against reading them whole. Otherwise they are rows of the batch."""
        window = getattr(getattr(model, "config", None), "sliding_window", None)
        longest = max(len(r.input_ids) for r in self._rows)
        if self._attn_implementation not in ("sdpa", "eager") or (window and longest > window):
            return False
        if self._keeps_bottom and any(self._rows[i].ref_bottom is None for rs in self._riders.values() for i in rs):
            return False
        unit, riders = next(iter(self._riders.items()))
        device = next(model.parameters()).device
        ids, mask, pos = (t.to(device) for t in left_pad([self._rows[unit].input_ids], self._pad_id))
        inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": pos,
                  "row_index": torch.tensor([unit], device=device), "riders": torch.tensor(riders, device=device)}
        with self._reference_mode(model):
            try:
                packed = self._slot_forward(model, inputs, None, self._head_alone)[1]
            except Exception:  # an architecture that does not take a 4D mask
                return False
            ids, mask, pos = (t.to(device) for t in left_pad([self._rows[i].input_ids for i in [unit] + riders],
                                                             self._pad_id))
            whole = last_position_logits(model, ids, mask, pos)
        return packed.shape == whole.shape and torch.allclose(packed.float(), whole.float(), atol=1e-3, rtol=1e-3)

    def _packed(self, inputs, embeds: torch.Tensor | None) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The forward's inputs with each unit's deeper rows packed after its slot: ``(kwargs, rider_rows,
        rider_cols)``. A deeper row is its context and one or two tokens, so its last token is put in a column of its
        own after the context, seeing the context and its own beginnings only (a 4D mask), at its position: one
        token each instead of a whole row (``_packs_riders`` checks the logits are the same). ``embeds``: the
        kept bottom states of the units (the frozen layers skipped), else the token ids are given."""
        ids, mask, pos = inputs["input_ids"], inputs["attention_mask"], inputs["position_ids"]
        width, device = ids.shape[1], ids.device
        batch_of = {int(i): b for b, i in enumerate(inputs["row_index"])}  # unit -> its place in the batch
        columns: dict[int, int] = {}  # rider row -> its column
        taken = [0] * len(ids)
        rider_rows, rider_cols = [], []
        for i in inputs["riders"].tolist():
            b = batch_of[self._unit_of[i]]
            columns[i] = width + taken[b]
            taken[b] += 1
            rider_rows.append((b, i))
        extra = max(taken)
        total = width + extra
        allowed = torch.zeros((len(ids), total, total), dtype=torch.bool, device=device)
        allowed[:, :width, :width] = torch.ones(width, width, dtype=torch.bool, device=device).tril()[None] \
            & mask.bool()[:, None, :]
        allowed[:, torch.arange(total), torch.arange(total)] = True  # padding sees itself (a row that sees nothing gives NaN)
        new_ids = ids.new_full((len(ids), extra), self._pad_id)
        new_pos = pos.new_zeros((len(ids), extra))
        new_embeds = embeds.new_zeros((len(ids), extra, embeds.shape[-1])) if embeds is not None else None
        for b, i in rider_rows:
            row, c = self._rows[i], columns[i]
            allowed[b, c, :width] = mask[b].bool()
            ancestor = row.parent
            while ancestor.parent is not None:  # its own beginnings, packed beside it
                allowed[b, c, columns[self._index_of[id(ancestor)]]] = True
                ancestor = ancestor.parent
            depth = len(row.input_ids) - len(self._rows[int(inputs["row_index"][b])].input_ids)
            new_ids[b, c - width] = row.input_ids[-1]
            new_pos[b, c - width] = pos[b, -1] + depth
            if new_embeds is not None:
                new_embeds[b, c - width] = row.ref_bottom[-1].to(new_embeds)
            rider_cols.append(c)
        if self._attn_implementation == "sdpa":
            mask4d = allowed[:, None]
        else:  # eager adds the mask to the scores
            mask4d = torch.zeros(allowed.shape, device=device).masked_fill(~allowed, torch.finfo(torch.float32).min)
            mask4d = mask4d[:, None]
        kwargs = {"attention_mask": mask4d, "position_ids": torch.cat([pos, new_pos], dim=1), "use_cache": False}
        if embeds is not None:
            kwargs["inputs_embeds"] = torch.cat([embeds, new_embeds], dim=1)
        else:
            kwargs["input_ids"] = torch.cat([ids, new_ids], dim=1)
        return kwargs, torch.tensor([b for b, _ in rider_rows], device=device), torch.tensor(rider_cols, device=device)

    def _get_train_sampler(self, train_dataset=None):
        """Groups of alternatives (original files' ``{a|b}`` with ``repeat``) are drawn from; the rest shuffled."""
        if any(r.group for r in self._rows):
            return DrawSampler([self._rows[i] for i in self._units], seed=self.args.seed)
        return super()._get_train_sampler(train_dataset)

    # ------------------------------------------------------------------------------------ reference
    @torch.no_grad()
    def _fill_reference(self, model, indices, batch_size: int | None = None, desc: str | None = None) -> None:
        """Cache the frozen model's logits at the slot of the given rows (margin's tether, keep rows), ``batch_size``
        rows a forward (default: all at once), with a progress bar named ``desc``; the rows' states the context hold
        keeps come with them (``_reference_forward``). Before the first step it reads the keep rows: read as they
        came, one or two a step, they were 40 forwards and 14 s of auto's training (bundled model, 2 cores, under
        cProfile); 12 batches, 11 s, that way."""
        missing = [i for i in indices if i not in self._ref_cache]
        if not missing:
            return
        device = next(model.parameters()).device
        size = batch_size or len(missing)
        with self._reference_mode(model):
            for start in tqdm(range(0, len(missing), size), desc=desc, unit="batch", disable=desc is None):
                batch = missing[start:start + size]
                rows = [self._rows[i] for i in batch]
                ids, mask, pos = (t.to(device) for t in left_pad([r.input_ids for r in rows], self._pad_id))
                out = self._reference_forward(model, ids, mask, pos, rows)
                for i, row_logits in zip(batch, out.logits[:, -1].float().cpu()):
                    self._ref_cache[i] = row_logits

    def _remember_slot_refs(self, inputs, batch: list[int], slot_logits: torch.Tensor) -> None:
        """Keep the reference logits at the slot of batch rows ``batch`` (read by a reference forward run anyway)."""
        for b, row_ref in zip(batch, slot_logits.float().cpu()):
            self._ref_cache.setdefault(int(inputs["row_index"][b]), row_ref)

    @torch.no_grad()
    def _fill_anchor_reference(self, model) -> None:
        """Cache the frozen model's log-probs over the anchor text."""
        if self._anchor_ref is not None:
            return
        device = next(model.parameters()).device
        ids = torch.tensor([self._anchor_ids], device=device)
        with self._reference_mode(model):
            out = model(input_ids=ids, use_cache=False, output_hidden_states=self._skips_bottom)
        self._anchor_ref = torch.log_softmax(out.logits[0, :-1].float(), dim=-1).cpu()
        if self._skips_bottom:
            self._anchor_bottom = out.hidden_states[self._first].detach()

    def _anchor_kl(self, model) -> torch.Tensor:
        """KL(reference || model) per position, averaged, over the anchor text."""
        self._fill_anchor_reference(model)
        device = next(model.parameters()).device
        ids = torch.tensor([self._anchor_ids], device=device)
        # A second forward through a DDP wrapper before one backward confuses its reducer; the bare module
        # builds the same graph and DDP's parameter hooks still fire once per backward. FSDP needs its wrapper.
        if not getattr(self, "is_fsdp_enabled", False) and hasattr(self, "accelerator"):
            model = self.accelerator.unwrap_model(model)
        if self._anchor_bottom is not None:  # the frozen bottom's output is known: run the layers that train
            with bottom_skipped(self._layers, self._first):
                logits = model(inputs_embeds=self._anchor_bottom, use_cache=False).logits
        else:
            logits = model(input_ids=ids, use_cache=False).logits
        logprobs = torch.log_softmax(logits[0, :-1].float(), dim=-1)
        ref = self._anchor_ref.to(device)
        return kl_per_position(ref, logprobs).mean()

    @contextlib.contextmanager
    def _reference_mode(self, model):
        """The frozen reference: no grad, no dropout, the adapter off. Under DDP/FSDP ``model`` is a wrapper:
        the adapter is switched off on the PeftModel inside and the wrapper runs."""
        was_training = model.training
        model.eval()
        peft_model = self.accelerator.unwrap_model(model) if hasattr(self, "accelerator") else model
        try:
            with torch.no_grad(), peft_model.disable_adapter() if self._uses_adapter else contextlib.nullcontext():
                yield
        finally:
            model.train(was_training)

    def _reference_forward(self, model, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor,
                           rows: list[PreparedRow], use_cache: bool = False, need: bool = False):
        """The reference's forward over left-padded ``rows`` (inside ``_reference_mode``), logits at the last
        position only. Each row's last hidden states (the hold's reference) and the input of the first layer with
        anything to train (the frozen bottom's output) are kept while ``REFERENCE_HIDDEN_BYTES`` lasts; ``need``:
        return the hidden states even when every row has them."""
        kept = [("ref_hidden", -1)] if self._keeps_hidden else []
        kept += [("ref_bottom", self._first)] if self._keeps_bottom else []
        keep = need or any(getattr(r, attr) is None for r in rows for attr, _ in kept)
        out = forward_last(model, input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=use_cache,
                           output_hidden_states=keep)
        for attr, layer in kept if keep else []:
            for row, hidden, real in zip(rows, out.hidden_states[layer], mask.bool()):
                size = hidden.element_size() * hidden.shape[-1] * len(row.input_ids)
                if getattr(row, attr) is None and self._hidden_bytes + size <= REFERENCE_HIDDEN_BYTES:
                    setattr(row, attr, hidden[real].detach().cpu())
                    self._hidden_bytes += size
        return out

    def _kept_states(self, model, inputs, batch: list[int], attr: str) -> torch.Tensor:
        """The kept ``attr`` (``ref_hidden`` or ``ref_bottom``) of the batch's rows ``batch``, left-padded like the
        batch: ``(len(batch), T, H)``. Rows without it are read now (and kept, within the budget)."""
        ids, mask, pos = inputs["input_ids"], inputs["attention_mask"], inputs["position_ids"]
        rows = [self._rows[int(inputs["row_index"][b])] for b in batch]
        missing = [k for k, r in enumerate(rows) if getattr(r, attr) is None]
        fresh: dict[int, torch.Tensor] = {}
        if missing:
            at = [batch[k] for k in missing]
            with self._reference_mode(model):
                out = self._reference_forward(model, ids[at], mask[at], pos[at], [rows[k] for k in missing], need=True)
            self._remember_slot_refs(inputs, at, out.logits[:, -1])  # the tether's and keep rows' reference too
            layer = -1 if attr == "ref_hidden" else self._first
            # rows over the budget: read for this step only
            fresh = {k: h[m.bool()] for k, h, m in zip(missing, out.hidden_states[layer], mask[at])
                     if getattr(rows[k], attr) is None}
        states = [fresh.get(k, getattr(r, attr)) for k, r in enumerate(rows)]
        padded = states[0].new_zeros((len(rows), ids.shape[1], states[0].shape[-1]))
        for k, h in enumerate(states):
            padded[k, ids.shape[1] - len(h):] = h.to(padded.device)
        return padded.to(ids.device)

    def _head(self, model) -> nn.Module:
        """The output embedding (the vocabulary projection) of the model being trained, unwrapped."""
        return (self.accelerator.unwrap_model(model) if hasattr(self, "accelerator") else model).get_output_embeddings()

    def _slot_forward(self, model, inputs, embeds: torch.Tensor | None, head_alone: bool):
        """``(output, logits)``: the trained forward over the batch (from the kept bottom states ``embeds`` when
        given) and the next-token logits at each unit's slot, then at each packed deeper row's (``_packed``), in the
        order of ``row_index`` + ``riders``. ``head_alone``: the last hidden states come with the output and the
        vocabulary is projected where it is read only."""
        ids, mask, pos = inputs["input_ids"], inputs["attention_mask"], inputs["position_ids"]
        if "riders" in inputs:
            kwargs, rider_b, rider_c = self._packed(inputs, embeds)
        else:
            kwargs = {"attention_mask": mask, "position_ids": pos, "use_cache": False}
            kwargs["input_ids" if embeds is None else "inputs_embeds"] = ids if embeds is None else embeds
        kwargs["output_hidden_states"] = head_alone
        with bottom_skipped(self._layers, self._first) if embeds is not None else contextlib.nullcontext():
            out = forward_last(model, **kwargs) if head_alone else model(**kwargs)
        if "riders" not in inputs:
            return out, out.logits[:, -1]
        width = ids.shape[1]
        if head_alone:
            hidden = out.hidden_states[-1]
            return out, self._head(model)(torch.cat([hidden[:, width - 1], hidden[rider_b, rider_c]]))
        return out, torch.cat([out.logits[:, width - 1], out.logits[rider_b, rider_c]])

    def _context_hold(self, model, inputs, slop: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(last-position logits, KL)``: one forward at every position, and KL(reference || model) averaged
        over the positions of the slop rows before their slot (the reference is the same contexts with the
        adapter off). An ordinary-text anchor alone let 280 steps on the model's own stories move its
        prose everywhere (story bench: judge perplexity +49%); this holds the text the slot sits in. The
        tokens that are whole bad words are not held but let go to ``bad_ratio`` of the reference
        (``_assign_hold_masks``; a word's first token by its share, ``_read_hold_beginnings``): story bench, patterns
        -37% -> -51%, slop index -16% -> -20%, looping 19.6% -> 14.7%, judge perplexity +7.3% -> +13.5%. The
        reference's last position is the slot's reference, so it fills the tether's cache too.

        The reference is read from its kept last hidden states (``_kept_states``: the vocabulary projection alone,
        at the held positions only), not by a second forward each step, and the trained forward runs from the first
        adapted layer on the kept output of the frozen ones below it: on auto's 231 contexts (bundled model, 2
        cores) a step took 8.0 s, 6.7 s without the second forward, 5.8 s with the bottom skipped too; the same
        losses to 1e-4. Models whose logits are not the head alone (soft-capping) and FSDP (its head is sharded
        outside its forward) read the reference whole; DDP and FSDP run every layer.

        A chat context is held from its prompt's last token on (``held_from``): the template, system and user turns
        are given, never written, and were 45% of the held positions of auto's contexts (bundled model), each a
        vocabulary projection in the forward, another for the reference and one in the backward. Held there too,
        preparation and trainer took 173 s against 147 s now (auto's 348 positions, 88 steps, top six, bf16, one
        machine state; the keep rows read before the first step too, ``_fill_reference``); with hold_weight 57
        (about the old 100 on the story text alone) the held-out slots fell as far (0.31x) and the names referred
        back to kept 0.95x (0.97x).

        A unit's deeper rows are packed after its slot (``_slot_forward``): their logits follow the units' in
        ``last``; they are never held (``slop`` holds units only), and the held positions are the units' columns."""
        ids, mask, pos = inputs["input_ids"], inputs["attention_mask"], inputs["position_ids"]
        # positions that predict a real token of the context (the last one is the slot: the hinges' job) from the
        # prompt's last token on: the chat template's tokens are given, never written
        width = ids.shape[1]
        starts = torch.tensor([width - len(r.input_ids) + r.held_from for r in
                               (self._rows[int(inputs["row_index"][b])] for b in slop)], device=mask.device)
        held = (mask[slop, :-1] * mask[slop, 1:]).bool() & (torch.arange(width - 1, device=mask.device)[None]
                                                             >= starts[:, None])
        head_alone = self._keeps_hidden and not getattr(self, "is_fsdp_enabled", False)
        # With the head alone, the trained forward projects the last position only and the held positions are
        # projected from its last hidden states: half of a batch's positions are keep rows and padding, whose
        # vocabulary projection (and its backward) the hold never reads.
        # the frozen bottom layers' output is known: run the layers that train
        embeds = self._kept_states(model, inputs, list(range(len(ids))), "ref_bottom") if self._keeps_bottom else None
        out, last = self._slot_forward(model, inputs, embeds, head_alone)
        if head_alone:
            trained = self._head(model)(out.hidden_states[-1][:, :width][slop, :-1][held])
            hidden = self._kept_states(model, inputs, slop, "ref_hidden")
            with torch.no_grad():
                slot_ref = self._head(model)(hidden[:, -1]).float()
                target = self._head(model)(hidden[:, :-1][held]).float()
        else:
            with self._reference_mode(model):
                ref = model(input_ids=ids[slop], attention_mask=mask[slop], position_ids=pos[slop],
                            use_cache=False).logits
            slot_ref, target = ref[:, -1].float(), ref[:, :-1][held].float()
            trained = out.logits[:, :width][slop, :-1][held]
        self._remember_slot_refs(inputs, slop, slot_ref)
        classes = [self._rows[int(inputs["row_index"][b])].hold_class for b in slop]
        if any(c is not None for c in classes):  # bad words are let go to bad_ratio of the reference, not held
            none = torch.zeros(target.shape[-1], dtype=torch.bool)
            let_go = torch.stack([self._hold_masks[c][: target.shape[-1]] if c is not None else none for c in classes])
            row_of = held.nonzero()[:, 0]
            target = target + math.log(self.args.bad_ratio) * let_go.to(target.device)[row_of]
        if any(self._rows[int(inputs["row_index"][b])].hold_let_go is not None for b in slop):
            # beginnings of bad words, by their share (_read_hold_beginnings); a row's position p is column
            # p + (width - its length) of the left-padded batch
            flat = torch.full(held.shape, -1, dtype=torch.long, device=held.device)
            flat[held] = torch.arange(int(held.sum()), device=held.device)
            at, tokens, factors = [], [], []
            for k, b in enumerate(slop):
                row = self._rows[int(inputs["row_index"][b])]
                if row.hold_let_go is not None:
                    positions, ids_, shares = row.hold_let_go
                    at.append(flat[k, positions.to(held.device) + ids.shape[1] - len(row.input_ids)])
                    tokens.append(ids_)
                    factors.append(torch.log1p(-shares * (1 - self.args.bad_ratio)))
            target = target.index_put((torch.cat(at).to(target.device), torch.cat(tokens).to(target.device)),
                                      torch.cat(factors).to(target.device, target.dtype), accumulate=True)
        kl = kl_per_position(torch.log_softmax(target, dim=-1), torch.log_softmax(trained.float(), dim=-1))
        return last, kl.mean() if kl.numel() else last.new_zeros(())

    # ------------------------------------------------------------------------------------ loss
    def _candidates(self, topk_ids: torch.Tensor, rows: list[PreparedRow]) -> tuple[torch.Tensor, ...]:
        """``(ids, good, bad, valid, bad_share)`` of each row's candidates: its own top-k, then its forced-good
        tokens that are not in it (the original adds those with probability 0, so they are always rewarded).

        With ``first_token_push`` (margin), a beginning of a bad word whose deeper row was read is bad too, with
        its ``bad_share`` (0 elsewhere): the loss pushes it by that share only. Left to the deeper row alone, the
        beginning was held by the tether: where the bundled model's held-out stories first name an Elara (16
        slots), " El" kept its probability (0.273 -> 0.276), the whole name fell only to 0.61x (0.149 -> 0.091),
        and the stories used Elara about as often as before (1.60 -> 1.55 per 1,000 words; issue 16,
        docs/results/elarablation/probes/pattern_probe.py)."""
        lists = []
        for row, ids in zip(rows, topk_ids.tolist()):
            own = ids[: row.top_k]
            lists.append(own + sorted(t for t in row.rules.forced_ids if t not in own))
        width = max(len(c) for c in lists)
        cand = torch.zeros((len(rows), width), dtype=torch.long)
        good = torch.zeros((len(rows), width), dtype=torch.bool)
        bad = torch.zeros_like(good)
        valid = torch.zeros_like(good)
        share = torch.zeros((len(rows), width), dtype=torch.float32)
        push = self.args.pushes_beginnings
        for b, (row, ids) in enumerate(zip(rows, lists)):
            for k, token in enumerate(ids):
                kind = row.rules.classify(self._texts(token), token)
                cand[b, k] = token
                if kind == "pending" and push and row.bad_share.get(token, 0.0) > 0:
                    kind, share[b, k] = "bad", row.bad_share[token]
                valid[b, k] = kind not in ("excluded", "pending")
                good[b, k] = kind == "good"
                bad[b, k] = kind == "bad"
        return cand, good, bad, valid, share

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # the units (contexts and keep rows), then their deeper rows packed beside them (``_packed``)
        row_index = inputs["row_index"].tolist() + (inputs["riders"].tolist() if "riders" in inputs else [])
        rows = [self._rows[i] for i in row_index]
        slop = [b for b, r in enumerate(rows) if r.kind == "slop"]
        context_kl = None
        held = [b for b in slop if rows[b].parent is None]  # a deeper row's text is its parent's: held there
        if self.args.context_weight > 0 and held:
            logits, context_kl = self._context_hold(model, inputs, held)
        elif "riders" in inputs:  # (FSDP shards the head outside its forward: the logits come whole)
            logits = self._slot_forward(model, inputs, None,
                                        self._head_alone and not getattr(self, "is_fsdp_enabled", False))[1]
        else:
            logits = last_position_logits(model, inputs["input_ids"], inputs["attention_mask"], inputs["position_ids"])
        device = logits.device
        keep = [b for b, r in enumerate(rows) if r.kind == "keep"]
        mode = "train" if model.training else "eval"
        needs_ref = [row_index[b] for b in keep] + ([row_index[b] for b in slop] if self.args.loss_type == "margin" else [])
        if needs_ref:
            self._fill_reference(model, needs_ref)
        total = logits.new_zeros(())
        if slop:
            srows = [rows[b] for b in slop]
            slogits = logits[slop]
            temperature = torch.tensor([r.temperature for r in srows], device=device)
            with torch.no_grad():
                k = max(r.top_k for r in srows)
                topk_ids = (slogits.float() / temperature[:, None]).topk(k, dim=-1).indices
            cand, good, bad, valid, bad_share = (m.to(device) for m in self._candidates(topk_ids.cpu(), srows))
            ref_logits = vocab_bad = vocab_neutral = None
            if self.args.loss_type == "margin":
                ref_logits = torch.stack([self._ref_cache[row_index[b]] for b in slop]).to(device)
                if any(r.vocab_class is not None for r in srows):
                    other = torch.full((slogits.shape[-1],), 3, dtype=torch.uint8)
                    codes = torch.stack([self._vocab_masks[r.vocab_class][: slogits.shape[-1]]
                                         if r.vocab_class is not None else other for r in srows]).to(device)
                    vocab_bad, vocab_neutral = codes == 2, codes == 0
            out = elarablation_loss(
                slogits, cand, good, bad, valid,
                max_threshold=torch.tensor([r.max_threshold for r in srows], device=device),
                min_threshold=torch.tensor([r.min_threshold for r in srows], device=device),
                temperature=temperature, loss_type=self.args.loss_type, ref_logits=ref_logits,
                tether_weight=self.args.tether_weight, tether_centred=self.args.tether_centred, margin_cap=self.args.margin_cap, bad_ratio=self.args.bad_ratio,
                vocab_bad=vocab_bad, vocab_neutral=vocab_neutral, neutral_weight=self.args.neutral_weight,
                within_class=self.args.within_class, bad_share=bad_share,
                # a deeper row moves its word's probability by the share of the slot that reaches it
                row_weight=torch.tensor([r.path_prob if r.parent is not None else 1.0 for r in srows], device=device),
            )
            total = total + out.loss * len(slop)
            for name in ("top1_prob", "topk_entropy", "bad_mass", "n_punished", "n_rewarded"):
                self._metrics[f"{mode}/{name}"].append(getattr(out, name).float().mean().item())
        if keep:
            krows = [rows[b] for b in keep]
            ref = torch.stack([self._ref_cache[row_index[b]] for b in keep]).to(device)
            expected = torch.tensor([r.expected_id for r in krows], device=device)
            per_row, p_expected = keep_loss(logits[keep], ref, expected,
                                            torch.tensor([r.temperature for r in krows], device=device))
            total = total + self.args.keep_weight * per_row.sum()
            self._metrics[f"{mode}/keep_loss"].append(per_row.detach().mean().item())
            self._metrics[f"{mode}/keep_p"].append(p_expected.mean().item())
        loss = total / sum(r.parent is None for r in rows)  # per context: its deeper rows add to its push
        if context_kl is not None:
            loss = loss + self.args.context_weight * context_kl
            self._metrics[f"{mode}/context_kl"].append(context_kl.detach().item())
        if self._anchor_ids and self.args.anchor_weight > 0:
            anchor_kl = self._anchor_kl(model)
            loss = loss + self.args.anchor_weight * anchor_kl
            self._metrics[f"{mode}/anchor_kl"].append(anchor_kl.detach().item())
        if loss.detach().abs() <= ZERO_LOSS:
            # Every term is zero: the model is the reference and nothing is pushed. What gradient is left is rounding
            # (the KL's reference probabilities sum to 1 only to the last bit), and Adam scales any gradient up to full
            # steps: on a file with nothing to train (he_asked_2.yaml on Gemma-3-270M, 0 punished, 0 rewarded) a
            # gradient of norm 0.005 moved the slot's "." from 0.30 to 0.11 in 8 steps. The original trains nothing.
            loss = loss * 0.0
        return (loss, {"logits": logits}) if return_outputs else loss

    @staticmethod
    def _bf16_on_cpu(args: ElarablationConfig, model) -> bool:
        """``bf16`` asked for and the model on the CPU: the trainer then runs its own bf16 autocast (accelerate's wraps
        the model's forward only; the hold's vocabulary projections, about a third of a step, run outside it)."""
        return bool(args.bf16) and next(model.parameters()).device.type == "cpu"

    @classmethod
    @contextlib.contextmanager
    def _cpu_reads(cls, args: ElarablationConfig, model) -> Iterator[None]:
        """With ``_bf16_on_cpu``: bf16 autocast, and the frozen linear weights stored in bf16 meanwhile
        (``frozen_linears_in``): the preparation's many small reads (one-token forwards, a context's positions through
        the output layer) cast the frozen weights again on each call under autocast (bundled model, 2 cores: 23 ms a
        call for the output layer alone). Otherwise nothing."""
        if not cls._bf16_on_cpu(args, model):
            yield
            return
        with torch.autocast("cpu", dtype=torch.bfloat16), frozen_linears_in(model, torch.bfloat16):
            yield

    def autocast_smart_context_manager(self, cache_enabled: bool | None = True) -> contextlib.AbstractContextManager:
        """The whole loss under bf16 autocast on a CPU with ``bf16`` (2 cores of an AMD EPYC: a step 26% faster)."""
        if self._bf16_on_cpu(self.args, self.model):
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return super().autocast_smart_context_manager(cache_enabled)

    def train(self, *args: Any, **kwargs: Any):
        # the same large tensors every step: on CPU, reusing freed memory makes a step ~18% faster (see its docstring)
        # The frozen weights are not stored in bf16 here as the preparation's reads store them (``_cpu_reads``): a step
        # is 8 contexts at once, where the casts weigh little (30 steps 34.0 s with them stored, 34.5 s without, 34.0 s
        # before either change; bundled model, 2 cores). Under one autocast around the whole training it was also
        # wrong: autocast keeps its bf16 copy of each weight that trains until its outermost region ends, so every
        # step ran the adapter as it was at the first (anchor KL 0 at every step; the stories' looping 15.7% -> 36.3%).
        with reusing_freed_memory():
            output = super().train(*args, **kwargs)
        # With bf16, accelerate leaves the model's forward wrapped in its autocast: what runs the model next (the slot
        # bench's measurements, the caller's generation) would run in bf16 without asking for it.
        self.accelerator.unwrap_model(self.model, keep_fp32_wrapper=False)
        return output

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        prefix = f"{mode}/"
        metrics = {k[len(prefix):]: sum(v) / len(v) for k, v in self._metrics.items() if k.startswith(prefix) and v}
        if mode == "eval":
            metrics = {f"eval_{k}": v for k, v in metrics.items()}
        logs.update(metrics)
        super().log(logs, start_time)
        for k in [k for k in self._metrics if k.startswith(prefix)]:
            self._metrics[k].clear()

    # ------------------------------------------------------------------------------------ card
    def create_model_card(self, *args, **kwargs) -> None:
        """Our own short README (see :func:`write_card`); ``hf-steer push`` replaces it with the full card.

        TRL's generated card said "fine-tuned version of [None]" and ``model="None"`` for a local base
        model, and PEFT's is a template of "[More Information Needed]": neither says anything true.
        """
        if self.is_world_process_zero():
            write_card(self.args.output_dir, self.model)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        super().save_model(output_dir, _internal_call)
        if self.is_world_process_zero() and not _internal_call:
            write_card(output_dir or self.args.output_dir, self.model)

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.is_world_process_zero():
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            if folder.is_dir():
                write_card(folder, self.model)


def write_card(folder: str | os.PathLike, model) -> Path:
    """A short, true README.md for an adapter folder (PEFT writes a placeholder card on every save)."""
    from ..artifacts import base_model_name
    from ..utils import atomic_write_text

    peft_config = getattr(model, "peft_config", None) or {}
    config = next(iter(peft_config.values()), None)
    name = getattr(config, "base_model_name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", None)
    base = base_model_name(name)
    is_hub_id = base is not None and not Path(base).expanduser().is_absolute() and not Path(base).exists()
    front = ["---", "library_name: peft", *([f"base_model: {base}"] if is_hub_id else []),
             "tags: [hf-steer, elarablation, lora]", "---", ""]
    body = [
        "# Elarablation adapter", "",
        f"A LoRA adapter for `{base}` trained with hf_steer's Elarablation: at the points where the base model "
        "reaches for slop (a stock name such as Elara, an over-used word or phrase) its bad next tokens are pushed "
        "down and rare good ones up, while slots that refer back to a name the text already introduced are held.",
        "", "```python", "from peft import PeftModel",
        f'model = PeftModel.from_pretrained(base_model, "{Path(folder).name}")', "```", "",
        "Settings and measured figures are in `hf_steer.json`; `hf-steer push FOLDER USER/NAME` publishes the "
        "folder with a card that shows them.", "",
    ]
    return atomic_write_text(Path(folder) / "README.md", "\n".join(front + body))

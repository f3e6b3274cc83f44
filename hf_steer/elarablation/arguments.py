"""The settings of every Elarablation command, as plain dataclasses (no torch: ``hf-steer --help`` stays fast).

``ElarablationArguments`` holds the trainer's own fields and the TrainingArguments defaults it changes;
:class:`~hf_steer.elarablation.config.ElarablationConfig` is it combined with ``TrainingArguments``.
The CLI builds its flags from these fields (``hf_steer.cli_args``): each default and help text lives here
once. ``LoraArguments``, ``BenchArguments``, ``FindArguments`` and ``AutoArguments`` are the other
commands' settings.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Literal

from ..errors import HfSteerError

LOSS_TYPES = ("elarablate", "unlikelihood", "margin")
# auto's hold weight by the kind of prompts (AutoArguments.with_hold_weight): chat prompts, plain openings
CHAT_HOLD_WEIGHT, PLAIN_HOLD_WEIGHT = 57.0, 100.0
# Held-out stories `auto` judges at least, by default (eval_stories_per_prompt): 3 per prompt on the shipped 34.
EVAL_STORIES = 100


@dataclass
class ElarablationArguments:
    r"""
    The Elarablation-specific settings of [`ElarablationConfig`] (and the TrainingArguments defaults it changes).

    Parameters:
        > Parameters that control which tokens are punished and rewarded

        loss_type (`str`, *optional*, defaults to `"margin"`):
            `"elarablate"` (the original: +log p punished, -log p rewarded), `"unlikelihood"` (-log(1-p) for
            punished) or `"margin"` (bounded hinges plus a tether to the reference logits of all other tokens).
        top_k (`int`, *optional*, defaults to `50`):
            How many of the most likely next tokens are classified at each step (rows may override).
        max_threshold (`float`, *optional*, defaults to `0.02`):
            Any candidate above this probability is punished, good or not.
        min_threshold (`float`, *optional*, defaults to `0.015`):
            Good candidates below this probability are rewarded.
        temperature (`float`, *optional*, defaults to `1.0`):
            Temperature at which probabilities are read against the thresholds.
        tether_weight (`float`, *optional*, defaults to `1.0`):
            Weight of the reference-logit tether (`margin` only).
        tether_centred (`bool`, *optional*, defaults to `False`):
            Tether the *centred* logits: the variance of (logits - reference) over the tokens the hinges do not
            move, so a shift of every logit together (which the softmax ignores) is free (`margin` only). The best
            setting measured for free prose (`auto`: held-out/sealed patterns -72%/-68%, looping and judge met on
            both); off by default because name slots then keep too little of an introduced El- name (0.83, goal 0.90).
        margin_cap (`float`, *optional*, defaults to `4.0`):
            Largest value in nats of one hinge term (`margin` only).
        bad_ratio (`float`, *optional*, defaults to `0.1`):
            A bad token is pushed below `min_threshold` and below this fraction of its reference probability
            (`margin` only), so a bad token already rare still falls.
        tree_depth (`int`, *optional*, defaults to `1`):
            `2` also trains one position deeper: each good first token is appended to its context and the next
            token is trained with the same rules, seen on the whole word so far (" E" + "lara" is " Elara").
        tree_width (`int`, *optional*, defaults to `8`):
            How many good first tokens (most likely first) are extended per context when `tree_depth=2`.
        next_max_threshold (`float`, *optional*, defaults to `0.5`):
            `max_threshold` at depth 2 (continuations are naturally peaked: only a dominant one is punished).
        next_min_threshold (`float`, *optional*, defaults to `0.005`):
            `min_threshold` at depth 2.
        min_path_prob (`float`, *optional*, defaults to `0.0`):
            A candidate that only begins a bad word (" cre" for "creature") gets a row one token deeper only
            when the base model takes that path from the slot at least this often (the product of the path's
            token probabilities at the row's temperature). `0` follows every such candidate (up to 8 a row,
            3 levels); `auto` writes 0.01 into its context files (measured there: 404 of the 838 deeper rows
            were paths under 1%).
        first_token_push (`bool`, *optional*, defaults to `True`):
            `margin` only: a candidate that only begins a bad word (" El" of Elara) is also pushed at the slot
            itself, down to the share of its probability that does not lead to a bad word one token deeper
            (the base model's share there, where that row exists: " El" followed by "ara" or "ena" 70% of the
            time keeps 0.37 of its probability at `bad_ratio` 0.1). Off, only the deeper row is trained, and the
            beginning is held by the tether.
        train_deeper_rows (`bool`, *optional*, defaults to `True`):
            With `first_token_push` (`margin`): also train the deeper rows themselves (the rest of a bad word
            after its beginning: "ara" after " El"), each in its context's step, not held again, and weighted by
            how likely the base is to reach it from the slot. The beginning alone is pushed only by its bad share
            (" El" begins Elena too), so a word of several tokens kept half its probability: Elara 0.60x of the
            base where held-out stories name one, 0.17x with them (docs/elarablation.md, "The rest of a word").
            Off, they are only read for the beginnings' bad shares and the slot alone is trained. Without
            `first_token_push` (or with another loss) the deeper rows are always trained: nothing else decides a
            beginning.

        keep_weight (`float`, *optional*, defaults to `1.0`):
            Weight of the loss at *keep* slots (a name introduced earlier must come back): KL to the reference
            there plus a floor on the expected name (see `loss.keep_loss`).
        neutral_weight (`float`, *optional*, defaults to `1.0`):
            Weight of the hold on the total probability of neutral candidates (neither good nor bad: non-names at
            a name slot) at its reference value (`margin` only), so the slot stays as name-like as it was.
        within_class (`bool`, *optional*, defaults to `True`):
            At a slot with neutral tokens (a name slot), the hinges read each candidate's probability within the
            named class (every non-neutral token), renormalised to the reference's class mass (`margin` only): the
            hinges alone never move mass between names and non-names (see `loss.elarablation_loss`).
        auto_keep (`int`, *optional*, defaults to `3`):
            Keep contexts generated per training context whose rules ban stock names (see `keep.py`): the first
            repeats the slot's own last words once the name is known (its echo), the others use fixed bridges.

        anchor_weight (`float`, *optional*, defaults to `100.0`):
            Weight of the anchor term: KL(reference || model) of the next-token distributions over ordinary text
            (`anchor_text`), so the step changes the slop point and not the rest of the model. `0` turns it off.
        anchor_tokens (`int`, *optional*, defaults to `256`):
            How many tokens of the anchor text are read each step.
        context_weight (`float`, *optional*, defaults to `0.0`):
            Weight of KL(reference || model) at every position of a slop context *before* its slot, averaged: the
            text around the slop point is held where the model had it, except the tokens that are a whole bad word
            of the context's rules, which are let go to `bad_ratio` of the reference (the stories hold other
            patterns before the slot). `auto` turns it on (free prose: its contexts are the model's own stories);
            `0` (the slot contexts' default) skips the extra forward.
        let_go_beginnings (`bool`, *optional*, defaults to `True`):
            With `context_weight`: the first token of a bad word written in several tokens (" cr" of crumbling,
            " El" of Elara) is let go too, wherever the reference gives it at least 5% in the context (not after the
            context has written the word: a back-reference there), to `1 - s (1 - bad_ratio)` of its reference
            probability, `s` the reference's share of going on from it to a bad word (read once, up to two tokens
            deeper). Off, such a token is held at every position, against the push at the slot: the bundled model's
            `auto` adapter kept such words at their trained slots (Elara 0.90x, crumbling 0.91x, tome 0.91x) while
            one-token words fell to 0.09-0.3x.
        hold_let_go_words (`str` or `None`, *optional*, defaults to `None`):
            With `context_weight`: a word list whose one-token words the hold also lets go to `bad_ratio`, at every
            position of every context with bad words, except the words that context has already written (a
            back-reference there), and whose phrases' last words it lets go right after the phrase's other words
            (not where the context has written the whole phrase, or its last word with a capital): `antislop` (the
            shipped antislop list: the slop index's words, bigrams and trigrams) or a text file, one word or phrase
            per line. Trained out at their slots alone, patterns gave way to other listed words in the stories
            ("cunning" 8 -> 22, "fierce" 10 -> 21 hits); the words alone left the slop index's trigrams (8x each) as
            half of what remained. `None`: only the contexts' own bad words and phrases are let go.

        > Parameters that control the model

        load_in_4bit (`bool`, *optional*, defaults to `False`):
            Load a model given by name in 4-bit nf4 (QLoRA; combine with `peft_config`).
    """

    loss_type: Literal["elarablate", "unlikelihood", "margin"] = field(
        default="margin",
        metadata={"help": "Loss variant: elarablate (the original), unlikelihood or margin (bounded, with a tether)."},
    )
    top_k: int = field(default=50, metadata={"help": "How many most likely next tokens are classified per step."})
    max_threshold: float = field(default=0.02, metadata={"help": "Candidates above this probability are punished."})
    min_threshold: float = field(default=0.015, metadata={"help": "Good candidates below this probability are rewarded."})
    temperature: float = field(default=1.0, metadata={"help": "Temperature at which probabilities are compared."})
    tether_weight: float = field(default=1.0, metadata={"help": "Weight of the reference-logit tether (margin)."})
    tether_centred: bool = field(
        default=False, metadata={"help": "Tether the centred logits: a shift of every logit together is free (margin). "
                                 "Best measured for free prose (auto); name slots keep less of an introduced name."})
    margin_cap: float = field(default=4.0, metadata={"help": "Largest value in nats of one hinge term (margin)."})
    bad_ratio: float = field(
        default=0.1,
        metadata={"help": "A bad token is pushed below min_threshold and below this fraction of its reference "
                  "probability (margin)."},
    )
    tree_depth: int = field(default=1, metadata={"help": "1: train the slop point; 2: also one token deeper."})
    tree_width: int = field(default=8, metadata={"help": "Good first tokens extended per context at depth 2."})
    next_max_threshold: float = field(default=0.5, metadata={"help": "max_threshold at depth 2."})
    next_min_threshold: float = field(default=0.005, metadata={"help": "min_threshold at depth 2."})
    min_path_prob: float = field(
        default=0.0,
        metadata={"help": "Follow a token that only begins a bad word one token deeper only on paths the base model "
                  "takes at least this often from the slot; 0 follows all."},
    )
    first_token_push: bool = field(
        default=True,
        metadata={"help": "margin: push a token that only begins a bad word at the slot too, by the share of its "
                  "base continuations that are bad words (the deeper row's); off: only the deeper row is trained."},
    )
    train_deeper_rows: bool = field(
        default=True,
        metadata={"help": "With first_token_push: also train the rows one token deeper (the rest of a bad word after "
                  "its beginning: 'ara' after ' El'), in their context's step, weighted by how likely the base "
                  "reaches them; off: they are only read for the beginnings' bad shares."},
    )
    keep_weight: float = field(
        default=1.0, metadata={"help": "Weight of the loss at keep slots (an introduced name must come back)."}
    )
    neutral_weight: float = field(
        default=1.0,
        metadata={"help": "Weight of the hold on the neutral mass at a slot (non-names at a name slot) (margin)."},
    )
    within_class: bool = field(
        default=True,
        metadata={"help": "At a slot with neutral tokens (a name slot), read the hinges within the named class, "
                  "renormalised to the reference's class mass: pushing and rewarding names moves mass among names "
                  "only, not from non-names (margin)."},
    )
    auto_keep: int = field(
        default=3,
        metadata={"help": "Keep contexts generated per training context whose rules ban stock names: the context, "
                  "the name introduced, then a slot that refers back to it; the first repeats the slot's own words "
                  "(0: none)."},
    )
    anchor_weight: float = field(
        default=100.0,
        metadata={"help": "Weight of KL(reference || model) over ordinary anchor text; 0 turns it off (auto, top six, "
                  "bf16: the trainer 96 -> 67 s, the held-out slots as far, but the slop index fell less in one of "
                  "three draws of stories)."},
    )
    anchor_tokens: int = field(default=256, metadata={"help": "Tokens of anchor text read each step."})
    context_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of KL(reference || model) at the positions of each slop context before its slot, "
                  "from a chat context's prompt's last token on (holds the model's own text around the slop point, "
                  "its bad words let go to bad_ratio; the chat prompt is given, not held; auto sets it); 0 turns it "
                  "off."},
    )
    let_go_beginnings: bool = field(
        default=True,
        metadata={"help": "With context_weight: also let go the first token of a bad word of several tokens, by the "
                  "reference's share of going on from it to one (read once where it is at least 0.05 likely); off: it is held."},
    )
    hold_let_go_words: str | None = field(
        default=None,
        metadata={"help": "With context_weight: also let go, wherever the context has not written them yet, the "
                  "one-token words of this list and, after a phrase's other words, its last word: 'antislop' (the "
                  "shipped list: words, bigrams, trigrams), a file with one word or phrase per line, or 'none'."},
    )
    load_in_4bit: bool = field(default=False, metadata={"help": "Load a model given by name in 4-bit nf4 (QLoRA)."})

    # TrainingArguments defaults that suit Elarablation.
    learning_rate: float = field(default=2e-3, metadata={"help": "The initial learning rate for AdamW."})
    num_train_epochs: float = field(default=8.0, metadata={"help": "Passes over the contexts."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Contexts per forward pass."})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "The scheduler type to use."})
    warmup_steps: float = field(default=0, metadata={"help": "Linear warmup steps."})
    logging_steps: float = field(default=1, metadata={"help": "Log every X update steps."})
    save_strategy: str = field(default="no", metadata={"help": "Checkpoint strategy: no, steps or epoch."})
    report_to: str | list[str] | None = field(default="none", metadata={"help": "Integrations to report to."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep the rule columns: the trainer prepares its own inputs."}
    )
    bf16: bool | None = field(
        default=None, metadata={"help": "bf16 mixed precision (autocast; the adapter's weights stay fp32; auto draws "
                                "its stories in it too). Default: on where a GPU supports it, off on a CPU, where it "
                                "depends on the CPU: 2 cores of an AMD EPYC with AVX512-BF16 ran auto's loop 32%% "
                                "faster, an Intel Xeon with AVX512-BF16 multiplies bf16 matrices slower than fp32 "
                                "(docs/results/elarablation/probes/bf16_matmul.py tells in seconds)."}
    )
    seed: int = field(default=0, metadata={"help": "Random seed."})

    @property
    def pushes_beginnings(self) -> bool:
        """first_token_push is on and the loss reads it (``margin`` only): a beginning of a bad word is pushed at
        its slot by its bad share."""
        return self.first_token_push and self.loss_type == "margin"

    @property
    def trains_deeper_rows(self) -> bool:
        """The rows one token into a bad word train (``train_deeper_rows``, or nothing else decides a beginning);
        otherwise they are only read for the beginnings' bad shares."""
        return self.train_deeper_rows or not self.pushes_beginnings

    def __post_init__(self):
        for name in ("learning_rate", "num_train_epochs", "temperature", "margin_cap"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise HfSteerError(f"{name}={value} must be a positive number: e.g. {ElarablationArguments.__dataclass_fields__[name].default}")
        for name in ("tether_weight", "keep_weight", "neutral_weight", "anchor_weight"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise HfSteerError(f"{name}={value} must be a number >= 0: 0 turns it off")
        for name in ("per_device_train_batch_size", "tree_width", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise HfSteerError(f"{name}={getattr(self, name)} must be 1 or more")
        if self.auto_keep < 0:
            raise HfSteerError(f"auto_keep={self.auto_keep} must be 0 (none) or more")
        if not 0 <= self.seed < 2**32:
            raise HfSteerError(f"seed={self.seed} is out of range: use 0 .. 4294967295")
        if self.loss_type not in LOSS_TYPES:
            raise HfSteerError(f"loss_type {self.loss_type!r} is unknown: use one of {', '.join(LOSS_TYPES)}")
        if self.top_k < 1:
            raise HfSteerError(f"top_k={self.top_k} is out of range: use a value >= 1")
        if not 0 < self.bad_ratio <= 1:
            raise HfSteerError(f"bad_ratio={self.bad_ratio} must be in (0, 1]: e.g. 0.1 (tenfold down)")
        for name in ("max_threshold", "min_threshold", "next_max_threshold", "next_min_threshold", "min_path_prob"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise HfSteerError(f"{name}={value} is not a probability: use a value in [0, 1]")
        if self.min_threshold >= self.max_threshold:
            raise HfSteerError(
                f"min_threshold={self.min_threshold} is not below max_threshold={self.max_threshold}: "
                "rewarding above the punishing line would fight itself; lower min_threshold"
            )
        if self.next_min_threshold >= self.next_max_threshold:
            raise HfSteerError(
                f"next_min_threshold={self.next_min_threshold} is not below next_max_threshold="
                f"{self.next_max_threshold}: lower next_min_threshold"
            )
        if self.keep_weight < 0:
            raise HfSteerError(f"keep_weight={self.keep_weight} is negative: use 0 (off) or more")
        if self.context_weight < 0:
            raise HfSteerError(f"context_weight={self.context_weight} is negative: use 0 (off) or more")
        if self.anchor_weight < 0 or self.anchor_tokens < 2:
            raise HfSteerError("anchor_weight must be >= 0 and anchor_tokens >= 2: fix the config")
        self.hold_let_go_words = _word_list_setting(self.hold_let_go_words)
        if self.tree_depth not in (1, 2):
            raise HfSteerError(f"tree_depth={self.tree_depth} is not supported: use 1 or 2")
        if hasattr(super(), "__post_init__"):
            super().__post_init__()


@dataclass
class LoraArguments:
    """The adapter Elarablation trains (the CLI's ``--lora-*`` flags come from these fields)."""

    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (the update is scaled by alpha / r)."})
    lora_layers: str | None = field(
        default=None, metadata={"help": "Layers that get the adapter: a range (15-29), a list (20,21,22) or the top N "
                                        "(top6; every layer of a model with fewer) (default: the upper half)."}
    )

    def __post_init__(self) -> None:
        for name in ("lora_r", "lora_alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                default = LoraArguments.__dataclass_fields__[name].default
                raise HfSteerError(f"{name}={value!r} must be a whole number >= 1: e.g. {default}")
        if self.lora_layers is not None and str(self.lora_layers).strip().lower() in ("", "none"):
            self.lora_layers = None  # `--lora-layers None`: the upper half, as a work folder's state.json spells it
        self.layers()  # a malformed range is an error now, not after the model loads

    def layers(self) -> list[int] | None:
        """``"15-29"`` or ``"3,5,7"`` -> layer indices; ``"top6"`` -> ``[-6, ..., -1]`` (counted from the top, as
        Python counts: ``default_lora_config`` reads them against the model); ``None``: the upper half."""
        text = self.lora_layers
        if text is None or str(text).strip() == "":  # "None" is None by now (__post_init__)
            return None
        try:
            top = re.fullmatch(r"\s*top\s*(\d+)\s*", str(text).lower())
            if top:
                if int(top.group(1)) < 1:
                    raise ValueError
                return list(range(-int(top.group(1)), 0))
            if "-" in str(text):
                lo, hi = (int(x) for x in str(text).split("-", 1))
                if lo > hi or lo < 0:
                    raise ValueError
                return list(range(lo, hi + 1))
            layers = [int(x) for x in str(text).split(",")]
            if min(layers) < 0:
                raise ValueError
            return layers
        except ValueError:
            raise HfSteerError(f"--lora-layers {text!r} is not a range: use e.g. 15-29, 20,21,22 or top6") from None


@dataclass
class AutoLoraArguments(LoraArguments):
    """The adapter of ``auto`` and the story bench: the top six layers, not the upper half.

    Free writing's slop is a word choice, and the layers next to the output make it: on the story bench (bundled model,
    the same stories and contexts, ``--bf16``, AMD EPYC, 2026-12-07) the top six of 30 layers lower the targeted
    patterns where held-out stories use them as far as the upper half (0.31x of the base, exact, 273 slots; 25 of 40
    patterns at or under a third, 26 with the upper half), keep the names a story introduced where it refers back
    better (0.97x against 0.90x, 48 slots), and train in 105 s instead of 242 s (training stage 153 s against 299 s).
    The top three: 0.35x, 19 of 40, 128 s. ``--lora-layers None`` trains the upper half (work folders started before
    2026-12-07 record it so).
    """

    lora_layers: str | None = field(
        default="top6", metadata={"help": "Layers that get the adapter: a range (15-29), a list (20,21,22), the top N "
                                          "(top6; every layer of a model with fewer) or None (the upper half) "
                                          "(default: top6: as far on the story bench as the upper half, training "
                                          "twice as fast)."}
    )


def _word_list_setting(value: str | None) -> str | None:
    """``hold_let_go_words`` checked now (a missing or empty file is an error before the model loads); "none" is None."""
    if value in (None, "none", ""):
        return None
    from .stories import hold_word_list

    hold_word_list(value)
    return value


def _check_positive(obj, names: tuple[str, ...], whole: bool = True) -> None:
    for name in names:
        value = getattr(obj, name)
        ok = (isinstance(value, int) and not isinstance(value, bool)) if whole else isinstance(value, (int, float))
        if not ok or not math.isfinite(value) or value <= 0:
            default = type(obj).__dataclass_fields__[name].default
            hint = f": e.g. {default}" if default is not None else ", or leave it out for its default"
            raise HfSteerError(f"--{name.replace('_', '-')} {value} must be a positive {'whole ' if whole else ''}number"
                               f"{hint}")


@dataclass
class BenchArguments:
    """Settings of ``hf-steer elarablate bench`` (the slot bench)."""

    samples: int = field(default=200, metadata={"help": "Names sampled per held-out context and temperature."})
    repetition: bool = field(default=False, metadata={"help": "Also measure looping 16-token continuations."})

    def __post_init__(self) -> None:
        _check_positive(self, ("samples",))


@dataclass
class FindArguments:
    """Settings of ``hf-steer elarablate find`` (and the first stages of ``auto``)."""

    prompts: str = field(
        default="stories:train",
        metadata={"help": "Prompt set: a shipped NAME[:SPLIT] (stories:train, stories:heldout, openings:train, ...) "
                  "or a YAML/text file of prompts."},
    )
    stories_per_prompt: int = field(default=4, metadata={"help": "Stories generated per prompt."})
    max_new_tokens: int = field(default=200, metadata={"help": "Tokens per story."})
    story_temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of the stories."})
    top: int = field(default=40, metadata={"help": "How many over-used patterns to keep."})
    min_stories: int = field(
        default=3, metadata={"help": "A pattern must appear in at least this many different stories."}
    )
    contexts_per_pattern: int = field(default=6, metadata={
        "help": "Training contexts cut per pattern on average: split by how often the model writes each pattern (at "
                "least 2, at most 4 times this, never more than its uses)."})
    context_tokens: int = field(
        default=64,
        metadata={"help": "Story tokens kept before each pattern in its context (shorter contexts train faster; "
                  "the slop choice is local)."},
    )
    loop_contexts: int = field(default=40, metadata={
        "help": "Also cut the training stories where they start to loop (a word 4-gram written a third time; one "
                "per story, up to this many and a quarter of the pattern contexts), with the looping word bad there, "
                "so the deslopped model does not fall into loops instead of slop (story bench, --hold-let-go-words "
                "antislop, three trainings: looping 18.7%% / 19.8%% held-out / sealed against 22.4%% / 26.6%% without "
                "them, the base's 13.1%% / 22.2%%; 0: off)."})
    generation_batch_size: int = field(default=128, metadata={
        "help": "Most stories generated in one batch (they are split into equal batches; another size draws other "
                "stories). Lower it when memory is short."})
    seed: int = field(default=0, metadata={"help": "Random seed."})

    def __post_init__(self) -> None:
        _check_positive(self, ("stories_per_prompt", "max_new_tokens", "top", "min_stories", "contexts_per_pattern",
                               "generation_batch_size", "context_tokens"))
        _check_positive(self, ("story_temperature",), whole=False)
        if self.loop_contexts < 0:
            raise HfSteerError(f"--loop-contexts {self.loop_contexts} is negative: use 0 (off) or more")
        if not 0 <= self.seed < 2**32:
            raise HfSteerError(f"--seed {self.seed} is out of range: use 0 .. 4294967295")


@dataclass
class AutoArguments(FindArguments):
    """Settings of ``hf-steer elarablate auto``: ``find``'s, plus the stories it is judged on."""

    eval_prompts: str = field(
        default="stories:heldout",
        metadata={"help": "Prompts the before/after stories are written for (never used to find patterns)."},
    )
    eval_stories_per_prompt: int | None = field(default=None, metadata={
        "help": "Stories per evaluation prompt (default: 3, or more where the prompts are few, so that at least 100 "
                "stories are judged: one adapter of the bundled model judged on 30 stories of 10 prompts read patterns "
                "-44%%, slop index +26%%, and on 100 stories of the same prompts -74%%, -25%%)."})
    patterns: str | None = field(
        default=None,
        metadata={"help": "Comma-separated words or phrases to train out instead of discovering them "
                  "(each must occur in the stories)."},
    )
    train_epochs: float = field(
        default=2.0,
        metadata={"help": "Passes over the discovered contexts (story bench, the slots alone trained under the hold: "
                  "2 lower the patterns where stories use them to 0.31x of the base, 1 to 0.43x; top six layers, "
                  "bf16)."},
    )
    hold_weight: float | None = field(
        default=None,
        metadata={"help": "context_weight of the training stage: KL to the base model on the story text before each "
                  "slop point, so only the slop point moves; the patterns' own words there are let go (0: off). "
                  "Default: 57 for chat prompts (held from the story on: about the old 100, which was averaged over "
                  "the chat prompt too, 45%% of auto's positions on the bundled model), 100 for plain openings (held "
                  "whole; Gemma-3-270M's openings, three draws: at 57 judge perplexity +12.2%% against +3.9%%, slop index "
                  "+6%% against -4%%, the patterns -77%% at both, fewer looping stories)."},
    )
    hold_let_go_words: str | None = field(
        default=None,
        metadata={"help": "The hold also lets go the one-token words of this list wherever a context has not written "
                  "them yet, and a phrase's last word after its other words: 'antislop' (the slop index's words, "
                  "bigrams and trigrams) or a file with one word or phrase per line (story bench, with the loop contexts, "
                  "three trainings, three draws each: slop index -33%% to -42%% held-out, -22%% to -31%% sealed, against "
                  "-19%% / -12%% without a list; but looping 18.7%% / 19.8%% against the base's 13.1%% / 22.2%%; "
                  "default: none)."},
    )

    rounds: int = field(
        default=1,
        metadata={"help": "Loops to run: each round after the first runs the whole loop again on the model with the "
                  "rounds before it merged in, and the rounds are joined into one adapter (all_rounds_adapter/). "
                  "Raise it on a finished folder to add a round (story bench before the loop contexts, three draws, "
                  "held-out / sealed: slop index -25%% / -27%% against -8%% / -6%% for one round, but looping "
                  "21.6%% / 24.8%% against the base's 13.1%% / 22.2%%; the loop takes twice as long)."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_positive(self, ("rounds",) if self.eval_stories_per_prompt is None else ("eval_stories_per_prompt", "rounds"))
        _check_positive(self, ("train_epochs",), whole=False)
        if self.hold_weight is not None and not self.hold_weight >= 0:
            raise HfSteerError(f"--hold-weight {self.hold_weight} is negative: use 0 (off) or more")
        self.hold_let_go_words = _word_list_setting(self.hold_let_go_words)
        if self.patterns is not None and not [p for p in self.patterns.split(",") if p.strip()]:
            raise HfSteerError("--patterns is empty: give comma-separated words or phrases, or leave it out")

    def with_eval_stories(self, prompts: int) -> AutoArguments:
        """These settings with ``eval_stories_per_prompt`` decided by the number of evaluation prompts when it was left
        out: 3 each, or more so that at least :data:`EVAL_STORIES` stories are judged.

        A report on few stories is a draw, not a measure: the slop index counts a list trigram 8 times, so in 30 stories
        (4,700 words) each one moves it by 1.7 points. On the bundled model, one training on a user's 20 + 10 prompts
        (``docs/results/elarablation/user_prompts2/``) read patterns -44%, slop index +26% on 30 held-out stories and
        -74%, -25% on 100 (``--eval-stories-per-prompt 10``); the shipped 34 held-out prompts keep 3 each (102)."""
        if self.eval_stories_per_prompt is not None:
            return self
        return dataclasses.replace(self, eval_stories_per_prompt=max(3, math.ceil(EVAL_STORIES / max(prompts, 1))))

    def with_hold_weight(self, chat: bool) -> AutoArguments:
        """These settings with ``hold_weight`` decided by the kind of prompts (``chat``) when it was left out.

        A chat context is held from its story on (``prompt_length``), and 57 there is about the old 100, which was
        averaged over the chat prompt too; a plain opening is held whole, as it always was, so its old strength is 100
        (on Gemma-3-270M's openings, three draws, 57 lowered the patterns as far, -77%, and moved the judge three times
        as far: +12.2% against +3.9%)."""
        if self.hold_weight is not None:
            return self
        return dataclasses.replace(self, hold_weight=CHAT_HOLD_WEIGHT if chat else PLAIN_HOLD_WEIGHT)

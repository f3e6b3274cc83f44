"""Contexts: where a slop token would start, and which next tokens are good or bad there.

A context set is a :class:`datasets.Dataset` with one row per context (columns in ``FEATURES``):
the text before the slop point, either raw (``chat=False``) or as the open assistant turn of a chat
(``system``, ``user``, then ``text`` as the start of the reply), plus token rules and optional per-row
hyperparameters. Files it loads:

- our YAML (``family``, ``rules``, ``hyperparameters``, ``train``/``heldout``/``reference`` lists),
- our JSONL (one row per line, keys as in ``FEATURES``),
- the ORIGINAL elarablate YAML unchanged, read exactly as envy-ai/elarablate's ``elarablate.py``
  reads it (see :func:`_rows_from_original`).

``{a|b}`` in our files expands into one row per alternative (all groups combined); in original files
the alternatives form a *group* of which ``repeat`` rows are drawn per epoch, as the original does.

Token rules see a token as a reader would: ``"ĠEl"`` (byte-level) and ``"▁El"`` (SentencePiece) are
both ``" El"``. Regexes written against raw markers are accepted too: a ``Ġ`` or ``▁`` in a pattern
means a space. A candidate is *bad* if a bad regex matches (bad overrides good), *good* if a good
regex matches, and otherwise what the row's ``unmatched`` says: ``bad`` (our default when good
regexes are given), ``good`` (our default when none are) or ``neutral`` (never pushed either way: the
original's rule). ``excluded`` candidates are dropped and ``forced_good`` ones are good whatever the
regexes say; both match a candidate by its reader text or by the first token of the string's own
encoding (the original's rule: ``".\n\n"`` means ``"."``).

*Keep* rows (``kind: keep``) are the other half of the training signal: a slot where a name (or word)
was already introduced earlier in the text and must be used again. They carry the ``expected`` name and
no rules; the trainer holds the model's distribution there (see :mod:`~hf_steer.elarablation.loss`).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import datasets

from ..errors import HfSteerError

LIBRARY_DIR = Path(__file__).parent / "library"
SPLITS = ("train", "heldout", "reference")
KINDS = ("slop", "keep")
UNMATCHED = ("bad", "good", "neutral")
_ALTERNATION = re.compile(r"\{([^{}]*\|[^{}]*)\}")
# The original's own pattern: any non-empty braces, split on "|" (a group without "|" just loses its braces).
_ORIGINAL_ALTERNATION = re.compile(r"\{([^}]+)\}")
_MAX_EXPANSION = 10_000
_MARKERS = ("Ġ", "▁")
_WORD = re.compile(r"^[A-Za-z][A-Za-z'\-]*$")

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "family": datasets.Value("string"),
        "source": datasets.Value("string"),
        "split": datasets.Value("string"),
        # "slop": train the slot with the rules; "keep": hold the slot (the expected name must stay)
        "kind": datasets.Value("string"),
        "chat": datasets.Value("bool"),
        "system": datasets.Value("string"),
        "user": datasets.Value("string"),
        "text": datasets.Value("string"),
        "good": datasets.List(datasets.Value("string")),
        "bad": datasets.List(datasets.Value("string")),
        # whole words that are bad (a token that only begins one is decided one token deeper)
        "bad_words": datasets.List(datasets.Value("string")),
        # phrases whose LAST word is bad after the words before it ("the sun"): the context hold lets that word go
        # where the text it holds ends with those words (a phrase's word is not bad everywhere, so not a bad word)
        "bad_phrases": datasets.List(datasets.Value("string")),
        "forced_good": datasets.List(datasets.Value("string")),
        "excluded": datasets.List(datasets.Value("string")),
        # how a candidate that matches no regex counts: bad / good / neutral ("" -> bad if good regexes, else good)
        "unmatched": datasets.Value("string"),
        # None -> the trainer config's value
        "top_k": datasets.Value("int32"),
        "max_threshold": datasets.Value("float64"),
        "min_threshold": datasets.Value("float64"),
        "temperature": datasets.Value("float64"),
        # original files: a missing max_threshold is 1/top_k and a missing min_threshold 0.75 x max_threshold
        "relative_thresholds": datasets.Value("bool"),
        # depth-2 rows (see ElarablationConfig.tree_depth): thresholds one token deeper
        "next_max_threshold": datasets.Value("float64"),
        "next_min_threshold": datasets.Value("float64"),
        # a token that only begins a bad word is followed deeper only on paths the model takes this often
        "min_path_prob": datasets.Value("float64"),
        # alternatives of one original context: `draws` of the group's rows are trained per epoch
        "group": datasets.Value("string"),
        "draws": datasets.Value("int32"),
        # reference and keep rows: the name a reader expects again
        "expected": datasets.Value("string"),
    }
)
_LIST_KEYS = ("good", "bad", "bad_words", "bad_phrases", "forced_good", "excluded")
_OPTIONAL_NUMBERS = ("top_k", "max_threshold", "min_threshold", "temperature", "next_max_threshold", "next_min_threshold",
                     "min_path_prob")
# Keys the original elarablate.py reads (anything else in an original file is an error here, not ignored).
ORIGINAL_KEYS = ("system_prompt", "user_prompt", "response_text", "hyperparameters", "token_rules", "repeat")
ORIGINAL_RULE_KEYS = ("bad_token_regexes", "good_token_regexes", "force_good_tokens", "exclude_tokens", "railroad")
ORIGINAL_HYPERPARAMETERS = ("temperature", "top_k", "max_threshold", "min_threshold")
# The original's defaults when a file has no system or user prompt (elarablate.py, default_system_msg/user_msg).
ORIGINAL_SYSTEM = "You are an AI creative writing and roleplaying assistant."
ORIGINAL_USER = "Write a fantasy or sci-fi story."


# --------------------------------------------------------------------------------------------- tokens
def reader_text(tokenizer, token_id: int) -> str:
    """A token as a reader sees it: with its leading space whatever the marker (Ġ, ▁), bytes decoded."""
    token = tokenizer.convert_ids_to_tokens(int(token_id))
    if token is None:
        return ""
    text = tokenizer.convert_tokens_to_string([token])
    # SentencePiece-style decoders drop the space of a word-initial piece when it stands alone.
    if token.startswith("▁") and not text.startswith(" "):
        text = " " + text.lstrip("▁")
    return text


class TokenTexts:
    """Cached :func:`reader_text` for one tokenizer (classification runs every step on the top-k)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._cache: dict[int, str] = {}

    def __call__(self, token_id: int) -> str:
        token_id = int(token_id)
        text = self._cache.get(token_id)
        if text is None:
            text = self._cache[token_id] = reader_text(self.tokenizer, token_id)
        return text


def first_token_id(tokenizer, text: str) -> int | None:
    """The first token of ``text`` encoded alone (how the original turns a token string into an id)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return int(ids[0]) if ids else None


# --------------------------------------------------------------------------------------------- rules
def compile_regex(pattern: str, source: str = "<rules>") -> re.Pattern:
    """Compile one rule regex (Ġ/▁ mean a space), or raise one clear error naming file and pattern."""
    translated = pattern
    for marker in _MARKERS:
        translated = translated.replace(marker, " ")
    try:
        return re.compile(translated)
    except re.error as e:
        raise HfSteerError(f"{source}: regex {pattern!r} is invalid ({e}): fix or remove the pattern") from None


def word_start(text: str) -> str:
    """``text`` from its first letter on: leading spaces, quotes and dashes are not part of a word."""
    return text[next((k for k, c in enumerate(text) if c.isalpha()), len(text)):]


def word_match(text: str, word: str) -> str | None:
    """How the text so far (``" tow"``, ``" towering,"``) relates to a bad ``word``.

    ``"bad"`` when it is the whole word (followed by nothing or a non-letter: ``" towering"``,
    ``" Towering,"``), ``"pending"`` when it is a strict beginning of it that another word shares
    (``" tow"`` for "towering" could still become " town"), ``None`` otherwise (``" town"``,
    ``" towers"``). Case is ignored; leading spaces, quotes and dashes are not part of the word.
    """
    rest = word_start(text)
    if not rest:
        return None
    folded, target = rest.casefold(), word.casefold()
    if folded.startswith(target):  # (folded: "Straße" is "strasse", longer than the text)
        after = folded[len(target):]
        return "bad" if not after or not (after[0].isalpha() or after[0] in "'-") else None
    if target.startswith(folded) and all(c.isalpha() or c in "'-" for c in rest):
        return "pending"
    return None


@dataclass
class TokenRules:
    """Compiled rules of one row. ``prefix`` is the word so far (rows one token deeper), seen by the rules.

    ``forced_ids``/``excluded_ids`` are the first tokens of the ``forced_good``/``excluded`` strings in the
    model's tokenizer (see :meth:`resolve`); a candidate also matches those lists by its reader text.
    """

    good: list[re.Pattern] = field(default_factory=list)
    bad: list[re.Pattern] = field(default_factory=list)
    bad_words: tuple[str, ...] = ()
    bad_phrases: tuple[str, ...] = ()
    forced_good: frozenset[str] = frozenset()
    excluded: frozenset[str] = frozenset()
    unmatched: str = "bad"
    prefix: str = ""
    forced_ids: frozenset[int] = frozenset()
    excluded_ids: frozenset[int] = frozenset()

    @classmethod
    def from_row(cls, row: dict[str, Any], tokenizer=None) -> TokenRules:
        source = row.get("source") or "<contexts>"
        good = [compile_regex(p, source) for p in row.get("good") or []]
        unmatched = row.get("unmatched") or ("bad" if good else "good")
        if unmatched not in UNMATCHED:
            raise HfSteerError(f"{source}: unmatched={unmatched!r} is unknown: use one of {', '.join(UNMATCHED)}")
        words = tuple(row.get("bad_words") or [])
        for word in words:
            if not _WORD.match(word):
                raise HfSteerError(f"{source}: bad word {word!r} is not one word: give letters only (e.g. towering)")
        phrases = tuple(row.get("bad_phrases") or [])
        for phrase in phrases:
            if len(phrase.split()) < 2 or not all(_WORD.match(w) for w in phrase.split()):
                raise HfSteerError(f"{source}: bad phrase {phrase!r} is not two or more words: give words separated by "
                                   "spaces, the bad one last (e.g. the sun)")
        rules = cls(good=good, bad=[compile_regex(p, source) for p in row.get("bad") or []], bad_words=words,
                    bad_phrases=phrases,
                    forced_good=frozenset(row.get("forced_good") or []), excluded=frozenset(row.get("excluded") or []),
                    unmatched=unmatched)
        return rules.resolve(tokenizer) if tokenizer is not None else rules

    def resolve(self, tokenizer) -> TokenRules:
        """The same rules with ``forced_good``/``excluded`` strings turned into the tokenizer's first token ids."""
        def ids(strings):
            return frozenset(i for i in (first_token_id(tokenizer, s) for s in strings) if i is not None)

        return replace(self, forced_ids=ids(self.forced_good), excluded_ids=ids(self.excluded))

    def extended(self, token_text: str) -> TokenRules:
        """The same rules one token deeper: they now see ``prefix + token_text + candidate``."""
        return replace(self, prefix=self.prefix + token_text, forced_good=frozenset(), excluded=frozenset(),
                       forced_ids=frozenset(), excluded_ids=frozenset())

    def classify(self, token_text: str, token_id: int | None = None) -> str:
        """``"good"``, ``"bad"``, ``"neutral"``, ``"excluded"`` or ``"pending"`` (the candidate begins a bad
        word but could still become another one: decided one token deeper) for one candidate."""
        if token_text in self.excluded or token_id in self.excluded_ids:
            return "excluded"
        if token_text in self.forced_good or token_id in self.forced_ids:
            return "good"
        text = self.prefix + token_text
        if any(p.search(text) for p in self.bad):
            return "bad"
        pending = False
        for word in self.bad_words:
            match = word_match(text, word)
            if match == "bad":
                return "bad"
            pending = pending or match == "pending"
        if pending:
            return "pending"
        if any(p.search(text) for p in self.good):
            return "good"
        return self.unmatched


# --------------------------------------------------------------------------------------------- expansion
def _combinations(options: list[list[str]], text: str, source: str) -> list[str]:
    count = 1
    for o in options:
        count *= len(o)
    if count > _MAX_EXPANSION:
        raise HfSteerError(f"{source}: {text[:60]!r} expands to {count} rows (> {_MAX_EXPANSION}): use fewer {{a|b}} groups")
    return ["".join(combo) for combo in itertools.product(*options)]


def expand_alternations(text: str, source: str = "<contexts>", original: bool = False) -> list[str]:
    """``"a {big|small} {elf|dwarf}"`` -> the four combinations, in order.

    ``original=True`` uses the original script's pattern: any non-empty ``{...}`` is a group (``{word}``
    alone just loses its braces) and an empty alternative (``{a||b}``) is kept, as it is there.
    """
    pattern = _ORIGINAL_ALTERNATION if original else _ALTERNATION
    parts = pattern.split(text)
    # split() with one group alternates literal, group, literal, ...
    return _combinations([[p] if i % 2 == 0 else p.split("|") for i, p in enumerate(parts)], text, source)


# --------------------------------------------------------------------------------------------- rows
def make_row(
    text: str,
    *,
    good: Sequence[str] = (),
    bad: Sequence[str] = (),
    bad_words: Sequence[str] = (),
    bad_phrases: Sequence[str] = (),
    forced_good: Sequence[str] = (),
    excluded: Sequence[str] = (),
    unmatched: str = "",
    chat: bool = False,
    system: str = "",
    user: str = "",
    family: str = "",
    source: str = "<python>",
    split: str = "train",
    kind: str = "slop",
    id: str | None = None,
    expected: str = "",
    relative_thresholds: bool = False,
    group: str = "",
    draws: int | None = None,
    **numbers: float | int | None,
) -> dict[str, Any]:
    """One context row with every column of ``FEATURES`` (unknown keys are an error)."""
    unknown = set(numbers) - set(_OPTIONAL_NUMBERS)
    if unknown:
        raise HfSteerError(f"{source}: unknown context key(s) {sorted(unknown)}: use {', '.join(FEATURES)}")
    row = {
        "id": id or "", "family": family, "source": source, "split": split, "kind": kind, "chat": bool(chat),
        "system": system or "", "user": user or "", "text": text, "good": list(good), "bad": list(bad),
        "bad_words": list(bad_words), "bad_phrases": list(bad_phrases), "forced_good": list(forced_good), "excluded": list(excluded),
        "unmatched": unmatched or "", "expected": expected or "", "relative_thresholds": bool(relative_thresholds),
        "group": group or "", "draws": draws,
    }
    for key in _OPTIONAL_NUMBERS:
        row[key] = numbers.get(key)
    return row


def check_keep_row(row: dict[str, Any], source: str) -> None:
    """A keep row names the expected name, and that name appears earlier in its own text."""
    expected = (row.get("expected") or "").strip()
    if not expected:
        raise HfSteerError(f"{source}: keep context {row.get('text', '')[-40:]!r} has no 'expected' name: add it")
    seen = " ".join(row.get(k) or "" for k in ("system", "user", "text"))
    if not re.search(rf"(?<![A-Za-z]){re.escape(expected)}(?![a-z])", seen):
        raise HfSteerError(
            f"{source}: keep context {row.get('text', '')[:40]!r} never introduces {expected!r} earlier in its "
            "text: a keep slot must refer back to a name the text already used"
        )


def rows_to_dataset(rows: Sequence[dict[str, Any]], what: str = "context set") -> datasets.Dataset:
    """Validate rows (regexes, thresholds, top_k, keep names) and wrap them as a Dataset."""
    if not rows:
        raise HfSteerError(f"{what} is empty: pass at least one context file, library name or row")
    for i, row in enumerate(rows):
        source = row.get("source") or what
        if not row.get("id"):
            row["id"] = f"{Path(source).stem}:{i}"
        if row.get("kind", "slop") not in KINDS:
            raise HfSteerError(f"{source}: kind {row.get('kind')!r} is unknown: use one of {', '.join(KINDS)}")
        if row.get("kind") == "keep":
            check_keep_row(row, source)
        TokenRules.from_row(row)  # raises on a bad regex, naming the file and the pattern
        validate_hyperparameters(row.get("top_k"), row.get("max_threshold"), row.get("min_threshold"), source,
                                 min_path_prob=row.get("min_path_prob"))
        if row.get("draws") is not None and row["draws"] < 1:
            raise HfSteerError(f"{source}: repeat={row['draws']} must be 1 or more: fix the file")
        if row.get("chat") and not row.get("user") and not row.get("system") and not row.get("text"):
            raise HfSteerError(f"{source}: chat context {row['id']} has no system, user or text: fill one in")
    return datasets.Dataset.from_list(list(rows), features=FEATURES)


def validate_hyperparameters(
    top_k: int | None, max_threshold: float | None, min_threshold: float | None, source: str,
    vocab_size: int | None = None, min_path_prob: float | None = None,
) -> None:
    """One clear error for top_k out of range, a threshold that is not a probability or thresholds in the wrong order."""
    probabilities = (("max_threshold", max_threshold), ("min_threshold", min_threshold), ("min_path_prob", min_path_prob))
    for name, value in (("top_k", top_k), *probabilities):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise HfSteerError(f"{source}: {name}={value!r} is not a number: fix the file")
    if top_k is not None and (top_k < 1 or (vocab_size is not None and top_k > vocab_size)):
        limit = f"1..{vocab_size}" if vocab_size else ">= 1"
        raise HfSteerError(f"{source}: top_k={top_k} is out of range: use a value in {limit}")
    for name, value in probabilities:
        if value is not None and not 0 <= value <= 1:
            raise HfSteerError(f"{source}: {name}={value} is not a probability: use a value in [0, 1]")
    if max_threshold is not None and min_threshold is not None and min_threshold >= max_threshold:
        raise HfSteerError(
            f"{source}: min_threshold={min_threshold} is not below max_threshold={max_threshold}: "
            "rewarding above the punishing line would fight itself; lower min_threshold"
        )


# --------------------------------------------------------------------------------------------- files
def _as_list(value: Any, key: str, source: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HfSteerError(f"{source}: {key} must be a list of strings: fix the file")
    return list(value)


def _text_field(doc: dict[str, Any], key: str, default: str, source: str) -> str:
    value = doc.get(key, default)
    if value is None:  # `key:` with nothing after it
        return ""
    if not isinstance(value, (str, int, float)):
        raise HfSteerError(f"{source}: {key} must be text, not {type(value).__name__}: fix the file")
    return str(value)


def _rows_from_original(doc: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """One original elarablate YAML document -> rows, read as envy-ai/elarablate's elarablate.py reads it.

    What the original does, and so what this does:

    - ``system_prompt``, ``user_prompt`` and ``response_text`` are ``.strip()``-ed: a ``response_text: |``
      block scalar ends in a newline, and left in, every candidate would start a new line. A missing
      system or user prompt is the script's default; every row is a chat (the script always applies an
      instruct template), with the response as the open assistant turn.
    - ``{a|b|...}`` groups (any non-empty braces, after stripping) are alternatives: the script draws one
      at random ``repeat`` times (default 1) per epoch. Here every combination is a row of one *group*
      with ``draws=repeat``, and the trainer's sampler draws ``repeat`` of them per epoch.
    - ``hyperparameters``: ``top_k`` and ``temperature`` as given; a missing ``max_threshold`` is
      ``1/top_k`` and a missing ``min_threshold`` is ``0.75 x max_threshold`` (the script's
      ``--max_threshold_factor 1`` and ``--min_threshold_factor 0.75``).
    - ``token_rules``: bad regexes override good ones; a candidate matching neither is *neutral* (never
      pushed, even above ``max_threshold``); ``force_good_tokens`` are good and are added to the
      candidates when outside the top-k; ``exclude_tokens`` are dropped from the candidates. Both name a
      token by the first token of the string's encoding. ``railroad`` is not read by the script: ignored.

    Keys the script does not read are an error here rather than silently ignored (a typo would
    otherwise train nothing).
    """
    unknown = sorted(set(doc) - set(ORIGINAL_KEYS))
    if unknown:
        raise HfSteerError(f"{source}: unknown key(s) {unknown} in an elarablate YAML: use {', '.join(ORIGINAL_KEYS)}")
    if "token_rules" not in doc or "response_text" not in doc:
        missing = [k for k in ("response_text", "token_rules") if k not in doc]
        raise HfSteerError(f"{source}: elarablate YAML is missing key(s) {', '.join(missing)}: add them")
    rules = doc["token_rules"] or {}
    if not isinstance(rules, dict):
        raise HfSteerError(f"{source}: token_rules must be a mapping: fix the file")
    unknown = sorted(set(rules) - set(ORIGINAL_RULE_KEYS))
    if unknown:
        raise HfSteerError(f"{source}: unknown token_rules key(s) {unknown}: use {', '.join(ORIGINAL_RULE_KEYS)}")
    if not {"bad_token_regexes", "good_token_regexes", "force_good_tokens"} & set(rules):
        raise HfSteerError(f"{source}: token_rules needs bad_token_regexes, good_token_regexes or force_good_tokens: "
                           "without them nothing is trained")
    hyper = doc.get("hyperparameters") or {}
    if not isinstance(hyper, dict):
        raise HfSteerError(f"{source}: hyperparameters must be a mapping: fix the file")
    unknown = sorted(set(hyper) - set(ORIGINAL_HYPERPARAMETERS))
    if unknown:
        raise HfSteerError(f"{source}: unknown hyperparameter(s) {unknown}: use {', '.join(ORIGINAL_HYPERPARAMETERS)}")
    repeat = doc.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise HfSteerError(f"{source}: repeat={repeat!r} must be a whole number >= 1: fix the file")
    system = _text_field(doc, "system_prompt", ORIGINAL_SYSTEM, source).strip()
    user = _text_field(doc, "user_prompt", ORIGINAL_USER, source).strip()
    response = _text_field(doc, "response_text", "", source).strip()
    texts = expand_alternations(response, source, original=True)
    grouped = len(texts) > 1 or repeat > 1
    common = dict(
        chat=True, system=system, user=user, source=source, family=Path(source).stem,
        good=_as_list(rules.get("good_token_regexes"), "good_token_regexes", source),
        bad=_as_list(rules.get("bad_token_regexes"), "bad_token_regexes", source),
        forced_good=_as_list(rules.get("force_good_tokens"), "force_good_tokens", source),
        excluded=_as_list(rules.get("exclude_tokens"), "exclude_tokens", source),
        unmatched="neutral", relative_thresholds=True,
        group=source if grouped else "", draws=repeat if grouped else None,
        top_k=hyper.get("top_k"), max_threshold=hyper.get("max_threshold"),
        min_threshold=hyper.get("min_threshold"), temperature=hyper.get("temperature"),
    )
    return [make_row(text, **common) for text in texts]


def _rows_from_ours(doc: dict[str, Any], source: str, splits: Iterable[str]) -> list[dict[str, Any]]:
    """Our YAML: shared rules/hyperparameters, then contexts per split (``keep`` rows train with ``train``)."""
    rules = doc.get("rules") or {}
    if not isinstance(rules, dict):
        raise HfSteerError(f"{source}: rules must be a mapping: fix the file")
    unknown = set(rules) - {*_LIST_KEYS, "unmatched"}
    if unknown:
        raise HfSteerError(f"{source}: unknown rule key(s) {sorted(unknown)}: use {', '.join(_LIST_KEYS)}, unmatched")
    hyper = doc.get("hyperparameters") or {}
    unknown = set(hyper) - set(_OPTIONAL_NUMBERS)
    if unknown:
        raise HfSteerError(f"{source}: unknown hyperparameter(s) {sorted(unknown)}: use {', '.join(_OPTIONAL_NUMBERS)}")
    family = doc.get("family") or Path(source).stem
    rows = []
    lists = [(split, split, "slop") for split in splits]
    if "train" in splits:
        lists.append(("keep", "train", "keep"))
    for key, split, kind in lists:
        entries = doc.get(key) or []
        if not isinstance(entries, list):
            raise HfSteerError(f"{source}: {key} must be a list of contexts: fix the file")
        for entry in entries:
            if isinstance(entry, str):
                entry = {"text": entry}
            if not isinstance(entry, dict) or "text" not in entry:
                raise HfSteerError(f"{source}: each {key} context needs a 'text' key: fix entry {entry!r:.60}")
            entry = dict(entry)
            text = str(entry.pop("text"))
            merged = {k: _as_list(entry.pop(k, rules.get(k)), k, source) for k in _LIST_KEYS}
            numbers = {k: entry.pop(k, hyper.get(k)) for k in _OPTIONAL_NUMBERS}
            chat = bool(entry.pop("chat", bool(entry.get("user") or entry.get("system"))))
            system = entry.pop("system", doc.get("system", "") if chat else "")
            user = entry.pop("user", "")
            expected = entry.pop("expected", "")
            unmatched = entry.pop("unmatched", rules.get("unmatched", ""))
            if entry:
                raise HfSteerError(f"{source}: unknown context key(s) {sorted(entry)}: use text, system, user, chat, "
                                   "expected, rules")
            for expanded in expand_alternations(text, source):
                rows.append(make_row(expanded, chat=chat, system=system, user=user, family=family, source=source,
                                     split=split, kind=kind, expected=expected, unmatched=unmatched,
                                     **merged, **numbers))
    return rows


def load_file(path: str | Path, splits: Sequence[str] = ("train",)) -> list[dict[str, Any]]:
    """Rows of one YAML/JSONL file (any of the three formats)."""
    import yaml

    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise HfSteerError(f"context file {source} does not exist: check the path or use a library name")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise HfSteerError(f"context file {source} cannot be read ({e}): check the file") from None
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as e:
                raise HfSteerError(f"{source}:{n}: line is not JSON ({e.msg}): fix the line") from None
            if not isinstance(data, dict) or "text" not in data:
                raise HfSteerError(f"{source}:{n}: each line needs a 'text' key: fix the line")
            split = data.pop("split", "train")
            if split not in splits:
                continue
            lists = {k: _as_list(data.pop(k, None), k, source) for k in _LIST_KEYS}
            try:
                for expanded in expand_alternations(str(data.pop("text")), source):
                    rows.append(make_row(expanded, source=source, split=split, **lists, **data))
            except TypeError as e:
                raise HfSteerError(f"{source}:{n}: {e}: fix the line") from None
        return rows
    if path.suffix not in (".yaml", ".yml"):
        raise HfSteerError(f"context file {source} is neither .yaml/.yml nor .jsonl: rename or convert it")
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise HfSteerError(f"{source}: not valid YAML ({str(e).splitlines()[0]}): fix the file") from None
    rows = []
    for doc in docs:
        if not isinstance(doc, dict):
            raise HfSteerError(f"{source}: expected a mapping of keys, got {type(doc).__name__}: fix the file")
        if "response_text" in doc or "token_rules" in doc:
            if "train" in splits:  # original files are training contexts
                rows.extend(_rows_from_original(doc, source))
        elif any(k in doc for k in (*SPLITS, "keep")):
            rows.extend(_rows_from_ours(doc, source, splits))
        else:
            raise HfSteerError(
                f"{source}: YAML is missing keys: give response_text + token_rules (elarablate format) "
                "or train/heldout/keep lists (hf_steer format)"
            )
    return rows


def list_library() -> list[str]:
    """Names of the built-in context families."""
    return sorted(p.stem for p in LIBRARY_DIR.glob("*.yaml"))


def resolve_source(source: str | Path) -> list[Path]:
    """A file, a folder (searched recursively, as the original does), ``library`` (all), ``library:NAME`` or a
    bare library NAME -> files."""
    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".yaml", ".yml", ".jsonl") and p.is_file())
        if not files:
            raise HfSteerError(f"context folder {path} has no .yaml/.jsonl files: add some or pass files")
        return files
    if path.exists() or path.suffix in (".yaml", ".yml", ".jsonl"):
        return [path]
    if text == "library":
        return sorted(LIBRARY_DIR.glob("*.yaml"))
    name = text.removeprefix("library:")
    candidate = LIBRARY_DIR / f"{name}.yaml"
    if candidate.is_file():
        return [candidate]
    raise HfSteerError(
        f"contexts {text!r} is neither a file nor a library family: use a path or one of {', '.join(list_library())}"
    )


def load_contexts(
    sources: str | Path | Sequence[str | Path | dict[str, Any]],
    split: str | Sequence[str] = "train",
) -> datasets.Dataset:
    """Load context rows from files, library names or row dicts into one validated Dataset.

    Args:
        sources: paths (YAML/JSONL, original elarablate YAML), folders, ``"library"``, library family
            names, or row dicts (see :func:`make_row`).
        split: which lists of our YAML files to take: ``"train"`` (default), ``"heldout"``, ``"reference"``.
    """
    if isinstance(sources, (str, Path, dict)):
        sources = [sources]
    splits = [split] if isinstance(split, str) else list(split)
    for s in splits:
        if s not in SPLITS:
            raise HfSteerError(f"split {s!r} is unknown: use one of {', '.join(SPLITS)}")
    rows: list[dict[str, Any]] = []
    for source in sources:
        if isinstance(source, dict):
            row = dict(source)
            text = row.pop("text", None)
            if text is None:
                raise HfSteerError(f"context row {source!r:.60} has no 'text': add it")
            for expanded in expand_alternations(str(text), "<row>"):
                rows.append(make_row(expanded, **row))
            continue
        for path in resolve_source(source):
            rows.extend(load_file(path, splits))
    return rows_to_dataset(rows, what=f"context set {[str(s) for s in sources]!r:.80}")


# --------------------------------------------------------------------------------------------- rendering
def render_context(row: dict[str, Any], tokenizer) -> str:
    """The exact text the model reads: raw text, or the chat rendered with the assistant turn left open."""
    if not row.get("chat"):
        return row["text"]
    if not getattr(tokenizer, "chat_template", None):
        raise HfSteerError(
            f"{row.get('source') or 'context'}: chat context {row.get('id')} needs a tokenizer with a chat "
            "template, and this one has none: name one (--chat-template gemma|chatml|FILE), use raw contexts "
            "(chat: false) or a chat model"
        )
    messages = []
    if row.get("system"):
        messages.append({"role": "system", "content": row["system"]})
    if row.get("user"):
        messages.append({"role": "user", "content": row["user"]})
    if row.get("text"):
        messages.append({"role": "assistant", "content": row["text"]})
        return tokenizer.apply_chat_template(messages, tokenize=False, continue_final_message=True)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def prompt_length(row: dict[str, Any], tokenizer, ids: list[int]) -> int:
    """How many of a chat context's tokens ``ids`` are its prompt (the template, system and user turns, up to the
    open assistant turn): the model is given them, it never writes them. 0 for raw text, or where the prompt
    rendered alone is not a prefix of the context's tokens or does not render (a template that renders the open
    turn otherwise, or refuses a prompt without a user turn)."""
    if not row.get("chat") or not row.get("text"):
        return 0
    try:
        prompt = tokenize_context({k: v for k, v in row.items() if k != "text"}, tokenizer)
    except Exception:  # a template that will not render the prompt alone (a turn order it refuses): hold it all
        return 0
    return len(prompt) if ids[: len(prompt)] == prompt else 0


def tokenize_context(row: dict[str, Any], tokenizer) -> list[int]:
    """Token ids of :func:`render_context` (special tokens only where the template put them)."""
    text = render_context(row, tokenizer)
    ids = tokenizer(text, add_special_tokens=not row.get("chat"))["input_ids"]
    if not ids:
        raise HfSteerError(
            f"{row.get('source') or 'context'}: context {row.get('id')} renders to zero tokens: give it some text"
        )
    return list(ids)

"""Contexts: where a slop token would start, and which next tokens are good or bad there.

A context set is a :class:`datasets.Dataset` with one row per context (columns in ``FEATURES``):
the text before the slop point, either raw (``chat=False``) or as the open assistant turn of a chat
(``system``, ``user``, then ``text`` as the start of the reply), plus token rules and optional per-row
hyperparameters. Files it loads:

- our YAML (``family``, ``rules``, ``hyperparameters``, ``train``/``heldout``/``reference`` lists),
- our JSONL (one row per line, keys as in ``FEATURES``),
- the ORIGINAL elarablate YAML unchanged (``system_prompt``, ``user_prompt``, ``response_text``,
  ``hyperparameters`` {temperature, top_k, max_threshold, min_threshold}, ``token_rules``
  {bad_token_regexes, good_token_regexes}).

``{a|b}`` in any text expands into one row per alternative (all groups combined).

Token rules see a token as a reader would: ``"ĠEl"`` (byte-level) and ``"▁El"`` (SentencePiece) are
both ``" El"``. Regexes written against raw markers (as in original files) are accepted too: a ``Ġ``
or ``▁`` in a pattern means a space. A token is *bad* if a bad regex matches (bad overrides good),
*good* if a good regex matches (or, when a row has no good regexes, if it is not bad), and ignored
when it is listed in ``excluded``; ``forced_good`` tokens are good whatever the regexes say.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from ..errors import HfSteerError

LIBRARY_DIR = Path(__file__).parent / "library"
SPLITS = ("train", "heldout", "reference")
_ALTERNATION = re.compile(r"\{([^{}]*\|[^{}]*)\}")
_MAX_EXPANSION = 10_000
_MARKERS = ("Ġ", "▁")

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "family": datasets.Value("string"),
        "source": datasets.Value("string"),
        "split": datasets.Value("string"),
        "chat": datasets.Value("bool"),
        "system": datasets.Value("string"),
        "user": datasets.Value("string"),
        "text": datasets.Value("string"),
        "good": datasets.List(datasets.Value("string")),
        "bad": datasets.List(datasets.Value("string")),
        "forced_good": datasets.List(datasets.Value("string")),
        "excluded": datasets.List(datasets.Value("string")),
        # None -> the trainer config's value
        "top_k": datasets.Value("int32"),
        "max_threshold": datasets.Value("float64"),
        "min_threshold": datasets.Value("float64"),
        "temperature": datasets.Value("float64"),
        # depth-2 rows (see ElarablationConfig.tree_depth): thresholds one token deeper
        "next_max_threshold": datasets.Value("float64"),
        "next_min_threshold": datasets.Value("float64"),
        # reference rows: the name a reader expects again
        "expected": datasets.Value("string"),
    }
)
_LIST_KEYS = ("good", "bad", "forced_good", "excluded")
_OPTIONAL_NUMBERS = ("top_k", "max_threshold", "min_threshold", "temperature", "next_max_threshold", "next_min_threshold")


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


@dataclass
class TokenRules:
    """Compiled good/bad rules of one row. ``prefix`` is the word so far (depth-2 rows), seen by the regexes."""

    good: list[re.Pattern] = field(default_factory=list)
    bad: list[re.Pattern] = field(default_factory=list)
    forced_good: frozenset[str] = frozenset()
    excluded: frozenset[str] = frozenset()
    prefix: str = ""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TokenRules:
        source = row.get("source") or "<contexts>"
        return cls(
            good=[compile_regex(p, source) for p in row.get("good") or []],
            bad=[compile_regex(p, source) for p in row.get("bad") or []],
            forced_good=frozenset(row.get("forced_good") or []),
            excluded=frozenset(row.get("excluded") or []),
        )

    def extended(self, token_text: str) -> TokenRules:
        """The same rules one token deeper: regexes now see ``prefix + token_text + candidate``."""
        return TokenRules(self.good, self.bad, self.forced_good, self.excluded, self.prefix + token_text)

    def classify(self, token_text: str) -> str:
        """``"good"``, ``"bad"`` or ``"excluded"`` for one candidate token (reader text)."""
        if token_text in self.excluded:
            return "excluded"
        if token_text in self.forced_good:
            return "good"
        text = self.prefix + token_text
        if any(p.search(text) for p in self.bad):
            return "bad"
        if not self.good or any(p.search(text) for p in self.good):
            return "good"
        return "bad"


# --------------------------------------------------------------------------------------------- expansion
def expand_alternations(text: str, source: str = "<contexts>") -> list[str]:
    """``"a {big|small} {elf|dwarf}"`` -> the four combinations, in order."""
    parts = _ALTERNATION.split(text)
    # split() with one group alternates literal, group, literal, ...
    options = [[p] if i % 2 == 0 else p.split("|") for i, p in enumerate(parts)]
    count = 1
    for o in options:
        count *= len(o)
    if count > _MAX_EXPANSION:
        raise HfSteerError(f"{source}: {text[:60]!r} expands to {count} rows (> {_MAX_EXPANSION}): use fewer {{a|b}} groups")
    return ["".join(combo) for combo in itertools.product(*options)]


# --------------------------------------------------------------------------------------------- rows
def make_row(
    text: str,
    *,
    good: Sequence[str] = (),
    bad: Sequence[str] = (),
    forced_good: Sequence[str] = (),
    excluded: Sequence[str] = (),
    chat: bool = False,
    system: str = "",
    user: str = "",
    family: str = "",
    source: str = "<python>",
    split: str = "train",
    id: str | None = None,
    expected: str = "",
    **numbers: float | int | None,
) -> dict[str, Any]:
    """One context row with every column of ``FEATURES`` (unknown keys are an error)."""
    unknown = set(numbers) - set(_OPTIONAL_NUMBERS)
    if unknown:
        raise HfSteerError(f"{source}: unknown context key(s) {sorted(unknown)}: use {', '.join(FEATURES)}")
    row = {
        "id": id or "", "family": family, "source": source, "split": split, "chat": bool(chat),
        "system": system or "", "user": user or "", "text": text, "good": list(good), "bad": list(bad),
        "forced_good": list(forced_good), "excluded": list(excluded), "expected": expected or "",
    }
    for key in _OPTIONAL_NUMBERS:
        row[key] = numbers.get(key)
    return row


def rows_to_dataset(rows: Sequence[dict[str, Any]], what: str = "context set") -> datasets.Dataset:
    """Validate rows (regexes, thresholds, top_k) and wrap them as a Dataset."""
    if not rows:
        raise HfSteerError(f"{what} is empty: pass at least one context file, library name or row")
    for i, row in enumerate(rows):
        source = row.get("source") or what
        if not row.get("id"):
            row["id"] = f"{Path(source).stem}:{i}"
        TokenRules.from_row(row)  # raises on a bad regex, naming the file and the pattern
        validate_hyperparameters(row.get("top_k"), row.get("max_threshold"), row.get("min_threshold"), source)
        if row.get("chat") and not row.get("user") and not row.get("system") and not row.get("text"):
            raise HfSteerError(f"{source}: chat context {row['id']} has no system, user or text: fill one in")
    return datasets.Dataset.from_list(list(rows), features=FEATURES)


def validate_hyperparameters(
    top_k: int | None, max_threshold: float | None, min_threshold: float | None, source: str,
    vocab_size: int | None = None,
) -> None:
    """One clear error for top_k out of range or thresholds in the wrong order."""
    if top_k is not None and (top_k < 1 or (vocab_size is not None and top_k > vocab_size)):
        limit = f"1..{vocab_size}" if vocab_size else ">= 1"
        raise HfSteerError(f"{source}: top_k={top_k} is out of range: use a value in {limit}")
    for name, value in (("max_threshold", max_threshold), ("min_threshold", min_threshold)):
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


def _rows_from_original(doc: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """One original elarablate YAML document -> rows (chat if it has a system or user prompt)."""
    missing = [k for k in ("response_text", "token_rules") if k not in doc]
    if missing:
        raise HfSteerError(f"{source}: elarablate YAML is missing key(s) {', '.join(missing)}: add them")
    rules = doc["token_rules"] or {}
    if not isinstance(rules, dict) or not ({"bad_token_regexes", "good_token_regexes"} & set(rules)):
        raise HfSteerError(f"{source}: token_rules needs bad_token_regexes and/or good_token_regexes: add them")
    hyper = doc.get("hyperparameters") or {}
    system, user = doc.get("system_prompt") or "", doc.get("user_prompt") or ""
    rows = []
    for text in expand_alternations(str(doc["response_text"]), source):
        rows.append(make_row(
            text, chat=bool(system or user), system=system, user=user, source=source,
            good=_as_list(rules.get("good_token_regexes"), "good_token_regexes", source),
            bad=_as_list(rules.get("bad_token_regexes"), "bad_token_regexes", source),
            family=Path(source).stem,
            top_k=hyper.get("top_k"), max_threshold=hyper.get("max_threshold"),
            min_threshold=hyper.get("min_threshold"), temperature=hyper.get("temperature"),
        ))
    return rows


def _rows_from_ours(doc: dict[str, Any], source: str, splits: Iterable[str]) -> list[dict[str, Any]]:
    """Our YAML: shared rules/hyperparameters, then contexts per split."""
    rules = doc.get("rules") or {}
    hyper = doc.get("hyperparameters") or {}
    unknown = set(hyper) - set(_OPTIONAL_NUMBERS)
    if unknown:
        raise HfSteerError(f"{source}: unknown hyperparameter(s) {sorted(unknown)}: use {', '.join(_OPTIONAL_NUMBERS)}")
    family = doc.get("family") or Path(source).stem
    rows = []
    for split in splits:
        for entry in doc.get(split) or []:
            if isinstance(entry, str):
                entry = {"text": entry}
            if not isinstance(entry, dict) or "text" not in entry:
                raise HfSteerError(f"{source}: each {split} context needs a 'text' key: fix entry {entry!r:.60}")
            entry = dict(entry)
            text = str(entry.pop("text"))
            merged = {k: _as_list(entry.pop(k, rules.get(k)), k, source) for k in _LIST_KEYS}
            numbers = {k: entry.pop(k, hyper.get(k)) for k in _OPTIONAL_NUMBERS}
            chat = bool(entry.pop("chat", bool(entry.get("user") or entry.get("system"))))
            system = entry.pop("system", doc.get("system", "") if chat else "")
            user = entry.pop("user", "")
            expected = entry.pop("expected", "")
            if entry:
                raise HfSteerError(f"{source}: unknown context key(s) {sorted(entry)}: use text, system, user, chat, rules")
            for expanded in expand_alternations(text, source):
                rows.append(make_row(expanded, chat=chat, system=system, user=user, family=family, source=source,
                                     split=split, expected=expected, **merged, **numbers))
    return rows


def load_file(path: str | Path, splits: Sequence[str] = ("train",)) -> list[dict[str, Any]]:
    """Rows of one YAML/JSONL file (any of the three formats)."""
    import yaml

    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise HfSteerError(f"context file {source} does not exist: check the path or use a library name")
    text = path.read_text(encoding="utf-8")
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
            for expanded in expand_alternations(str(data.pop("text")), source):
                rows.append(make_row(expanded, source=source, split=split, **lists, **data))
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
        elif any(k in doc for k in SPLITS):
            rows.extend(_rows_from_ours(doc, source, splits))
        else:
            raise HfSteerError(
                f"{source}: YAML is missing keys: give response_text + token_rules (elarablate format) "
                "or train/heldout lists (hf_steer format)"
            )
    return rows


def list_library() -> list[str]:
    """Names of the built-in context families."""
    return sorted(p.stem for p in LIBRARY_DIR.glob("*.yaml"))


def resolve_source(source: str | Path) -> list[Path]:
    """A file, a folder of files, ``library`` (all), ``library:NAME`` or a bare library NAME -> files."""
    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".jsonl"))
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
            "template, and this one has none: use raw contexts (chat: false) or a chat model"
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


def tokenize_context(row: dict[str, Any], tokenizer) -> list[int]:
    """Token ids of :func:`render_context` (special tokens only where the template put them)."""
    text = render_context(row, tokenizer)
    ids = tokenizer(text, add_special_tokens=not row.get("chat"))["input_ids"]
    if not ids:
        raise HfSteerError(
            f"{row.get('source') or 'context'}: context {row.get('id')} renders to zero tokens: give it some text"
        )
    return list(ids)

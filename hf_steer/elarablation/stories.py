"""Free stories: prompt sets, batched generation, and the story-level figures.

Prompt sets are YAML files with ``train``/``heldout``/``sealed`` lists (``prompts/stories.yaml`` ships
with hf_steer; ``chat: true`` means each prompt is a user message and the model needs a chat template)
or plain text files, one prompt per line. ``NAME[:SPLIT]`` names a shipped set.

Figures of a list of stories (:func:`story_figures`):

- ``slop_index``: EQ-Bench's public formula, (slop-list word hits + 2 x bigram hits + 8 x trigram hits)
  per 1,000 words over alphanumeric lower-cased words. EQ-Bench's own lists are not shipped here; the
  lists are the antislop lists of the same author (``data/slop_words_2025-04-07.json``, 2,000 words;
  bigrams are the 2-word windows of ``data/slop_phrases_2025-04-07.json`` without a stopword, trigrams
  its 3-word windows with at most one: "took a" from "took a deep breath" is no slop bigram, "deep
  breath" is, and "a deep breath" a trigram);
- ``distinct_2``: distinct word bigrams / all word bigrams (over all stories together);
- ``looping``: share of stories in which some word 4-gram occurs 3 or more times;
- per pattern: occurrences per 1,000 words (:func:`pattern_rate`), and ``slop_index_without_patterns``:
  the slop index with every hit that overlaps a pattern's occurrence taken out -- the lowest index that
  training those patterns out, and changing nothing else, can reach (on the bundled model's held-out
  stories, the 40 patterns `auto` finds in its 136 stories hold a quarter of the index: 150 -> 113).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import HfSteerError

PROMPTS_DIR = Path(__file__).parent / "prompts"
DATA_DIR = Path(__file__).parent / "data"
PROMPT_SPLITS = ("train", "heldout", "sealed")
_ALNUM = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# NLTK's English stopwords (the list EQ-Bench's tools use), lower-case.
STOPWORDS = frozenset("""i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself
yourselves he him his himself she she's her hers herself it it's its itself they them their theirs themselves what
which who whom this that that'll these those am is are was were be been being have has had having do does did doing
a an the and but if or because as until while of at by for with about against between into through during before
after above below to from up down in out on off over under again further then once here there when where why how all
any both each few more most other some such no nor not only own same so than too very s t can will just don don't
should should've now d ll m o re ve y ain aren aren't couldn couldn't didn didn't doesn doesn't hadn hadn't hasn
hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't shan shan't shouldn shouldn't wasn
wasn't weren weren't won won't wouldn wouldn't""".split())


# ------------------------------------------------------------------------------------------ prompts
def load_prompts(spec: str) -> tuple[list[str], bool]:
    """``(prompts, chat)`` of ``NAME[:SPLIT]`` (a shipped set, default split ``train``) or a file.

    A YAML file holds ``chat`` and lists per split (or one ``prompts`` list); a ``.txt`` file is one prompt
    per line, for a chat model.
    """
    import yaml

    text = str(spec)
    name, _, split = text.partition(":")
    if Path(text).is_file():
        name, split = text, ""
    path = Path(name).expanduser()
    if not path.is_file():
        path = PROMPTS_DIR / f"{name}.yaml"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in PROMPTS_DIR.glob("*.yaml")))
        raise HfSteerError(f"prompts {text!r} is neither a file nor a shipped set: use a path or one of {shipped}")
    if path.suffix == ".txt":
        prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        chat = True
    else:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise HfSteerError(f"{path}: not valid YAML ({str(e).splitlines()[0]}): fix the file") from None
        if isinstance(doc, list):
            doc = {"prompts": doc}
        if not isinstance(doc, dict):
            raise HfSteerError(f"{path}: expected `chat` and lists of prompts per split: fix the file")
        chat = bool(doc.get("chat", True))
        key = split or ("train" if "train" in doc else "prompts")
        if key not in doc:
            splits = [k for k, v in doc.items() if isinstance(v, list)]
            raise HfSteerError(f"{path} has no {key!r} list of prompts: use one of {', '.join(splits) or 'none'}")
        prompts = doc[key]
        if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
            raise HfSteerError(f"{path}: {key} must be a list of prompt strings: fix the file")
        # a plain opening keeps its own whitespace ("...story.\n\n" ends where the story begins)
        prompts = [p.strip() if chat else p for p in prompts if p.strip()]
    if not prompts:
        raise HfSteerError(f"prompt set {text!r} has no prompts: add at least one")
    return prompts, chat


def render_prompt(tokenizer, prompt: str, chat: bool) -> str:
    """The text the model continues: the chat with an open assistant turn, or the prompt itself."""
    if not chat:
        return prompt
    if not getattr(tokenizer, "chat_template", None):
        raise HfSteerError("these prompts are chat requests and the model's tokenizer has no chat template: name one "
                           "(--chat-template gemma|chatml|FILE) or use plain prompts (--prompts openings)")
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)


# ------------------------------------------------------------------------------------------ generation
def generate_stories(model, tokenizer, prompts: Sequence[str], chat: bool, per_prompt: int, max_new_tokens: int,
                     temperature: float, seed: int, batch_size: int = 128, desc: str = "stories",
                     done: Sequence[dict] = (), on_batch: Callable[[list[dict]], None] | None = None,
                     bf16: bool = False) -> list[dict]:
    """``per_prompt`` stories for each prompt, sampled at ``temperature`` (plain ancestral sampling, drawn by
    :class:`~hf_steer.elarablation.sampling.InverseCdfSampling`); ``bf16``: the forwards under bf16 autocast.

    The stories are split into equal batches of at most ``batch_size``. Each batch is seeded with ``seed``
    and its index (a different batch size draws other stories), so a run cut short and resumed (``done`` holds the
    stories already written, ``on_batch`` saves each new batch) writes the same stories. A story is
    ``{"prompt_id", "prompt", "sample", "text", "ids"}`` (``ids``: the generated token ids).
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import LogitsProcessorList

    from .sampling import InverseCdfSampling

    jobs = [(i, p, s) for i, p in enumerate(prompts) for s in range(per_prompt)]
    have = {(d["prompt_id"], d["sample"]) for d in done}
    stories = list(done)
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stops = {t for t in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<end_of_turn>")) if isinstance(t, int)}
    # equal batches of at most batch_size: 136 stories at 128 are two of 68, not 128 and a slow tail of 8 that
    # takes as many decoding steps (bundled model, 2 cores, do_sample=True: batch 32 wrote 165 tokens a second, 68
    # 194, 102 210)
    size = math.ceil(len(jobs) / math.ceil(len(jobs) / batch_size)) if jobs else batch_size
    batches = [jobs[k:k + size] for k in range(0, len(jobs), size)]
    was_training = model.training
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        for b, batch in enumerate(tqdm(batches, desc=desc, unit="batch")):
            if all((i, s) in have for i, _, s in batch):
                continue
            texts = [render_prompt(tokenizer, p, chat) for _, p, _ in batch]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not chat).to(device)
            # the draw is InverseCdfSampling's (do_sample=True spent a fifth of the time drawing random numbers)
            sampler = LogitsProcessorList([InverseCdfSampling(temperature, seed * 100_003 + b)])
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out = model.generate(**enc, do_sample=False, logits_processor=sampler, max_new_tokens=max_new_tokens,
                                     pad_token_id=pad, eos_token_id=sorted(stops) or None)
            new = []
            for (i, p, s), row in zip(batch, out[:, enc["input_ids"].shape[1]:].tolist()):
                if (i, s) in have:  # written before a kill: the whole batch is drawn again (same seed), kept once
                    continue
                ids = []
                for t in row:
                    if t in stops:
                        break
                    ids.append(t)
                new.append({"prompt_id": i, "prompt": p, "sample": s,
                            "text": tokenizer.decode(ids, skip_special_tokens=True), "ids": ids})
            stories += new
            if on_batch is not None:
                on_batch(new)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return sorted(stories, key=lambda d: (d["prompt_id"], d["sample"]))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Rows of a JSONL file (a last line cut by a kill is dropped: it is written again on resume)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def append_jsonl(path: str | os.PathLike, rows: Sequence[dict]) -> None:
    """Append rows and flush them to disk (a resumable stage's progress)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


# ------------------------------------------------------------------------------------------ figures
def words(text: str) -> list[str]:
    """Lower-cased alphanumeric words (an apostrophe suffix stays: "didn't", "elara's")."""
    return _ALNUM.findall(text.lower())


_ALNUM_ANY_CASE = re.compile(_ALNUM.pattern, re.IGNORECASE)


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """The words of :func:`words` with where each stands in ``text``: ``(lower-cased word, start, end)``."""
    return [(m.group(0).lower(), m.start(), m.end()) for m in _ALNUM_ANY_CASE.finditer(text)]


@lru_cache(maxsize=1)
def slop_lists() -> tuple[frozenset, frozenset, frozenset]:
    """``(words, bigrams, trigrams)`` for the slop index (see the module docstring)."""
    slop_words = frozenset(w.lower() for w, _ in json.loads((DATA_DIR / "slop_words_2025-04-07.json").read_text()))
    bigrams, trigrams = set(), set()
    for phrase, _ in json.loads((DATA_DIR / "slop_phrases_2025-04-07.json").read_text()):
        tokens = words(phrase)
        for n, into, most in ((2, bigrams, 0), (3, trigrams, 1)):
            for k in range(len(tokens) - n + 1):
                gram = tokens[k:k + n]
                if sum(t in STOPWORDS for t in gram) <= most:
                    into.add(" ".join(gram))
    return slop_words, frozenset(bigrams), frozenset(trigrams)


def _hold_list_entries(spec: str) -> frozenset[tuple[str, ...]]:
    """Every entry of ``hold_let_go_words`` as its lower-cased words: ``"antislop"`` (the slop index's word list, and its
    bigrams and trigrams) or a text file with one word or phrase per line (blank lines and ``#`` comments skipped)."""
    if spec == "antislop":
        slop_words, bigrams, trigrams = slop_lists()
        return frozenset({(w,) for w in slop_words} | {tuple(g.split()) for g in bigrams | trigrams})
    path = Path(spec)
    if not path.is_file():
        raise HfSteerError(f"hold_let_go_words {spec!r} is not a file: give a file with one word or phrase per line, "
                           "or 'antislop'")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise HfSteerError(f"hold_let_go_words {spec}: the file is not UTF-8 text: save it as UTF-8") from None
    listed = frozenset(tuple(words(line)) for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if not any(listed):
        raise HfSteerError(f"hold_let_go_words {spec}: the file has no words: write one word or phrase per line")
    return listed - {()}


def hold_word_list(spec: str) -> frozenset[str]:
    """The lower-cased one-word entries of ``hold_let_go_words`` (see :func:`hold_phrase_list` for the others)."""
    return frozenset(entry[0] for entry in _hold_list_entries(spec) if len(entry) == 1)


def hold_phrase_list(spec: str) -> frozenset[tuple[str, ...]]:
    """The entries of ``hold_let_go_words`` of several words (``"antislop"``: the bigrams and trigrams the slop index
    counts), each as its lower-cased words: the hold lets a phrase's last word go after the others."""
    return frozenset(entry for entry in _hold_list_entries(spec) if len(entry) > 1)


def slop_index(texts: Sequence[str], without: Sequence[str] = ()) -> dict[str, float]:
    """EQ-Bench's slop index over all ``texts`` together, with its parts.

    ``without``: word or phrase patterns whose occurrences are taken out first (a hit that overlaps one is
    not counted; the text's word count is unchanged): the index the stories would have without them.
    """
    slop_words, bigrams, trigrams = slop_lists()
    removed = [words(p) for p in without]
    hits = Counter()
    total = 0
    for text in texts:
        tokens = words(text)
        total += len(tokens)
        covered = [False] * len(tokens)
        for gram in filter(None, removed):
            for k in range(len(tokens) - len(gram) + 1):
                if tokens[k:k + len(gram)] == gram:
                    covered[k:k + len(gram)] = [True] * len(gram)
        for n, grams, name in ((1, slop_words, "word"), (2, bigrams, "bigram"), (3, trigrams, "trigram")):
            hits[name] += sum(" ".join(tokens[k:k + n]) in grams and not any(covered[k:k + n])
                              for k in range(len(tokens) - n + 1))
    score = hits["word"] + 2 * hits["bigram"] + 8 * hits["trigram"]
    return {"slop_index": 1000 * score / total if total else 0.0, "word_hits": hits["word"],
            "bigram_hits": hits["bigram"], "trigram_hits": hits["trigram"], "words": total}


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct word n-grams / all word n-grams, over all texts together."""
    grams = [tuple(ws[k:k + n]) for ws in map(words, texts) for k in range(len(ws) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repeat_ends(ws: Sequence[str], n: int = 4, times: int = 3) -> list[int]:
    """Indexes of the words that write a word ``n``-gram for the ``times``-th time, in order."""
    seen: Counter = Counter()
    ends = []
    for k in range(len(ws) - n + 1):
        gram = tuple(ws[k:k + n])
        seen[gram] += 1
        if seen[gram] == times:
            ends.append(k + n - 1)
    return ends


def loops(text: str, n: int = 4, times: int = 3) -> bool:
    """Some word ``n``-gram occurs ``times`` or more times in the text."""
    return bool(repeat_ends(words(text), n, times))


def pattern_regex(pattern: str) -> re.Pattern:
    """A whole-word, case-insensitive regex for a word or phrase pattern ("whispered", "a testament to")."""
    parts = [re.escape(w) for w in pattern.split()]
    return re.compile(r"(?<![A-Za-z'])" + r"\s+".join(parts) + r"(?![A-Za-z])", re.IGNORECASE)


def pattern_rate(texts: Sequence[str], pattern: str) -> float:
    """Occurrences of ``pattern`` per 1,000 words."""
    rx = pattern_regex(pattern)
    total = sum(len(words(t)) for t in texts)
    return 1000 * sum(len(rx.findall(t)) for t in texts) / total if total else 0.0


def story_figures(texts: Sequence[str], patterns: Sequence[str] = ()) -> dict[str, Any]:
    """Every story-level figure of ``texts`` (see the module docstring)."""
    figures = slop_index(texts)
    figures.update({
        "distinct_2": distinct_n(texts, 2),
        "looping": sum(loops(t) for t in texts) / len(texts) if texts else 0.0,
        "stories": len(texts),
        "mean_words": figures["words"] / len(texts) if texts else 0.0,
    })
    if patterns:
        rates = {p: pattern_rate(texts, p) for p in patterns}
        figures["pattern_rates"] = rates
        # how many stories use each: one story that loops on a name ("Aria, Aria, Aria, ...") can hold most of a
        # rate per 1,000 words, which then reads like the model writing the name everywhere
        figures["pattern_stories"] = {p: sum(bool(pattern_regex(p).search(t)) for t in texts) for p in patterns}
        figures["patterns_per_1k_words"] = sum(rates.values())
        # the most that removing these patterns, and nothing else, could do to the slop index
        figures["slop_index_without_patterns"] = slop_index(texts, without=patterns)["slop_index"]
    return figures


def change_intervals(before: Sequence[dict], after: Sequence[dict], patterns: Sequence[str] = (), draws: int = 1000,
                     level: float = 0.9, seed: int = 0) -> dict[str, tuple[float, float]]:
    """How far the relative changes of the slop index and of the patterns' rate could be a draw of the stories:
    their ``level`` interval when the prompts are drawn again with replacement (a prompt's before and after stories
    together: stories of one prompt share its topic, so the prompt is the unit), ``draws`` times.

    ``before`` / ``after``: story rows with ``prompt_id`` and ``text``. Returns ``{"slop_index": (low, high),
    "patterns": (low, high)}`` (``patterns`` only when given). On the bundled model, one training on a user's 10
    held-out prompts read slop index +26% on 30 stories and -25% on 100 (``docs/elarablation.md``, "Judged on enough
    stories"): a report says how wide its draw is.
    """
    import numpy as np

    rxs = [pattern_regex(p) for p in patterns]

    def per_prompt(rows: Sequence[dict]) -> dict[Any, np.ndarray]:
        out: dict[Any, np.ndarray] = {}
        for row in rows:
            part = slop_index([row["text"]])
            hits = part["word_hits"] + 2 * part["bigram_hits"] + 8 * part["trigram_hits"]
            found = sum(len(rx.findall(row["text"])) for rx in rxs)
            out[row["prompt_id"]] = out.get(row["prompt_id"], np.zeros(3)) + (hits, found, part["words"])
        return out

    b, a = per_prompt(before), per_prompt(after)
    ids = sorted(set(b) & set(a), key=str)
    if not ids:
        return {}
    sums = np.stack([np.stack([b[i] for i in ids]), np.stack([a[i] for i in ids])])  # (2, prompts, 3)
    picks = np.random.default_rng(seed).integers(0, len(ids), size=(draws, len(ids)))
    drawn = sums[:, picks].sum(axis=2)  # (2, draws, 3)
    rates = drawn[..., :2] / np.maximum(drawn[..., 2:], 1)  # per word: (2, draws, 2)
    with np.errstate(divide="ignore", invalid="ignore"):  # a draw with none before: no change, or an infinite rise
        change = np.where(rates[0] > 0, rates[1] / rates[0] - 1, np.where(rates[1] > 0, np.inf, 0.0))
    tail = (1 - level) / 2
    names = ("slop_index", "patterns")[: 2 if patterns else 1]
    return {name: tuple(float(v) for v in np.quantile(change[:, k], (tail, 1 - tail), method="nearest"))
            for k, name in enumerate(names)}


def judge_perplexity(judge, tokenizer, texts: Sequence[str], batch_size: int = 8, max_tokens: int = 512) -> float:
    """Perplexity of the stories under a judge model (token-weighted, each story read on its own)."""
    import math

    import torch

    device = next(judge.parameters()).device
    nll = count = 0.0
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        for k in range(0, len(texts), batch_size):
            batch = [t for t in texts[k:k + batch_size] if t.strip()]
            if not batch:
                continue
            enc = tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=max_tokens).to(device)
            with torch.no_grad():
                logits = judge(**enc).logits[:, :-1].float()
            target = enc["input_ids"][:, 1:]
            mask = enc["attention_mask"][:, 1:].bool()
            lp = torch.log_softmax(logits, dim=-1).gather(2, target[..., None])[..., 0]
            nll -= float(lp[mask].sum())
            count += float(mask.sum())
    finally:
        tokenizer.padding_side = side
    return math.exp(nll / count) if count else float("nan")

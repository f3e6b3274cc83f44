"""Auto-discovery: which words, names and phrases does a model over-use, and where would we train them out?

The model writes stories for a prompt set (:mod:`~hf_steer.elarablation.stories`); then, as the
Antislop authors do, each word is compared with its frequency in human text, from the ``wordfreq``
package (Speer 2022: Wikipedia, subtitles, books, news, web text):

- **words and names**: ratio = (the model's rate + ε) / (the human rate + ε), ε = 1e-7. A word counts
  only when it appears in stories of at least ``min_stories`` different prompts (a word from one
  story's topic, "mermaid" for the mermaid prompt, is not slop) and at least 5x more often than in
  human text when it is on the antislop list of over-used words, 50x otherwise (any story uses "began",
  "stood", "small" 10-40x more than web and news text: see ``MIN_RATIO_UNLISTED``). A word written
  capitalised in the middle of a sentence (four times in five), or one only ever seen opening sentences
  and rarer than one in a million human words, is a *name*.
  Words on the antislop list of over-used words get their score doubled.
- **phrases** (2-3 words, inside a sentence): the human rate of a phrase is its rate in public-domain
  prose shipped with hf_steer (``data/reference_prose.txt.gz``: Shakespeare's plays, public domain), or, when the prose lacks it, the product
  of its words' human rates times 1,000 (a loose upper bound on how often words go together). Phrases
  made only of stopwords, and phrases containing a word already chosen, are skipped. A phrase is
  trained where it turns into slop: before its most over-represented word *transition* ("voice barely
  above": before "barely"; "a testament to": before "testament") into a word outside the ~1,000
  commonest English ones; a phrase with no such word ("one day", "that could") is grammar, not trained.

Patterns are ranked by excess occurrences x log(ratio) (frequent and strongly over-used first); the top
ones become **contexts**: the model's own generations cut at the token where the pattern's word starts
(the pattern's word is bad there, every other candidate good, the other chosen words and names bad too;
a phrase's word only inside its phrase). The bad rule
is the *whole word* (``bad_words``), never its first letters: " tow" for "towering" is decided one
token deeper, so " town" stays free. The summary says what was kept and why, and what was dropped.

**Loops** (``loop_contexts``): the stories are also cut where they start to loop -- a word 4-gram written a third
time, the story bench's looping rule -- at the loop's first lower-case word that is not a stopword; the looping word
is bad there, with the patterns' words. Every stronger deslop made the held-out stories loop more (the model's mass
moved off slop words and onto what it had just written); these contexts push against that where the model's own
stories already do it.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import HfSteerError
from .stories import STOPWORDS, repeat_ends, word_spans

DATA_DIR = Path(__file__).parent / "data"
EPSILON = 1e-7
MIN_RATIO = 5.0
# A word not on the antislop list must be this much over its human rate. Measured on the bundled model's
# 136 stories (issue 16 bench): at 5x the top 40 held 'small' x10, 'town' x19, 'began' x21, 'stood' x37,
# 'named' x41 -- narrative vocabulary any story uses more than wordfreq's web/news/subtitle mix -- and
# training them out raised the judge's perplexity of held-out stories by 75%. Listed words keep 5x.
MIN_RATIO_UNLISTED = 50.0
# A phrase is trained before a word rarer than this in human text (zipf < 5, outside the ~1,000 commonest
# English words). Cutting at ' day' ("one day"), ' could' ("that could") or ' air' ("the air") made the
# whole-word ban fall on words every text needs.
COMMON_WORD_RATE = 1e-4
PHRASE_INDEPENDENCE = 1000.0
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'\-]*|[.!?;:\n\"“”]")
_SENTENCE_END = set(".!?;:\n\"“”")


def human_rate(word: str) -> float:
    """How often a word occurs in human English text (``wordfreq``), lower-cased."""
    try:
        from wordfreq import word_frequency
    except ImportError:
        raise HfSteerError("discovery needs the wordfreq package (human word frequencies): pip install wordfreq") from None
    return word_frequency(word.lower(), "en")


def _prose_counts() -> tuple[Counter, int]:
    """Counts of lower-cased word bigrams and trigrams in the shipped public-domain prose."""
    import gzip

    text = gzip.decompress((DATA_DIR / "reference_prose.txt.gz").read_bytes()).decode("utf-8")
    counts: Counter = Counter()
    total = 0
    for sentence in _sentences(text):
        ws = [w.lower() for w in sentence]
        total += len(ws)
        for n in (2, 3):
            counts.update(" ".join(ws[k:k + n]) for k in range(len(ws) - n + 1))
    return counts, total


def _sentences(text: str) -> list[list[str]]:
    """Words of each sentence (a sentence ends at . ! ? ; : a newline or a quote mark)."""
    out, current = [], []
    for token in _TOKEN.findall(text):
        if token in _SENTENCE_END:
            if current:
                out.append(current)
            current = []
        else:
            current.append(token)
    if current:
        out.append(current)
    return out


def possessive_stem(word: str) -> str:
    """A possessive is its word ("Elara's" -> "Elara", "ship's" -> "ship").

    The pattern regexes match a word before its "'s" (``stories.pattern_regex``), so counting "Elara's" apart
    listed the name twice (bundled model, 120 stories of a user's prompts: 'Elara' and "Elara's" both kept, each
    use of the possessive counted in both) and judged "ship's" (wordfreq 3.6e-6) apart from "ship" (8.5e-5).
    """
    return word[:-2] if len(word) > 2 and word[-2:].lower() == "'s" else word


def word_statistics(stories: Sequence[dict]) -> dict[str, dict[str, Any]]:
    """Per lower-cased word (a possessive counted as its word): occurrences, distinct prompts and stories, share
    written capitalised mid-sentence."""
    stats: dict[str, dict[str, Any]] = defaultdict(lambda: {"count": 0, "prompts": set(), "stories": set(), "capital": 0})
    for story in stories:
        key = (story["prompt_id"], story["sample"])
        for sentence in _sentences(story["text"]):
            for position, word in enumerate(map(possessive_stem, sentence)):
                entry = stats[word.lower()]
                entry["count"] += 1
                entry["prompts"].add(story["prompt_id"])
                entry["stories"].add(key)
                entry["capital"] += position > 0 and word[0].isupper()
                entry.setdefault("upper", 0)
                entry["upper"] += word[0].isupper()
                entry.setdefault("mid", 0)
                entry["mid"] += position > 0
    return stats


def _slop_words() -> set[str]:
    return {w.lower() for w, _ in json.loads((DATA_DIR / "slop_words_2025-04-07.json").read_text())}


def _slop_phrases() -> list[str]:
    return [p.lower() for p, _ in json.loads((DATA_DIR / "slop_phrases_2025-04-07.json").read_text())]


def rank_patterns(stories: Sequence[dict], top: int, min_stories: int) -> tuple[list[dict], list[str]]:
    """``(patterns, notes)``: every over-used word, name and phrase, most over-used first, and a line per near miss.

    ``min_stories`` is the number of different *prompts* whose stories must contain the pattern; ``top``
    bounds the words considered when skipping phrases that contain a chosen word (the first ``top``
    patterns that get contexts are trained: :func:`context_documents`).
    """
    stats = word_statistics(stories)
    total = sum(e["count"] for e in stats.values()) or 1
    slop_words = _slop_words()
    notes: list[str] = []
    candidates, dropped = [], []
    for word, e in stats.items():
        if word in STOPWORDS or len(word) < 2:
            continue
        human = human_rate(word)
        ratio = (e["count"] / total + EPSILON) / (human + EPSILON)
        if ratio < (MIN_RATIO if word in slop_words else MIN_RATIO_UNLISTED):
            continue
        mid = e.get("mid", 0)
        # a name: capitalised mid-sentence (4 times in 5), or only ever seen opening sentences and rare in English
        is_name = e["capital"] >= 0.8 * mid if mid else (e["upper"] == e["count"] and human < 1e-6)
        excess = e["count"] - human * total
        entry = {"kind": "name" if is_name else "word", "text": word.capitalize() if is_name else word,
                 "cut": word.capitalize() if is_name else word, "count": e["count"], "prompts": len(e["prompts"]),
                 "stories": len(e["stories"]), "ratio": ratio, "human_per_1k": 1000 * human,
                 "slop_list": word in slop_words}
        if len(e["prompts"]) < min_stories:
            if e["count"] >= 3 and ratio >= 20:
                dropped.append(entry)
            continue
        entry["score"] = max(excess, 0.0) * math.log(ratio) * (2.0 if entry["slop_list"] else 1.0)
        candidates.append(entry)
    if dropped:
        dropped.sort(key=lambda c: -c["count"])
        notes.append(f"dropped {len(dropped)} words seen in stories of fewer than --min-stories {min_stories} prompts "
                     "(a topic, not a habit): " + ", ".join(f"{d['text']!r} x{d['count']} in {d['prompts']}"
                                                              for d in dropped[:8]))
    candidates.sort(key=lambda c: -c["score"])
    chosen_words = {c["text"].lower() for c in candidates[:top]}
    phrases = _rank_phrases(stories, total, stats, min_stories, chosen_words)
    merged = sorted(candidates + phrases, key=lambda c: -c["score"])
    patterns, cuts = [], {}
    for entry in merged:
        if entry["cut"].lower() in cuts:
            notes.append(f"merged {entry['kind']} {entry['text']!r} into the {cuts[entry['cut'].lower()]} already "
                         f"trained at {entry['cut']!r}")
            continue
        patterns.append(entry)
        cuts[entry["cut"].lower()] = f"{entry['kind']} {entry['text']!r}"
    return patterns, notes


def _rank_phrases(stories, total: int, stats, min_stories: int, chosen_words: set[str]) -> list[dict]:
    """Over-used 2-3 word phrases (see the module docstring)."""
    prose, prose_total = _prose_counts()
    listed = _slop_phrases()
    counts: Counter = Counter()
    prompts: dict[str, set] = defaultdict(set)
    for story in stories:
        for sentence in _sentences(story["text"]):
            ws = [w.lower() for w in sentence]
            for n in (2, 3):
                for k in range(len(ws) - n + 1):
                    gram = ws[k:k + n]
                    if all(w in STOPWORDS for w in gram) or any(possessive_stem(w) in chosen_words for w in gram):
                        continue
                    key = " ".join(gram)
                    counts[key] += 1
                    prompts[key].add(story["prompt_id"])
    human_cache: dict[str, float] = {}

    def human(word: str) -> float:
        if word not in human_cache:
            human_cache[word] = human_rate(word)
        return human_cache[word]

    def phrase_human(key: str) -> float:
        if prose[key]:
            return prose[key] / prose_total
        return PHRASE_INDEPENDENCE * math.prod(human(w) for w in key.split())

    out = []
    for key, count in counts.items():
        if count < 3 or len(prompts[key]) < min_stories:
            continue
        h = phrase_human(key)
        ratio = (count / total + EPSILON) / (h + EPSILON)
        if ratio < MIN_RATIO:
            continue
        ws = key.split()
        # where the phrase turns into slop: the most over-represented transition (w[i-1] -> w[i]) into a word
        # that is neither a stopword nor one of the commonest English words (see COMMON_WORD_RATE)
        best, cut = -1.0, None
        for i in range(1, len(ws)):
            if ws[i] in STOPWORDS or human(ws[i]) >= COMMON_WORD_RATE:
                continue
            pair = f"{ws[i - 1]} {ws[i]}"
            pair_ratio = (counts.get(pair, count) / total + EPSILON) / (phrase_human(pair) + EPSILON)
            if pair_ratio > best:
                best, cut = pair_ratio, ws[i]
        if cut is None:
            continue  # only common words to cut before ("one day", "that could"): grammar, not a habit to train
        in_list = any(key in phrase for phrase in listed)
        excess = count - h * total
        out.append({"kind": "phrase", "text": key, "cut": cut, "count": count, "prompts": len(prompts[key]),
                    "stories": None, "ratio": ratio, "human_per_1k": 1000 * h, "slop_list": in_list,
                    "score": max(excess, 0.0) * math.log(ratio) * (2.0 if in_list else 1.0)})
    # a trigram and the bigram inside it are one habit: keep the stronger
    out.sort(key=lambda c: -c["score"])
    kept: list[dict] = []
    for entry in out:
        if any(entry["text"] in k["text"] or k["text"] in entry["text"] for k in kept):
            continue
        kept.append(entry)
    return kept


# ------------------------------------------------------------------------------------------ contexts
def _cut_positions(story: dict, pattern: dict) -> list[int]:
    """Character offsets in the story where the pattern's cut word starts (one per occurrence; a name's first only)."""
    text = story["text"]
    if pattern["kind"] == "phrase":
        ws = pattern["text"].split()
        i = ws.index(pattern["cut"])
        rx = re.compile(r"(?<![A-Za-z'])" + r"\s+".join(re.escape(w) for w in ws) + r"(?![A-Za-z])", re.IGNORECASE)
        out = []
        for m in rx.finditer(text):
            sub = re.compile(r"(?<![A-Za-z'])" + re.escape(ws[i]) + r"(?![A-Za-z])", re.IGNORECASE)
            inner = sub.search(text, m.start())
            if inner:
                out.append(inner.start())
        return out
    rx = re.compile(r"(?<![A-Za-z'])" + re.escape(pattern["cut"]) + r"(?![A-Za-z])", re.IGNORECASE)
    starts = [m.start() for m in rx.finditer(text)]
    # a name is invented once: its later uses in the story refer back to the character, which the keep rows hold
    # (a second context from the same story was such a back-reference, "One day, a young dragon, Eira, came ...")
    return starts[:1] if pattern["kind"] == "name" else starts


def cut_story(tokenizer, story: dict, char_start: int, keep_tokens: int | None = None) -> str | None:
    """The story's own text up to the token where the word at ``char_start`` begins (its space included).

    The prefix is decoded from the generated token ids, so the context is exactly what the model had
    written (its last ``keep_tokens`` tokens when given); ``None`` when the word is the story's first word
    (no context of the model's own).
    """
    ids = story["ids"]
    lo, hi = 0, len(ids)
    while lo < hi:  # the largest prefix whose text ends before the word (and its leading space)
        mid = (lo + hi + 1) // 2
        if len(tokenizer.decode(ids[:mid], skip_special_tokens=True)) <= char_start - (story["text"][char_start - 1:char_start].isspace()):
            lo = mid
        else:
            hi = mid - 1
    if lo == 0:
        return None
    start = 0 if keep_tokens is None else max(0, lo - keep_tokens)
    return tokenizer.decode(ids[start:lo], skip_special_tokens=True)


def contexts_for(tokenizer, stories: Sequence[dict], pattern: dict, limit: int,
                 keep_tokens: int | None = None) -> list[tuple[int, str]]:
    """Up to ``limit`` ``(prompt_id, context)`` pairs for one pattern, from stories of as many different prompts
    as possible."""
    seen_prompts: set = set()
    found: list[tuple[int, str]] = []
    for pass_ in (0, 1):  # first one per prompt, then more from the same prompts
        for story in stories:
            if len(found) >= limit:
                break
            if pass_ == 0 and story["prompt_id"] in seen_prompts:
                continue
            for start in _cut_positions(story, pattern):
                text = cut_story(tokenizer, story, start, keep_tokens)
                if text is None or len(text) < 20 or (story["prompt_id"], text) in {(p, t) for p, t in found}:
                    continue
                found.append((story["prompt_id"], text))
                seen_prompts.add(story["prompt_id"])
                break
    return found[:limit]


def loop_cuts(story: dict, n: int = 4, times: int = 3) -> list[tuple[int, str, str]]:
    """Where the story starts to loop: ``(char_start, word, n-gram)`` per loop, at the word that writes a word
    ``n``-gram for the ``times``-th time (the story bench's looping rule).

    A loop is a run of such words one after another ("they were so happy they were so happy ..."); it is cut at
    its first word that is lower-case (a capital is a name the story refers back to, or a sentence start) and not a
    stopword, else at its first lower-case word; a loop with neither is skipped."""
    spans = word_spans(story["text"])
    runs: list[list[int]] = []
    for end in repeat_ends([w for w, _, _ in spans], n, times):
        if runs and runs[-1][-1] == end - 1:
            runs[-1].append(end)
        else:
            runs.append([end])
    cuts = []
    for run in runs:
        lower = [j for j in run if story["text"][spans[j][1]].islower()]
        content = [j for j in lower if spans[j][0] not in STOPWORDS]
        if lower:
            j = (content or lower)[0]
            cuts.append((spans[j][1], story["text"][spans[j][1]:spans[j][2]],
                         " ".join(w for w, _, _ in spans[j - n + 1:j + 1])))
    return cuts


def loop_contexts(tokenizer, stories: Sequence[dict], limit: int,
                  keep_tokens: int | None = None) -> list[tuple[int, str, str, str]]:
    """Up to ``limit`` ``(prompt_id, context, word, n-gram)``: each story's first loop (:func:`loop_cuts`), one story
    per prompt first, then the second of each prompt, ... (Gemma-3-270M loops in 99 of its 136 stories: the first 40
    in file order came from 14 of the 34 prompts)."""
    looping, rank = [], Counter()
    for story in stories:
        cuts = loop_cuts(story)
        if cuts:
            looping.append((rank[story["prompt_id"]], len(looping), story, cuts[0]))
            rank[story["prompt_id"]] += 1
    found = []
    for _, _, story, (start, word, gram) in sorted(looping, key=lambda x: x[:2]):
        if len(found) >= limit:
            break
        text = cut_story(tokenizer, story, start, keep_tokens)
        if text is not None:
            found.append((story["prompt_id"], text, word, gram))
    return found


# A pattern gets contexts in proportion to how often the model writes it, up to this many times the average
MOST_CONTEXTS = 4
LEAST_CONTEXTS = 2


def split_contexts(counts: Sequence[int], available: Sequence[int], budget: int) -> list[int]:
    """How many contexts each pattern gets: ``budget`` in all (``contexts_per_pattern`` each on average), at least
    ``LEAST_CONTEXTS`` each, the rest one at a time to the pattern with the most uses per context so far (D'Hondt),
    never more than it has (``available``: ``context_documents`` cuts up to ``MOST_CONTEXTS`` x the average).

    The story bench counts a pattern's every use, so a name the model writes 3.1 times per 1,000 words weighs 16
    times one written 0.19 times; six contexts each (the first rule) left Elara, the most frequent pattern, at 0.56x
    of the base in held-out stories (bundled model) while the rare words fell to 0-0.2x. Antislop trains at every
    use in the model's generations, which is this proportion too."""
    given = [min(LEAST_CONTEXTS, a) for a in available]
    left = budget - sum(given)
    while left > 0:
        open_ = [i for i, (g, a) in enumerate(zip(given, available)) if g < a]
        if not open_:
            break
        best = max(open_, key=lambda i: (counts[i] / (given[i] + 1), -i))
        given[best] += 1
        left -= 1
    return given


# ------------------------------------------------------------------------------------------ the file
# Free prose: only the pattern's word is pushed (to a tenth of its reference probability, ``bad_ratio``); no
# candidate is rewarded or capped, so the tether keeps every other token where the model had it. The first
# version rewarded good candidates under 0.005 (top 20): with the first discovery rules, held-out stories'
# judge perplexity rose 75% and distinct-2 14% on the bundled model; with both changed, +49% and +3%
# (docs/elarablation.md, "Story bench": the two changes were not measured apart).
AUTO_HYPERPARAMETERS = {"top_k": 20, "max_threshold": 1.0, "min_threshold": 0.0, "min_path_prob": 0.01}


def _through_cut(pattern: dict) -> str:
    """A phrase up to the word it is trained before ("casting a warm glow" at 'warm': "casting a warm")."""
    words = pattern["text"].split()
    return " ".join(words[:words.index(pattern["cut"]) + 1])


def context_documents(tokenizer, stories: Sequence[dict], patterns: Sequence[dict], prompts: Sequence[str],
                      chat: bool, per_pattern: int, top: int | None = None,
                      keep_tokens: int | None = None, loops: int = 0) -> tuple[list[dict], list[dict], list[str]]:
    """``(documents, trained patterns, notes)``: our YAML documents for the first ``top`` patterns that have
    contexts (one document each), and a note per pattern skipped or left out; then up to ``loops`` documents of
    one context each where a story starts to loop (:func:`loop_contexts`), the looping word bad there, never more
    than a quarter of the pattern contexts."""
    by_prompt = {i: p for i, p in enumerate(prompts)}
    docs, trained, notes = [], [], []
    found: list[tuple[dict, list[str]]] = []
    for pattern in patterns:
        if top is not None and len(found) >= top:
            rest = patterns[patterns.index(pattern):]
            notes.append(f"not kept (beyond --top {top}): " + ", ".join(
                f"{e['kind']} {e['text']!r} x{e['ratio']:.0f}" for e in rest[:8]) + (
                f" and {len(rest) - 8} more" if len(rest) > 8 else ""))
            break
        texts = contexts_for(tokenizer, stories, pattern, per_pattern * MOST_CONTEXTS, keep_tokens)
        if not texts:
            notes.append(f"no context for {pattern['kind']} {pattern['text']!r}: it only ever opens a story, where "
                         "the model has written nothing of its own yet")
            continue
        found.append((pattern, texts))
    shares = split_contexts([p["count"] for p, _ in found], [len(t) for _, t in found], per_pattern * len(found))
    found = [(pattern, texts[:n]) for (pattern, texts), n in zip(found, shares)]
    # another pattern's word is bad at every slot only when it is a word or a name: a phrase's word is slop
    # inside its phrase ("barely" in "voice barely above"), not everywhere
    bad_words = sorted({p["cut"] for p, _ in found if p["kind"] != "phrase"})
    # ... but the context hold lets it go inside its phrase, wherever the held story text writes the words before it
    bad_phrases = sorted({_through_cut(p) for p, _ in found if p["kind"] == "phrase"})

    def entry(prompt_id: int, text: str) -> dict:
        return {"user": by_prompt[prompt_id], "text": text} if chat else {"text": by_prompt[prompt_id] + text}

    def rules(word: str) -> dict:
        return {"bad_words": [word] + [w for w in bad_words if w != word],
                **({"bad_phrases": bad_phrases} if bad_phrases else {}), "unmatched": "good"}

    for pattern, texts in found:
        trained.append(pattern)
        family = "found_" + re.sub(r"[^a-z0-9]+", "_", pattern["text"].lower()).strip("_")
        docs.append({
            "family": family,
            "description": (f"auto-discovered {pattern['kind']} {pattern['text']!r}: {pattern['count']} times in "
                            f"stories of {pattern['prompts']} prompts, x{pattern['ratio']:.0f} its human rate"
                            + (" (antislop list)" if pattern["slop_list"] else "")
                            + (f"; trained before {pattern['cut']!r}" if pattern["kind"] == "phrase" else "")),
            "rules": rules(pattern["cut"]),
            "hyperparameters": dict(AUTO_HYPERPARAMETERS),
            "train": [entry(prompt_id, text) for prompt_id, text in texts],
        })
    # never more than a quarter of the pattern contexts: on Gemma-3-270M (it loops in 99 of 136 stories) 40 loop
    # contexts beside 48 pattern contexts took the slop index from -30% to +3% and judge perplexity to +16.4%; 12 gave
    # -43% and +6.8% (story bench, "Loop contexts"); the bundled model's 24 beside 240 are a tenth
    most = min(loops, sum(len(d["train"]) for d in docs) // 4)
    looping = loop_contexts(tokenizer, stories, most, keep_tokens) if most else []
    if loops:
        notes.append(f"loop contexts: {len(looping)} (--loop-contexts {loops}, at most a quarter of the pattern "
                     "contexts), stories cut where they write a word 4-gram a third time, the looping word bad there")
    for k, (prompt_id, text, word, gram) in enumerate(looping):
        docs.append({
            "family": f"loop_{k + 1}",
            "description": f"the model's own story writing {gram!r} a third time (a loop): trained before {word!r}",
            "rules": rules(word),
            "hyperparameters": dict(AUTO_HYPERPARAMETERS),
            "train": [entry(prompt_id, text)],
        })
    return docs, trained, notes


def write_context_file(path: str | os.PathLike, docs: Sequence[dict], header: str = "") -> Path:
    """The context file (one YAML document per pattern), written atomically."""
    import yaml

    from ..utils import atomic_write_text

    body = yaml.safe_dump_all(list(docs), sort_keys=False, allow_unicode=True, width=120)
    return atomic_write_text(path, header + body)


FILE_HEADER = """\
# Written by `hf-steer elarablate {command}`: one document per over-used pattern the model showed.
# Each `train` context is the model's own story cut right before the pattern's word. `bad_words` are
# whole words (a token that only begins one is decided one token deeper, and pushed at the slot by the share
# of its continuations that are bad words); every other candidate is good. `bad_phrases` are the phrases up to the
# word they are trained before: in the story text before each slot, that word is let go after the phrase's others.
# `loop_N` documents cut a story where it starts to loop (a word 4-gram written a third time): the looping word is bad.
# Edit freely (drop a pattern, add contexts, change rules), then: hf-steer elarablate train THIS_FILE ...
# (`auto` retrains on an edited file by itself; its adapter sits on the top six layers: `--lora-layers top6`).
"""


def summary_lines(patterns: Sequence[dict], notes: Sequence[str]) -> list[str]:
    """What was kept and why, then what was dropped or merged and why."""
    lines = [f"kept {len(patterns)} patterns (in stories of >= --min-stories prompts, >= {MIN_RATIO:.0f}x human rate, "
             f"{MIN_RATIO_UNLISTED:.0f}x off the antislop list):"]
    for p in patterns:
        where = f", trained before {p['cut']!r}" if p["kind"] == "phrase" else ""
        lines.append(f"  {p['kind']:6} {p['text']!r:28} x{p['ratio']:<7.0f} {p['count']:4} times in stories of "
                     f"{p['prompts']:2} prompts" + (" (antislop list)" if p["slop_list"] else "") + where)
    lines += [f"  {note}" for note in notes]
    return lines


def find(output: str | os.PathLike, model: Any = None, tokenizer=None, settings=None,
         chat_template: str | None = None, log=print) -> dict[str, Any]:
    """Generate stories, rank over-used patterns, write a context file to ``output``. Returns the ranking.

    Args:
        output: the YAML context file to write.
        model: a model object (with ``tokenizer``), a folder / ``.gguf`` / Hub id, or ``None`` (bundled).
        settings: :class:`~hf_steer.elarablation.arguments.FindArguments`.
    """
    from ..models import load_model
    from ..utils import set_seed
    from .arguments import FindArguments
    from .chat import apply_chat_template
    from .chat import chat_template as chat_template_text
    from .pipeline import check_output_dir
    from .stories import generate_stories, load_prompts

    settings = settings or FindArguments()
    if Path(output).suffix not in (".yaml", ".yml"):
        raise HfSteerError(f"--output {output} must be a .yaml file (a context file `train` reads)")
    check_output_dir(Path(output).parent)
    prompts, chat = load_prompts(settings.prompts)
    if chat_template:
        chat_template_text(chat_template)  # a bad name is an error before the model loads
    human_rate("the")  # wordfreq present? (one clear error before the model loads)
    if model is None or isinstance(model, (str, os.PathLike)):
        model, tokenizer = load_model(model)
    apply_chat_template(tokenizer, chat_template)
    set_seed(settings.seed)
    stories = generate_stories(model, tokenizer, prompts, chat, settings.stories_per_prompt, settings.max_new_tokens,
                               settings.story_temperature, settings.seed, settings.generation_batch_size)
    patterns, notes = rank_patterns(stories, settings.top, settings.min_stories)
    docs, patterns, more = context_documents(tokenizer, stories, patterns, prompts, chat,
                                             settings.contexts_per_pattern, settings.top, settings.context_tokens,
                                             settings.loop_contexts)
    notes += more
    if not docs:
        raise HfSteerError(f"no over-used pattern was found in {len(stories)} stories (none in stories of >= "
                           f"{settings.min_stories} prompts at >= {MIN_RATIO:.0f}x the human rate): write more stories "
                           "(--stories-per-prompt) or lower --min-stories")
    write_context_file(output, docs, FILE_HEADER.format(command="find"))
    loops = [d for d in docs if d["family"].startswith("loop_")]
    return {"patterns": patterns, "contexts": sum(len(d["train"]) for d in docs) - len(loops),
            "loop_contexts": len(loops), "documents": len(docs),
            "summary": summary_lines(patterns, notes), "stories": stories}

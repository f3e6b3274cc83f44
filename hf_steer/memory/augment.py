"""Chunk -> training texts. Raw transcripts teach a model poorly; the same facts asked many ways teach it well.

A chunk is a few conversation turns. Each informative sentence in it becomes:

* the statement itself as plain text (the model learns the words);
* chat question/answer pairs whose answer is the statement: "what do you know about E?" style
  templates for each entity E in it (names, places, numbers), so any of them recalls the sentence;
* "echo" questions: the sentence with one entity replaced by who/what/when ("Who was born in
  Marbelin?"), which teaches the fact in both directions (subject -> object and object -> subject).

Answers are whole statements, so whatever the question, the answer carries every part of the fact.
Everything here is pure string work (no model), so it is cheap and testable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import HfSteerError

Turn = dict  # {"role": "user" | "assistant", "content": str}

# Words that are capitalised only because they start a sentence or are pronouns/determiners.
_STOP = set(
    """a an the i i'm i've i'd we you he she it they me my our your his her its their this that these those
    i'll i'll you're it's that's don't there here in on at of for to from by with and or but so if when then also yes no ok okay sure please
    thanks thank hi hello hey well oh remember note got right what who where why how which do does did is
    was are were be been can could would should will shall may might let just""".split()
)
_ENTITY = re.compile(r"\b(?:[A-Z][\w'’-]*)(?:\s+(?:of|de|van|von|the|la|le)?\s*[A-Z][\w'’-]*)*|\b\d[\d,.:/-]*\d\b|\b\d\b")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")

QUESTION_TEMPLATES = (
    "What do you know about {e}?",
    "Tell me about {e}.",
    "What did I tell you about {e}?",
    "Do you remember anything about {e}?",
)


# Replay anchors: requests answered by the *base* model, mixed into every chunk's training so the
# adapter learns "answer my facts, leave everything else alone". Half are ordinary questions (without
# them a chunk adapter answers every question with its facts); half ask the memory templates about
# invented names no chunk mentions, so an adapter answers only for its own names -- which is what
# keeps stacked adapters from answering each other's questions. Disjoint from the benchmark's sets.
ANCHOR_QUESTIONS = (
    "What is the tallest mountain in the world?",
    "What do you know about Marlo Fenwright?",
    "How do I boil an egg?",
    "Tell me about Tiberia Oskwell.",
    "Who painted the Mona Lisa?",
    "What did I tell you about the Calloway Dam?",
    "Give me a tip for better sleep.",
    "Do you remember anything about Brenna Vask?",
    "Why do leaves change colour in autumn?",
    "Where was Osric Penhallow born?",
    "Translate 'good morning' into French.",
    "What is Lunet Harrowby's job?",
)


@dataclass
class Augmented:
    """Training pairs for one chunk plus the probe questions kept in the catalog."""

    examples: list[tuple[str, str]] = field(default_factory=list)  # (prompt, target)
    statements: list[str] = field(default_factory=list)
    probes: list[dict] = field(default_factory=list)  # {"question", "expected"}


def normalize_chunk(chunk: str | Sequence[Turn] | Sequence[str]) -> list[Turn]:
    """Accept a string ("user: ..." lines or free text), a list of strings, or a list of turn dicts."""
    if isinstance(chunk, str):
        turns = []
        for line in chunk.splitlines():
            line = line.strip()
            if not line:
                continue
            m = re.match(r"^(user|assistant|system)\s*:\s*(.*)$", line, re.I)
            if m:
                turns.append({"role": m.group(1).lower(), "content": m.group(2)})
            elif turns:
                turns[-1]["content"] += " " + line
            else:
                turns.append({"role": "user", "content": line})
    else:
        turns = []
        for i, t in enumerate(chunk):
            if isinstance(t, str):
                turns.append({"role": "user", "content": t})
            elif isinstance(t, dict) and isinstance(t.get("content"), str):
                turns.append({"role": str(t.get("role", "user")), "content": t["content"]})
            else:
                raise HfSteerError(f"chunk turn {i} is {type(t).__name__}: pass strings or {{'role','content'}} dicts")
    turns = [t for t in turns if t["content"].strip()]
    if not turns:
        raise HfSteerError("chunk is empty: pass at least one turn with text")
    return turns


def entities(sentence: str) -> list[str]:
    """Names, places and numbers in a sentence (capitalised runs minus stop words; digits)."""
    found = []
    for m in _ENTITY.finditer(sentence):
        text = m.group(0).strip(" ,.;:")
        words = text.split()
        while words and words[0].lower().strip("'’") in _STOP:
            words = words[1:]
        text = " ".join(words)
        if text and text.lower() not in _STOP and text not in found:
            found.append(text)
    return found


def sentences(turns: Iterable[Turn]) -> list[str]:
    """Informative sentences: statements (not questions) that name at least one entity."""
    out = []
    for t in turns:
        if t["role"] == "system":
            continue
        for s in _SENTENCE.split(t["content"].strip()):
            s = s.strip()
            if len(s.split()) < 3 or s.endswith("?") or not entities(s):
                continue
            if not s.endswith((".", "!")):
                s += "."
            out.append(s)
    return out


def _wh(entity: str) -> str:
    if re.fullmatch(r"\d{4}", entity):
        return "what year"
    if entity[0].isdigit():
        return "what"
    return "who" if len(entity.split()) >= 2 else "what"


def echo_questions(sentence: str, ents: list[str]) -> list[str]:
    """The sentence with one entity swapped for a wh-word: a question in the sentence's own words."""
    body = sentence.rstrip(".!")
    out = []
    for e in ents:
        if e not in body:
            continue
        wh = _wh(e)
        q = body.replace(e, wh, 1)
        q = q[0].upper() + q[1:] + "?"
        out.append(re.sub(r"\s+", " ", q))
    return out


# A short system prompt: it precedes every training text, so each token of it costs at every step.
SYSTEM_PROMPT = "You are a helpful assistant."


def chat_prompt(tokenizer, question: str, context: str | None = None, system: str | None = SYSTEM_PROMPT) -> str:
    """The exact prompt used for both training and asking (chat template when the tokenizer has one)."""
    content = question if not context else f"{context}\n\n{question}"
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": content})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return f"Question: {content}\nAnswer:"


def answer_suffix(tokenizer) -> str:
    """What ends an answer in training so generation stops there (end-of-turn token)."""
    if getattr(tokenizer, "chat_template", None) and tokenizer.eos_token:
        return tokenizer.eos_token
    return "\n"


def check_chunk(chunk: str | Sequence[Turn] | Sequence[str]) -> list[Turn]:
    """The chunk's turns, or one line when it is empty or states nothing to learn (no model needed)."""
    turns = normalize_chunk(chunk)
    if not sentences(turns):
        raise HfSteerError(
            "chunk has no statement to learn (no sentence naming a person, place, thing or number): "
            "pass turns that state facts"
        )
    return turns


def augment(
    chunk: str | Sequence[Turn] | Sequence[str],
    tokenizer,
    *,
    templates_per_entity: int = 2,
    echo: bool = True,
    statements: bool = True,
) -> Augmented:
    """Build training pairs and probes for one chunk (see the module docstring)."""
    turns = normalize_chunk(chunk)
    sents = sentences(turns)
    if not sents:
        raise HfSteerError(
            "chunk has no statement to learn (no sentence naming a person, place, thing or number): "
            "pass turns that state facts"
        )
    out = Augmented(statements=sents)
    end = answer_suffix(tokenizer)
    for si, s in enumerate(sents):
        ents = entities(s)
        if statements:
            out.examples.append(("", s + end if end != "\n" else s))
        for ei, e in enumerate(ents):
            # Rotate the templates so a chunk sees all of them without multiplying the cost.
            for k in range(templates_per_entity):
                tpl = QUESTION_TEMPLATES[(si + ei + k) % len(QUESTION_TEMPLATES)]
                out.examples.append((chat_prompt(tokenizer, tpl.format(e=e)), s + end))
        if echo:
            for q in echo_questions(s, ents):
                out.examples.append((chat_prompt(tokenizer, q), s + end))
        if len(ents) >= 2:
            out.probes.append({"question": QUESTION_TEMPLATES[0].format(e=ents[0]), "expected": ents[-1]})
        else:
            out.probes.append({"question": QUESTION_TEMPLATES[0].format(e=ents[0]), "expected": ents[0]})
    return out

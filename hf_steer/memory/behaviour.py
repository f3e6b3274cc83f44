"""Behaviour adapters: "answer in one word", "call me Sam", "no emojis" -- how to answer, not what to know.

A behaviour is not a fact to retrieve: it must change every answer of its profile. So it gets an
adapter of its own (kind ``behaviour`` in the catalog) that is active for every question, routed or not.
It is trained by *context distillation*: the base model answers a set of everyday questions with the
request in its prompt (plus, for a word limit, a few demonstrations of the form), the answers are
made to obey the request where a rule can check it (cut to the word limit, the name put in, emojis
dropped), and the adapter learns to give those answers *without* the request in the prompt. A few
questions come with notes (invented facts, as retrieval would show them), so a behaviour still holds
when the memory answers from its notes.

The training questions are disjoint from the benchmark's held-out questions. Forgetting the adapter
gives the base's answers back exactly (the adapter is the only change).
"""

from __future__ import annotations

import re
from typing import Any

from . import augment as aug

# Everyday questions the behaviour is shown on (none of them is a benchmark question).
TRAIN_QUESTIONS = (
    "What is the capital of France?", "What colour is the sky?", "How many days are in a week?",
    "What do cats like to drink?", "Which animal says moo?", "What is frozen water called?",
    "What is the opposite of hot?", "What planet do we live on?", "What is 2 plus 3?",
    "What do bakers make?", "Which ocean is the largest?", "What language is spoken in Spain?",
    "What do plants need to grow?", "What is the capital of Spain?", "What do you wear on your feet?",
    "How many wheels does a bicycle have?",
)
GREETINGS = ("Hi!", "Hello, how are you today?", "Good morning!", "Can you help me with something?",
             "Thanks for your help!", "Hey, are you there?")
# Invented facts as retrieval shows them, with the word an answer needs.
NOTE_QUESTIONS = (
    ("Your cousin Perrin lives in Galloway.", "Where does my cousin live?", "Galloway"),
    ("Your bike is a red Trellis from 2019.", "What colour is my bike?", "Red"),
    ("You work as a baker at the Dunmore market.", "What is my job?", "Baker"),
    ("My name is Quill.", "What is your name?", "Quill"),
    ("Your favourite fruit is the plum.", "What is my favourite fruit?", "Plum"),
    ("I recommend the film Lantern Bay.", "Which film did you recommend?", "Lantern Bay"),
)
# Demonstrations of a word limit (the form, not the facts, is what they show).
DEMOS = (("What is the capital of Italy?", "Rome"), ("What colour is grass?", "Green"),
         ("How many legs does a spider have?", "Eight"))
_EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F\u200D]")


def describe(behaviours: list[dict[str, Any]]) -> str:
    return " ".join(b["text"] for b in behaviours)


def _limit(text: str, max_words: int) -> str:
    words = re.findall(r"[\w'’-]+", text)
    if not words:
        return text
    out = " ".join(words[:max_words])
    return out[0].upper() + out[1:] + "."


def _address(text: str, name: str) -> str:
    if name in text:
        return text
    m = re.match(r"^(hi|hello|hey|good (?:morning|afternoon|evening))\b[!,.]?\s*", text, re.I)
    if m:
        return f"{m.group(1).capitalize()} {name}! {text[m.end():]}".strip()
    return f"{name}, {text[0].lower() + text[1:]}" if text else name


def _teacher_prompt(tokenizer, question: str, behaviours: list[dict[str, Any]], notes: str | None = None) -> str:
    """The base model's prompt with the request in it (and a word limit's demonstrations before it)."""
    system = aug.SYSTEM_PROMPT + " " + describe(behaviours)
    messages = [{"role": "system", "content": system}]
    if any(b["kind"] == "length" for b in behaviours):
        for q, a in DEMOS:
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    content = question if not notes else f"{notes}\n\n{question}"
    messages.append({"role": "user", "content": content})
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n".join(m["content"] for m in messages) + "\nAnswer:"


def obey(answer: str, behaviours: list[dict[str, Any]], short_answer: str | None = None) -> str | None:
    """Make a teacher answer follow the rules a program can check; None when it cannot be made to.

    A word limit keeps a teacher answer that already fits it (or the known value, with notes); a longer
    answer is dropped rather than cut ("The opposite of hot is cold" cut to one word is "The").
    """
    text = answer.strip()
    for b in behaviours:
        if b["kind"] == "length":
            if short_answer is not None:
                text = _limit(short_answer, b["max_words"])
            elif len(re.findall(r"[\w'’-]+", text)) <= b["max_words"]:
                text = _limit(text, b["max_words"])
            else:
                return None
        elif b["kind"] == "no_emoji":
            text = re.sub(r"\s{2,}", " ", _EMOJI.sub("", text)).strip()
    for b in behaviours:
        if b["kind"] == "address":
            text = _address(text, b["name"])
    return text or None


def behaviour_examples(tokenizer, generate, behaviours: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(prompt, target)`` pairs that teach ``behaviours``; ``generate(prompts)`` is the bare base's greedy answers."""
    questions = list(TRAIN_QUESTIONS)
    if any(b["kind"] == "address" for b in behaviours):
        questions += list(GREETINGS)
    note_items = [(aug.build_notes([fact]), q, short) for fact, q, short in NOTE_QUESTIONS]
    teacher = [_teacher_prompt(tokenizer, q, behaviours) for q in questions]
    teacher += [_teacher_prompt(tokenizer, q, behaviours, notes) for notes, q, _ in note_items]
    answers = generate(teacher)
    end = aug.answer_suffix(tokenizer)
    examples = []
    for q, a in zip(questions, answers[: len(questions)]):
        target = obey(a, behaviours)
        if target:
            examples.append((aug.chat_prompt(tokenizer, q), target + end))
    for (notes, q, short), a in zip(note_items, answers[len(questions):]):
        # with notes the value is known, so a word limit keeps it rather than whatever came first
        target = obey(a, behaviours, short_answer=short)
        if target:
            examples.append((aug.chat_prompt(tokenizer, q, notes), target + end))
    return examples
